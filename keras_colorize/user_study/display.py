"""Every study image is shown the same way, so nothing but its colours tells sources apart.

Each file is decoded with Pillow, turned upright (EXIF orientation), converted
to RGB, resized (Lanczos) so its longer side is exactly `display_size`, and
re-encoded as a baseline JPEG of fixed quality without metadata. Real photos
and colorizations thus arrive at one size, one format and one compression,
whatever their files were (a PNG colorization beside a camera JPEG, EXIF,
different resolutions). The page shows them in a fixed square box.
"""

from __future__ import annotations

import functools
import io
import pathlib

from PIL import Image, ImageOps

JPEG_QUALITY = 90


def render_for_display(path: str | pathlib.Path, display_size: int) -> bytes:
    """JPEG bytes of the image at `path`, longer side `display_size` pixels."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            background = Image.new("RGB", im.size, (255, 255, 255))
            background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
            im = background
        im = im.convert("RGB")
        scale = display_size / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        if size != im.size:
            im = im.resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    return out.getvalue()


class DisplayCache:
    """In-memory LRU cache of rendered images, keyed by image id.

    Args:
      paths: `{image_id: file path}`.
      display_size: longer side in pixels.
      max_items: images kept (a 512 px JPEG is ~50-100 kB).
    """

    def __init__(self, paths: dict[str, pathlib.Path], display_size: int, max_items: int = 512):
        self._paths = dict(paths)
        self.display_size = display_size
        self.get = functools.lru_cache(maxsize=max_items)(self._render)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._paths

    def _render(self, image_id: str) -> bytes:
        return render_for_display(self._paths[image_id], self.display_size)
