"""Reading and writing photographs the way an archive has them.

:func:`read_image` turns any JPEG, PNG, TIFF, WebP or BMP file (gray, RGB,
RGBA, palette, 1-bit, CMYK, 8 or 16 bits per channel) into a :class:`Picture`:
upright (EXIF orientation applied), in sRGB (an embedded ICC profile is
converted with LittleCMS, then dropped), gray kept as one channel, alpha kept
aside untouched. :func:`write_image` writes the result atomically (temporary
name, then ``os.replace``) in the input's format unless told otherwise.

Multi-page TIFF: every page is decoded (``Picture.more_pages``) and
:func:`write_image` writes them back as one multi-page TIFF. Animated WebP
and PNG keep only their first frame; ``Picture.frames`` counts what the file
had, so callers can say what was dropped.

Bit depth: 16-bit gray (PNG/TIFF ``I;16``) and 16-bit RGB(A) PNG are read at
full precision (the latter through ``tf.io.decode_png``, as Pillow reduces
48-bit colour to 8 bits); a 16-bit PNG is written back as 16-bit RGB(A) PNG.
Other 16-bit colour files (48-bit TIFF) are read at 8 bits by Pillow, and
16-bit output in formats other than PNG is written at 8 bits.

Example::

    from keras_colorize.inference import images
    picture = images.read_image("scan.tif")       # Picture(pixels (H, W, 1) uint16, ...)
    images.write_image("out/scan.tif", rgb, alpha=picture.alpha, image_format=picture.format)
"""

import dataclasses
import io
import os
import pathlib
import struct
import warnings

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from keras_colorize import fileio

# Pillow format name -> extensions; the first one is used for new files.
FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "PNG": (".png",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "BMP": (".bmp", ".dib"),
}
EXTENSION_FORMATS = {ext: fmt for fmt, exts in FORMAT_EXTENSIONS.items() for ext in exts}
SUPPORTED_EXTENSIONS = frozenset(EXTENSION_FORMATS)
OUTPUT_FORMATS = ("same", "jpeg", "png", "tiff", "webp", "bmp")

# Big scans are legitimate here; keep Pillow's bomb check only against absurd sizes.
Image.MAX_IMAGE_PIXELS = 1_000_000_000

_SRGB_PROFILE = ImageCms.createProfile("sRGB")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageReadError(ValueError):
    """A file that cannot be read as an image; the message says why."""


@dataclasses.dataclass
class Picture:
    """A decoded, upright sRGB image.

    Attributes:
      pixels: ``(H, W, 1)`` gray or ``(H, W, 3)`` sRGB, uint8 or uint16.
      alpha: ``(H, W)`` alpha of the same dtype, or None.
      format: Pillow format name of the source ("JPEG", "PNG", ...), or None
        for in-memory images.
      dpi: the source's resolution metadata, kept on output (or None).
      frames: pages (multi-page TIFF) or frames (animated WebP, APNG, MPO)
        in the source file; 1 for ordinary images.
      more_pages: the decoded pages after the first of a multi-page TIFF
        (:class:`Picture` objects), else empty. Other formats' extra frames
        are not decoded (``frames`` still counts them).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    format: str | None = None
    dpi: tuple | None = None
    frames: int = 1
    more_pages: list = dataclasses.field(default_factory=list)

    @property
    def height(self):
        return self.pixels.shape[0]

    @property
    def width(self):
        return self.pixels.shape[1]

    @property
    def is_gray(self):
        return self.pixels.shape[-1] == 1

    @property
    def bit_depth(self):
        return 16 if self.pixels.dtype == np.uint16 else 8


def format_for_path(path):
    """Pillow format name from a file name's extension, or None if unsupported."""
    return EXTENSION_FORMATS.get(pathlib.Path(path).suffix.lower())


# ----------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------


