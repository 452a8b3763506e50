"""What the studio shows: a photo's gray preview, its colorization with the current hints, thumbnails.

The page works on a preview of the photo (longer side `preview_size`, 1600 px
by default), not the full scan: the network sees the same input either way
(the whole photo's L* resized to the model's grid, exactly as
``kc-colorize`` computes it from the full-resolution L*), and only the final
merge runs at the preview's size, so a change of hints costs one network call
and a small merge, well under a second even for a 12-megapixel scan. Saving
renders at full resolution through ``kc-colorize``'s own code
(:mod:`keras_colorize.studio.session`).

Each opened photo's L* (full and preview) is computed once and kept for the
few photos opened last; one network call runs at a time (`Renderer.lock`), so
an interactive render waits at most for one image of "Colorize the rest".

Example::

    renderer = Renderer(Colorizer("scenes"), preview_size=1600)
    photo = renderer.open("scans/a.jpg")
    jpeg = renderer.render(photo, colorizer.guidance_inputs(hints, photo.width, photo.height))
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pathlib
import threading

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from keras_colorize import color
from keras_colorize.inference import images
from keras_colorize.inference import merge

#: JPEG quality of what the page shows (previews, thumbnails); saved files use kc-colorize's settings.
PREVIEW_QUALITY = 88
THUMBNAIL_SIZE = 240
_OPEN_CACHE = 3
_THUMB_CACHE = 512


def encode_jpeg(rgb: np.ndarray, quality: int = PREVIEW_QUALITY) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def file_stamp(path: pathlib.Path) -> tuple[int, int]:
    """(mtime in ns, size): a cached rendering of the file is stale when it changes."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


@dataclasses.dataclass
class OpenPhoto:
    """One decoded photo, ready to render.

    Attributes:
      path: the photo file.
      stamp: `file_stamp` when it was read.
      width, height: the photo's size (upright).
      l_small: ``(S, S, 1)`` the model input (L*/100 of the whole photo on the model's grid).
      l_preview: ``(h, w)`` L* at the preview size.
      before: JPEG of the preview in gray (the "before" of the slider).
    """

    path: pathlib.Path
    stamp: tuple[int, int]
    width: int
    height: int
    l_small: np.ndarray
    l_preview: np.ndarray
    before: bytes

    @property
    def preview_size(self) -> tuple[int, int]:
        """(width, height) of the preview."""
        return self.l_preview.shape[1], self.l_preview.shape[0]


class Renderer:
    """The model and the photos opened last.

    Args:
      colorizer: a :class:`keras_colorize.inference.api.Colorizer`.
      preview_size: longer side of the preview, in pixels.
    """

    def __init__(self, colorizer, preview_size: int = 1600):
        if not isinstance(preview_size, int) or not 64 <= preview_size <= 8192:
            raise ValueError(f"preview_size must be an int in [64, 8192], got {preview_size!r}")
        self.colorizer = colorizer
        self.image_size = colorizer.image_size
        self.guided = bool(getattr(colorizer, "guided", False))
        self.preview_size = preview_size
        self.lock = threading.Lock()  # one network call (and merge) at a time
        self.ready = threading.Event()  # set once `warm_up` has run
        self._open_lock = threading.Lock()
        self._open: collections.OrderedDict[pathlib.Path, OpenPhoto] = collections.OrderedDict()
        self._thumbs: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()

    # ---- photos ----

    def open(self, path: pathlib.Path) -> OpenPhoto:
        """The photo at `path`, decoded (cached while the file is unchanged).

        Raises:
          images.ImageReadError: the file cannot be read as an image.
        """
        path = pathlib.Path(path)
        stamp = file_stamp(path)
        with self._open_lock:
            cached = self._open.get(path)
            if cached is not None and cached.stamp == stamp:
                self._open.move_to_end(path)
                return cached
        picture = images.read_image(path)
        photo = self._prepare(picture.pixels, path, stamp)
        with self._open_lock:
            self._open[path] = photo
            while len(self._open) > _OPEN_CACHE:
                self._open.popitem(last=False)
        return photo

    def _prepare(self, pixels: np.ndarray, path: pathlib.Path, stamp) -> OpenPhoto:
        l_full = merge.lightness(pixels)
        height, width = l_full.shape
        scale = min(1.0, self.preview_size / max(width, height))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        l_preview = l_full if scale == 1.0 else tf.image.resize(
            l_full[..., None], size, method="bilinear", antialias=True).numpy()[..., 0]
        l_small = np.asarray(merge.model_input(l_full, self.image_size))
        gray = np.round(np.clip(np.asarray(color.l_to_gray_rgb(l_preview[..., None])), 0, 1) * 255).astype(np.uint8)
        return OpenPhoto(path, stamp, width, height, l_small, np.ascontiguousarray(l_preview, np.float32),
                         encode_jpeg(gray))

    def render(self, photo: OpenPhoto, guidance=None) -> bytes:
        """JPEG of the colorized preview.

        Args:
          photo: an opened photo.
          guidance: the model's hint map, reference and saturation for it
            (:meth:`keras_colorize.inference.api.Colorizer.guidance_inputs`, as saving uses them), or None.
        """
        with self.lock:
            ab = self.colorizer.predict_guided(photo.l_small[None], [guidance])[0]
            rgb = merge.merge_chunked(photo.l_preview, ab, np.uint8)
        return encode_jpeg(rgb)

    def warm_up(self) -> None:
        """Traces the model and compiles the full-resolution kernels once (seconds), so the first photo opens
        quickly; `ready` is set when done. kc-studio runs it in the background while the page loads."""
        try:
            rng = np.random.default_rng(0)
            for channels in (3, 1):  # colour and gray scans take different lightness kernels
                pixels = rng.integers(0, 256, (1500, 1000, channels), dtype=np.uint8)  # past the merge's small chunk
                photo = self._prepare(pixels, pathlib.Path("warm-up"), (0, 0))
                self.render(photo)
        finally:
            self.ready.set()

    # ---- thumbnails ----

    def thumbnail(self, path: pathlib.Path) -> bytes:
        """A small JPEG of the file (its longer side `THUMBNAIL_SIZE`), cached while the file is unchanged."""
        key = (pathlib.Path(path), file_stamp(path))
        with self._open_lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        body = make_thumbnail(path)
        with self._open_lock:
            self._thumbs[key] = body
            while len(self._thumbs) > _THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return body


def make_thumbnail(path, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG thumbnail of an image file (upright, sRGB), decoded at reduced size where the format allows.

    Raises:
      images.ImageReadError: the file cannot be read as an image.
    """
    try:
        with Image.open(path) as image:
            if image.format == "JPEG" and image.mode in ("L", "RGB", "YCbCr"):
                image.draft("RGB" if image.mode != "L" else "L", (size, size))  # decodes at 1/2, 1/4 or 1/8
                image = ImageOps.exif_transpose(image)
                image.thumbnail((size, size))
                return encode_jpeg(np.asarray(image.convert("RGB")))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise images.ImageReadError(f"{path}: cannot read ({e})") from e
    picture = images.read_image(path)  # any other kind: the same reader as kc-colorize
    pixels = picture.pixels if picture.pixels.dtype == np.uint8 else images.to_uint8(picture.pixels)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    image.thumbnail((size, size))
    return encode_jpeg(np.asarray(image.convert("RGB")))
