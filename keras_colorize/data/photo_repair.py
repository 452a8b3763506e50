"""One photo made ready for a shard: loaded, repaired, checked, re-encoded.

Bad files never stop a run: a loader raises :class:`SkipImage` with a reason of
:data:`SKIP_REASONS`; what it fixed on the way (EXIF rotation, CMYK, palette,
alpha, 16 bits) is named by :data:`REPAIRS`. :func:`prepare_example` turns a
record into the serialized ``tf.train.Example`` of :mod:`keras_colorize.data.features`.
"""

import dataclasses
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from keras_colorize.data import features


SKIP_REASONS = {
    "empty_file": "zero-byte file",
    "missing_file": "listed but not on disk (or a dangling symlink)",
    "unreadable": "cannot be read (permissions, I/O error, symlink loop)",
    "undecodable": "not an image Pillow can decode",
    "truncated": "image data ends early",
    "too_large": "over Pillow's decompression-bomb limit",
    "grayscale": "grayscale (mode L/1/I;16/LA): no colour target",
    "near_grayscale": "RGB but without colour (R=G=B up to noise): no colour target",
    "too_small": "short side below min_side",
}
REPAIRS = {
    "exif_rotated": "rotated upright from the EXIF Orientation tag",
    "cmyk": "CMYK converted to RGB",
    "palette": "palette (P) converted to RGB",
    "alpha": "alpha (RGBA/PA) composited on white",
    "16bit": "16 bits per channel reduced to 8",
    "other_mode": "other colour mode (YCbCr, LAB, HSV) converted to RGB",
}
_GRAY_MODES = {"L", "1", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "LA", "La"}


class SkipImage(Exception):
    """Raised by a loader for an image that must not be written; ``args[0]`` is the reason."""


@dataclasses.dataclass(frozen=True)
class EncodeConfig:
    """How images are stored."""

    short_side: int = 256  # larger images are shrunk to this short side (the paper's size); 0 = keep every size
    jpeg_quality: int = 95
    min_side: int = 32  # skip images whose short side is smaller
    gray_threshold: float = 6.0  # 99th percentile of max-min channel spread (0..255) below which RGB counts as gray

    def validate(self):
        if self.short_side != 0 and self.short_side < 8:
            raise ValueError(f"short_side must be 0 (keep each photo's own size) or >= 8, got {self.short_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {self.min_side}")


# ---------------------------------------------------------------------------
# Loading and cleaning one image
# ---------------------------------------------------------------------------


def load_file(record, short_side=None):
    """Opens an image file as upright 8-bit RGB.

    Args:
      record: :class:`places365.Record` whose ``key`` is the file path.
      short_side: if given, lets Pillow decode a large JPEG at a reduced scale
        (never below this short side).

    Returns:
      ``(PIL.Image in mode RGB, list of repair kinds applied)``.

    Raises:
      SkipImage: with a reason from :data:`SKIP_REASONS`.
    """
    path = record.key
    try:
        if os.path.getsize(path) == 0:
            raise SkipImage("empty_file")
        file = open(path, "rb")  # noqa: SIM115 - Pillow reads it lazily; closed below
    except FileNotFoundError:
        raise SkipImage("missing_file") from None
    except OSError:  # EACCES, EIO, ELOOP (a symlink loop), ...
        raise SkipImage("unreadable") from None
    with file:
        return load_open_file(file, short_side)


def load_open_file(file, short_side=None):
    """The decoding half of :func:`load_file`: an open binary file (or ``io.BytesIO``) -> upright 8-bit RGB.

    Loaders that fetch the bytes themselves (the Beam pipeline reads ``gs://``
    and other file systems, :mod:`keras_colorize.beam.shards`) call it so that
    every loader cleans, repairs and skips alike.

    Returns:
      ``(PIL.Image in mode RGB, list of repair kinds applied)``.

    Raises:
      SkipImage: with a reason from :data:`SKIP_REASONS`.
    """
    repairs = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
            if short_side and image.format == "JPEG" and image.mode == "RGB":
                image.draft("RGB", (short_side, short_side))
            if any(";16" in str(getattr(t, "args", "")) for t in getattr(image, "tile", [])) and image.mode == "RGB":
                repairs.append("16bit")
            image.load()
    except SkipImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SkipImage("too_large") from None
    except OSError as e:
        raise SkipImage("truncated" if "truncated" in str(e) else "undecodable") from None
    except Exception:  # Pillow raises many types (SyntaxError, ValueError, struct.error) on junk
        raise SkipImage("undecodable") from None

    orientation = image.getexif().get(0x0112, 1)
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
        repairs.append("exif_rotated")
    return _to_rgb(image, repairs), repairs


def _to_rgb(image, repairs):
    mode = image.mode
    if mode == "P":
        repairs.append("palette")
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "PA":
        repairs.append("palette")
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in _GRAY_MODES:
        raise SkipImage("grayscale")
    if mode in ("RGBA", "RGBa"):
        repairs.append("alpha")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    if mode == "CMYK":
        repairs.append("cmyk")
        return image.convert("RGB")
    if mode != "RGB":
        repairs.append("other_mode")
        return image.convert("RGB")
    return image


def is_near_grayscale(image, threshold):
    """True if an RGB image has (almost) no colour: 99th percentile of max-min channel spread."""
    thumb = image.copy()
    thumb.thumbnail((64, 64))
    pixels = np.asarray(thumb, dtype=np.int16)
    spread = pixels.max(axis=-1) - pixels.min(axis=-1)
    return float(np.percentile(spread, 99)) < threshold


def resize_short_side(image, short_side):
    """Pillow resize so that min(width, height) == short_side (Lanczos, aspect kept).

    Never upscales: an image whose short side is already at most ``short_side``
    (or any image when ``short_side`` is 0) is returned as it is, so shards of
    150 px photos stay 150 px on disk.
    """
    width, height = image.size
    if not short_side or min(width, height) <= short_side:
        return image
    scale = short_side / min(width, height)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    if width <= height:
        size = (short_side, size[1])
    else:
        size = (size[0], short_side)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_image(image, config):
    """Cleaned RGB image -> (JPEG bytes, height, width) at the configured short side."""
    image = resize_short_side(image, config.short_side)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=config.jpeg_quality, subsampling=0 if config.jpeg_quality >= 90 else 2)
    return buffer.getvalue(), image.height, image.width


def prepare_example(record, loader, config):
    """Loads, checks and encodes one record. Returns ``(example bytes, repairs)``; raises SkipImage."""
    image, repairs = loader(record, config.short_side)
    if min(image.size) < config.min_side:
        raise SkipImage("too_small")
    if is_near_grayscale(image, config.gray_threshold):
        raise SkipImage("near_grayscale")
    encoded, height, width = encode_image(image, config)
    example = features.make_example(encoded, height, width, record.label, record.class_name, record.source)
    # deterministic: map keys in sorted order, so the same photo gives the same bytes in every process
    return example.SerializeToString(deterministic=True), repairs