def read_image(source):
    """Decodes a file (path, bytes or binary file object) into a :class:`Picture`.

    Raises:
      ImageReadError: empty, truncated, corrupt or non-image input (the message
        names the file and the reason).
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else "<in-memory image>"
    if isinstance(source, (str, os.PathLike)):
        try:
            data = pathlib.Path(source).read_bytes()
        except OSError as e:
            raise ImageReadError(f"{name}: cannot read file ({e.strerror or e})") from e
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    if not data:
        raise ImageReadError(f"{name}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except UnidentifiedImageError as e:
        raise ImageReadError(f"{name}: not a recognised image file") from e
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        raise ImageReadError(f"{name}: corrupt or truncated image ({e})") from e
    try:
        if _is_16bit_color_png(data):
            picture = _read_16bit_png(data, image)
        else:
            picture = from_pil(image)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
        raise ImageReadError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from e
    picture.format = image.format
    dpi = image.info.get("dpi")
    picture.dpi = tuple(float(d) for d in dpi) if dpi else None
    picture.frames = int(getattr(image, "n_frames", 1) or 1)
    if picture.frames > 1 and image.format == "TIFF":
        picture.more_pages = _tiff_pages(image, name)
    return picture


def _tiff_pages(image, name):
    """Pages 2..N of a multi-page TIFF as :class:`Picture` objects (archives keep scans that way)."""
    pages = []
    for index in range(1, image.n_frames):
        try:
            image.seek(index)
            image.load()
            page = from_pil(image.copy())
        except Exception as e:  # noqa: BLE001 - a bad page is a bad file
            raise ImageReadError(f"{name}: cannot decode page {index + 1} of {image.n_frames} "
                                 f"({type(e).__name__}: {e})") from e
        page.format = "TIFF"
        pages.append(page)
    image.seek(0)
    return pages


def from_pil(image):
    """A :class:`Picture` from a loaded ``PIL.Image`` (orientation, ICC and mode handled)."""
    image = ImageOps.exif_transpose(image) or image
    image = _to_srgb(image)
    mode = image.mode
    if mode in ("1", "P", "PA", "La", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        if mode == "1":
            image = image.convert("L")
        elif mode in ("P", "PA"):
            transparent = mode == "PA" or "transparency" in image.info
            image = image.convert("RGBA" if transparent else "RGB")
        elif mode == "La":
            image = image.convert("LA")
        elif mode == "RGBa":
            image = image.convert("RGBA")
        else:
            image = image.convert("RGB")
        mode = image.mode
    if mode in ("LA", "RGBA"):
        array = np.asarray(image)
        return Picture(np.ascontiguousarray(array[..., :-1]), np.ascontiguousarray(array[..., -1]))
    if mode == "L":
        return Picture(np.asarray(image)[..., None])
    if mode == "RGB":
        return Picture(np.asarray(image))
    if mode.startswith("I;16"):
        return Picture(np.asarray(image).astype(np.uint16)[..., None])
    if mode == "I":
        array = np.asarray(image)
        if array.min() >= 0 and array.max() <= 65535:
            return Picture(array.astype(np.uint16)[..., None])
        scaled = (array.astype(np.float64) - array.min()) / max(1, array.max() - array.min())
        return Picture(np.round(scaled * 65535).astype(np.uint16)[..., None])
    if mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float32))
        top = 1.0 if array.max() <= 1.0 else 255.0
        return Picture(np.round(np.clip(array / top, 0, 1) * 65535).astype(np.uint16)[..., None])
    raise ImageReadError(f"unsupported image mode {mode!r}")


def from_array(array):
    """A :class:`Picture` from ``(H, W)``, ``(H, W, 1|2|3|4)`` uint8/uint16/float-in-[0, 1] arrays."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"image must have shape (H, W) or (H, W, 1|2|3|4), got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image must not be empty, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        array = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 65535.0).astype(np.uint16)
    elif array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image dtype must be uint8, uint16 or float in [0, 1], got {array.dtype}")
    alpha = None
    if array.shape[-1] in (2, 4):
        array, alpha = array[..., :-1], np.ascontiguousarray(array[..., -1])
    return Picture(np.ascontiguousarray(array), alpha)


def _to_srgb(image):
    """Converts an image with an embedded ICC profile to sRGB and drops the profile."""
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    image.info.pop("icc_profile", None)
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(profile) or "").lower()
        if "srgb" in description or image.mode not in ("L", "RGB", "RGBA", "CMYK"):
            return image
        if image.mode == "L":
            # A gray profile maps to neutral sRGB (R = G = B): keep one channel.
            converted = ImageCms.profileToProfile(image, profile, _SRGB_PROFILE, outputMode="RGB")
            return converted.getchannel(0) if converted is not None else image
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, profile, _SRGB_PROFILE, outputMode=out_mode)
        return converted if converted is not None else image
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken or mismatched profile (e.g. a gray profile on RGB data): the
        # pixels are most likely sRGB-like already; use them as they are.
        return image


def _is_16bit_color_png(data):
    # IHDR: signature (8) + length (4) + "IHDR" (4) + width (4) + height (4) + depth (1) + color type (1)
    return (len(data) > 26 and data[:8] == _PNG_SIGNATURE and data[24] == 16 and data[25] in (2, 6))


def _read_16bit_png(data, pil_image):
    import tensorflow as tf  # noqa: PLC0415 - only 48/64-bit PNGs need it

    array = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    array = _apply_exif_orientation(array, pil_image)
    alpha = np.ascontiguousarray(array[..., 3]) if array.shape[-1] == 4 else None
    return Picture(np.ascontiguousarray(array[..., :3]), alpha)


def _apply_exif_orientation(array, pil_image):
    orientation = pil_image.getexif().get(0x0112, 1)
    ops = {2: [np.fliplr], 3: [lambda a: np.rot90(a, 2)], 4: [np.flipud],
           5: [lambda a: np.rot90(a, 1), np.flipud], 6: [lambda a: np.rot90(a, 3)],
           7: [lambda a: np.rot90(a, 3), np.flipud], 8: [lambda a: np.rot90(a, 1)]}
    for op in ops.get(orientation, []):
        array = op(array)
    return np.ascontiguousarray(array)


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------


def output_path_for(path, output_format="same"):
    """``path`` with its extension changed to suit ``output_format`` ("same" keeps it)."""
    path = pathlib.Path(path)
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    if output_format == "same":
        return path
    fmt = output_format.upper()
    if format_for_path(path) == fmt:
        return path
    return path.with_suffix(FORMAT_EXTENSIONS[fmt][0])


def write_image(path, rgb, *, alpha=None, image_format=None, dpi=None, quality=95, more_pages=()):
    """Writes an sRGB image atomically (temporary file in the same folder, then rename).

    Args:
      path: destination; its parent folders are created.
      rgb: ``(H, W, 3)`` uint8 or uint16.
      alpha: optional ``(H, W)`` alpha, same dtype (dropped for JPEG).
      image_format: Pillow format name; default from ``path``'s extension.
      dpi: resolution metadata to keep, or None.
      quality: JPEG / WebP quality.
      more_pages: ``[(rgb, alpha), ...]`` pages after the first: TIFF only
        (written as one multi-page TIFF, 8 bits per channel).
    """
    path = pathlib.Path(path)
    image_format = (image_format or format_for_path(path) or "").upper()
    if image_format not in FORMAT_EXTENSIONS:
        raise ValueError(f"image_format must be one of {sorted(FORMAT_EXTENSIONS)}, got {image_format!r} for {path}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"rgb must be (H, W, 3) uint8 or uint16, got shape {rgb.shape} dtype {rgb.dtype}")
    if more_pages and image_format != "TIFF":
        raise ValueError(f"more_pages: only TIFF holds several pages, got image_format {image_format!r} for {path}")
    if image_format == "JPEG":
        alpha = None
    encoded = _encode(rgb, alpha, image_format, dpi, quality, more_pages)
    fileio.atomic_write_bytes(path, encoded)


def _to_pil(rgb, alpha):
    if rgb.dtype == np.uint16:
        rgb = to_uint8(rgb)
        alpha = None if alpha is None else to_uint8(alpha)
    elif alpha is not None and alpha.dtype != np.uint8:
        alpha = to_uint8(alpha)
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(np.ascontiguousarray(alpha), "L"))
    return image


def _encode(rgb, alpha, image_format, dpi, quality, more_pages=()):
    if rgb.dtype == np.uint16 and image_format == "PNG":
        import tensorflow as tf  # noqa: PLC0415

        array = rgb if alpha is None else np.concatenate([rgb, alpha.astype(np.uint16)[..., None]], axis=-1)
        return tf.io.encode_png(array).numpy()
    image = _to_pil(rgb, alpha)
    options = {}
    if more_pages:
        options.update(save_all=True, append_images=[_to_pil(np.asarray(r), a) for r, a in more_pages])
    if dpi:
        options["dpi"] = dpi
    if image_format == "JPEG":
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2, optimize=False)
    elif image_format == "WEBP":
        options.update(quality=quality, method=4)
    elif image_format == "PNG":
        options.update(compress_level=6)
    elif image_format == "TIFF":
        options.update(compression="tiff_lzw")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def to_uint8(array):
    """uint16 -> uint8 with rounding (65535 -> 255)."""
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def is_image_path(path):
    """True when the file name has a supported image extension (case-insensitive)."""
    return pathlib.Path(path).suffix.lower() in SUPPORTED_EXTENSIONS
