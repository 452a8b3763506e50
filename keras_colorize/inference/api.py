"""Colorize photographs at full resolution with a trained model: the Python API.

The network sees a fixed square input (256 px in the paper). Like Zhang et al.
(2016) and DeOldify, :class:`Colorizer` therefore

1. computes CIE L* of the whole image at its own resolution,
2. resizes L* (antialiased) to the model's input size and predicts a*b*,
3. upsamples the predicted a*b* bilinearly to the original size and merges it
   with the original full-resolution L*,

so the output has exactly the input's size, and all its detail comes from the
input. Colours that fall outside sRGB are desaturated towards the gray of the
same luminance instead of being clipped channel by channel, so the output's
L* equals the input's (up to 8-bit rounding) even where the model asks for an
impossible colour.

The full-resolution steps run as one XLA-compiled kernel over fixed-size
chunks of pixels (compiled once per model input size, whatever the image
size), so a 12-megapixel photo costs a fraction of a second and its memory is
a few copies of the image.

Example::

    from keras_colorize import Colorizer
    colorizer = Colorizer.from_path("runs/demo/model.keras")
    colorized = colorizer.colorize(PIL.Image.open("scan.jpg"))   # PIL in, PIL out
    arrays = colorizer.colorize_batch([gray_uint8_array, rgba_uint16_array])
"""

import os
import pathlib
import zipfile

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_colorize import color
from keras_colorize.inference import images
from keras_colorize.models import model_contract
from keras_colorize import pretrained

# Pixels per full-resolution kernel call. Fixed sizes keep XLA from recompiling
# for every image size: the largest chunk that fits goes first; the tail is
# padded up to the smallest size.
_CHUNKS = (1 << 16, 1 << 20)
_LUMINANCE = tf.constant(color.XYZ_FROM_RGB[1], tf.float32)  # linear RGB -> Y; sums to 1


# ----------------------------------------------------------------------------
# Full-resolution kernels
# ----------------------------------------------------------------------------


def fit_to_gamut(linear_rgb):
    """Brings linear RGB into [0, 1] by mixing with the gray of equal luminance.

    Luminance ``Y`` is linear in linear RGB and the gray ``(Y, Y, Y)`` has the
    same ``Y``, so every mix keeps ``Y`` (hence L*) and the hue; the largest
    mix factor ``t <= 1`` that keeps all three channels in [0, 1] is taken per
    pixel. In-gamut colours are unchanged.
    """
    y = tf.clip_by_value(tf.tensordot(linear_rgb, _LUMINANCE, axes=[[-1], [0]])[..., None], 0.0, 1.0)
    d = linear_rgb - y
    safe = tf.where(tf.abs(d) > 1e-12, d, tf.ones_like(d))
    limit = tf.where(linear_rgb > 1.0, (1.0 - y) / safe, tf.where(linear_rgb < 0.0, -y / safe, tf.ones_like(d)))
    t = tf.clip_by_value(tf.reduce_min(limit, axis=-1, keepdims=True), 0.0, 1.0)
    return tf.clip_by_value(y + t * d, 0.0, 1.0)


def _bilinear_gather(ab_small, index, height, width):
    """a*b* (model units) at flat output pixels ``index`` of a ``height x width`` image.

    Bilinear with half-pixel centres, the convention of ``tf.image.resize``.
    """
    in_h = tf.shape(ab_small)[0]
    in_w = tf.shape(ab_small)[1]
    y = tf.cast(index // width, tf.float32)
    x = tf.cast(index % width, tf.float32)
    sy = tf.clip_by_value((y + 0.5) * (tf.cast(in_h, tf.float32) / tf.cast(height, tf.float32)) - 0.5,
                          0.0, tf.cast(in_h - 1, tf.float32))
    sx = tf.clip_by_value((x + 0.5) * (tf.cast(in_w, tf.float32) / tf.cast(width, tf.float32)) - 0.5,
                          0.0, tf.cast(in_w - 1, tf.float32))
    y0 = tf.cast(tf.floor(sy), tf.int32)
    x0 = tf.cast(tf.floor(sx), tf.int32)
    y1 = tf.minimum(y0 + 1, in_h - 1)
    x1 = tf.minimum(x0 + 1, in_w - 1)
    wy = (sy - tf.cast(y0, tf.float32))[:, None]
    wx = (sx - tf.cast(x0, tf.float32))[:, None]
    flat = tf.reshape(ab_small, [-1, 2])
    top = (1.0 - wx) * tf.gather(flat, y0 * in_w + x0) + wx * tf.gather(flat, y0 * in_w + x1)
    bottom = (1.0 - wx) * tf.gather(flat, y1 * in_w + x0) + wx * tf.gather(flat, y1 * in_w + x1)
    return (1.0 - wy) * top + wy * bottom


# Two kernels, not one: fused into the colour conversion, XLA recomputes the
# bilinear gather for every consumer and the whole is ~1.6x slower.
@tf.function(jit_compile=True, reduce_retracing=True)
def _upsample_chunk(start, size, height, width, ab_small):
    return _bilinear_gather(ab_small, start + tf.range(size), height, width)


@tf.function(jit_compile=True, reduce_retracing=True)
def _lab_to_srgb_chunk(lightness, ab_target, out_dtype):
    lab = tf.concat([lightness[:, None], color.target_to_ab(ab_target)], axis=-1)
    srgb = color.linear_to_srgb(fit_to_gamut(color.lab_to_linear_rgb(lab)))
    return tf.cast(tf.round(srgb * out_dtype.max), out_dtype)


def _merge_chunk(lightness, start, height, width, ab_small, out_dtype):
    ab = _upsample_chunk(start, tf.constant(lightness.shape[0], tf.int32), height, width, ab_small)
    return _lab_to_srgb_chunk(lightness, ab, out_dtype)


# L* of 8-bit sRGB: exact linearisation by table lookup, then L*(Y) from a
# 65,537-entry table over Y in [0, 1] with linear interpolation (error below
# 0.01 L* unit), both tables made with keras_colorize.color. ~5x faster than
# evaluating the transfer curve and the cube root per pixel.
_Y_STEPS = 65536
_LINEAR_OF_CODE = None
_L_OF_Y = None


def _lightness_tables():
    global _LINEAR_OF_CODE, _L_OF_Y
    if _L_OF_Y is None:
        codes = np.arange(256, dtype=np.float32) / 255.0
        _LINEAR_OF_CODE = tf.constant(color.srgb_to_linear(codes).numpy())
        y = np.arange(_Y_STEPS + 1, dtype=np.float32) / _Y_STEPS
        gray = np.repeat(color.linear_to_srgb(y).numpy()[:, None], 3, axis=1)
        _L_OF_Y = tf.constant(color.rgb_to_l(gray).numpy()[:, 0])
    return _LINEAR_OF_CODE, _L_OF_Y


@tf.function(jit_compile=True, reduce_retracing=True)
def _lightness_chunk_uint8(rgb, linear_of_code, l_of_y):
    linear = tf.gather(linear_of_code, tf.cast(rgb, tf.int32))
    y = tf.clip_by_value(tf.tensordot(linear, _LUMINANCE, axes=[[-1], [0]]), 0.0, 1.0) * _Y_STEPS
    i0 = tf.minimum(tf.cast(y, tf.int32), _Y_STEPS - 1)
    frac = y - tf.cast(i0, tf.float32)
    return tf.gather(l_of_y, i0) * (1.0 - frac) + tf.gather(l_of_y, i0 + 1) * frac


@tf.function(jit_compile=True, reduce_retracing=True)
def _lightness_chunk(rgb):
    return color.rgb_to_l(rgb)[:, 0]


def _chunked(flat, fn, out_dtype, out_shape_tail=()):
    """Applies ``fn(chunk, start)`` over fixed-size chunks of the first axis."""
    n = flat.shape[0]
    out = np.empty((n,) + out_shape_tail, out_dtype)
    start = 0
    while start < n:
        size = max((c for c in _CHUNKS if c <= n - start), default=_CHUNKS[0])
        piece = flat[start:start + size]
        valid = piece.shape[0]
        if valid < size:
            pad = np.zeros((size - valid,) + piece.shape[1:], piece.dtype)
            piece = np.concatenate([piece, pad])
        out[start:start + valid] = fn(piece, start).numpy()[:valid]
        start += valid
    return out


_GRAY_LUTS = {}


def _gray_lut(dtype):
    if dtype not in _GRAY_LUTS:
        top = np.iinfo(dtype).max
        ramp = np.arange(top + 1, dtype=np.float32) / top
        _GRAY_LUTS[dtype] = color.rgb_to_l(np.repeat(ramp[:, None], 3, axis=1)).numpy()[:, 0]
    return _GRAY_LUTS[dtype]


def _channels_equal(pixels):
    """True for RGB that is really gray (common for scans), checked a band at a time."""
    for top in range(0, pixels.shape[0], 256):
        band = pixels[top:top + 256]
        if not (np.array_equal(band[..., 0], band[..., 1]) and np.array_equal(band[..., 0], band[..., 2])):
            return False
    return True


def lightness(pixels):
    """CIE L* in [0, 100], float32 ``(H, W)``, of ``(H, W, 1|3)`` uint8/uint16 sRGB pixels."""
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim != 3 or pixels.shape[-1] not in (1, 3):
        raise ValueError(f"pixels must be (H, W, 1|3) uint8 or uint16, got shape {pixels.shape} dtype {pixels.dtype}")
    height, width, channels = pixels.shape
    if channels == 1 or _channels_equal(pixels):  # gray: L* is a function of the code value
        return _gray_lut(pixels.dtype)[pixels[..., 0]]
    flat = pixels.reshape(-1, 3)
    if pixels.dtype == np.uint8:
        tables = _lightness_tables()
        fn = lambda piece, _: _lightness_chunk_uint8(piece, *tables)  # noqa: E731
    else:
        fn = lambda piece, _: _lightness_chunk(piece)  # noqa: E731
    return _chunked(flat, fn, np.float32).reshape(height, width)


def model_input(l_full, image_size):
    """Full-resolution L* ``(H, W)`` -> model input ``(S, S, 1)`` = L/100, antialiased resize.

    Pillow's triangle filter widened to the scale factor (true antialiasing);
    ``reducing_gap`` first box-averages by an integer factor (a large photo
    needs it for speed; the result differs by a fraction of an L* unit).
    """
    small = Image.fromarray(np.ascontiguousarray(l_full, dtype=np.float32), "F").resize(
        (image_size, image_size), Image.BILINEAR, reducing_gap=3.0)
    return (np.asarray(small, dtype=np.float32) / 100.0)[..., None]


def merge(l_full, ab_small, out_dtype=np.uint8):
    """Full-resolution L* ``(H, W)`` + predicted ``(h, w, 2)`` a*b* target -> sRGB ``(H, W, 3)``.

    Args:
      l_full: float32 L* in [0, 100] at the output size.
      ab_small: the model's a*b* output, ``(ab + 128) / 255``, any size.
      out_dtype: ``np.uint8`` or ``np.uint16``.
    """
    height, width = l_full.shape
    tf_dtype = tf.as_dtype(np.dtype(out_dtype))
    if tf_dtype not in (tf.uint8, tf.uint16):
        raise ValueError(f"out_dtype must be uint8 or uint16, got {out_dtype!r}")
    ab_small = tf.constant(np.asarray(ab_small, np.float32))
    h_t, w_t = tf.constant(height, tf.int32), tf.constant(width, tf.int32)
    flat = np.ascontiguousarray(l_full, dtype=np.float32).reshape(-1)
    out = _chunked(flat, lambda piece, start: _merge_chunk(piece, tf.constant(start, tf.int32), h_t, w_t,
                                                          ab_small, tf_dtype), out_dtype, (3,))
    return out.reshape(height, width, 3)


# ----------------------------------------------------------------------------
# Model wrappers
# ----------------------------------------------------------------------------


class _KerasPredictor:
    def __init__(self, model):
        contract = check_model_contract(model)
        self.image_size = contract.image_size
        self.model = model
        ab_key = contract.ab_key

        @tf.function(input_signature=[tf.TensorSpec([None, self.image_size, self.image_size, 1], tf.float32)])
        def predict(l_input):
            outputs = model(l_input, training=False)
            if isinstance(outputs, dict):
                return outputs[ab_key]
            return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

        self._predict = predict
        self.batch_dim = None

    def __call__(self, l_input):
        return self._predict(tf.constant(l_input, tf.float32)).numpy()


class _SavedModelPredictor:
    """Calls the first SavedModel signature that fits the model contract (float (B, S, S, 1) L in, ab out)."""

    def __init__(self, path):
        self._loaded = tf.saved_model.load(str(path))
        names = sorted(self._loaded.signatures, key=lambda k: (k != "serving_default", k))
        reasons = []
        for key in names:
            fn = self._loaded.signatures[key]
            try:
                contract = model_contract.check_signature(fn)
            except ValueError as e:
                reasons.append(f"{key}: {e}")
                continue
            (self._arg, spec), = fn.structured_input_signature[1].items()
            self._fn, self.signature, self._ab_key = fn, key, contract.ab_key
            self.image_size = contract.image_size
            self.batch_dim = contract.batch_size
            self._dtype = spec.dtype
            return
        raise ValueError(f"model path {str(path)!r}: no SavedModel signature fits the colorizer contract "
                         f"(one float (batch, S, S, 1) L input, S a multiple of {model_contract.STRIDE}, "
                         f"an 'ab' (batch, S, S, 2) output): " + ("; ".join(reasons) or "it has no signatures"))

    def __call__(self, l_input):
        if self.batch_dim is not None and l_input.shape[0] != self.batch_dim:
            parts = []
            for i in range(0, l_input.shape[0], self.batch_dim):
                piece = l_input[i:i + self.batch_dim]
                pad = self.batch_dim - piece.shape[0]
                if pad:
                    piece = np.concatenate([piece, np.repeat(piece[-1:], pad, axis=0)])
                parts.append(self._call(piece)[:self.batch_dim - pad])
            return np.concatenate(parts)
        return self._call(l_input)

    def _call(self, l_input):
        outputs = self._fn(**{self._arg: tf.constant(l_input, self._dtype)})
        return outputs[self._ab_key].numpy().astype(np.float32)


def check_model_contract(model):
    """Checks a ``keras.Model`` against the colorizer contract; see :mod:`keras_colorize.models.model_contract`.

    Returns the :class:`keras_colorize.models.model_contract.Contract` (``image_size``,
    ``ab_key``, ``num_classes``); raises ``ValueError`` saying what does not fit.
    """
    return model_contract.check_model_contract(model)


def _one_line(text):
    return " ".join(str(text).split())


def _load_keras_file(path):
    """A ``keras.Model`` from a ``.keras`` / ``.h5`` file; ValueError for a file that is not one."""
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise ValueError(f"model path {str(path)!r}: not a valid Keras model file "
                         f"({'empty file, 0 bytes' if size == 0 else f'{size} bytes, not a zip archive'})")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".h5" and head != b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"model path {str(path)!r}: not a valid Keras model file (not an HDF5 file)")
    import keras  # noqa: PLC0415

    import keras_colorize.models  # noqa: F401,PLC0415 - registers the custom layers

    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"model path {str(path)!r}: not a valid Keras model file "
                         f"({type(e).__name__}: {_one_line(e)[:300]})") from e


def load_keras_model(spec):
    """A contract-checked ``keras.Model`` from a bundled name or a ``.keras`` / ``.h5`` path (for the exporters).

    Same checks and messages as :func:`load_predictor`: a missing path, a
    name that is not installed, a file that is not a Keras model ("not a
    valid Keras model file (...)"), a model that does not fit the contract.
    """
    path = pathlib.Path(pretrained.resolve(os.fspath(spec)))
    if not path.is_file():
        raise ValueError(f"model path {os.fspath(spec)!r} does not exist or is not a file")
    if path.suffix not in (".keras", ".h5"):
        raise ValueError(f"model path {str(path)!r} must be a .keras file")
    model = _load_keras_file(path)
    try:
        check_model_contract(model)
    except ValueError as e:
        raise ValueError(f"model path {str(path)!r}: {e}") from e
    return model


def load_predictor(model):
    """A callable ``(B, S, S, 1) L/100 -> (B, S, S, 2) ab target`` with ``.image_size``.

    The model is checked against the colorizer contract
    (:mod:`keras_colorize.models.model_contract`) here, before any image is read.

    Args:
      model: a ``keras.Model`` (e.g. from ``build_colorizer``), a bundled
        model name (:data:`keras_colorize.pretrained.NAMES`, e.g.
        ``"scenes"``), a path to a ``.keras`` file, or a path to a SavedModel
        directory.

    Raises:
      ValueError: a missing path, a name that is not installed, a file that is
        not a Keras model, a folder that is not a SavedModel, or a model that
        does not fit the contract.
    """
    if isinstance(model, (str, os.PathLike)):
        spec = os.fspath(model)
        path = pathlib.Path(pretrained.resolve(spec))
        if not path.exists():
            raise ValueError(f"model path {spec!r} does not exist (bundled model names: "
                             f"{', '.join(pretrained.NAMES)})")
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise ValueError(f"model path {str(path)!r} is a folder without saved_model.pb (not a SavedModel)")
            return _SavedModelPredictor(path)
        if path.suffix not in (".keras", ".h5"):
            raise ValueError(f"model path {str(path)!r} must be a .keras file or a SavedModel folder")
        loaded = _load_keras_file(path)
        try:
            return _KerasPredictor(loaded)
        except ValueError as e:
            raise ValueError(f"model path {str(path)!r}: {e}") from e
    if hasattr(model, "inputs") and callable(model):
        return _KerasPredictor(model)
    raise ValueError(f"model must be a keras.Model, a bundled model name or a path, got {type(model).__name__}")


# ----------------------------------------------------------------------------
# The public API
# ----------------------------------------------------------------------------


class Colorizer:
    """Full-resolution colorization of photographs with a trained model.

    Args:
      model: a ``keras.Model`` (``build_colorizer(...)``), a bundled model
        name (``"scenes"``, see :mod:`keras_colorize.pretrained`), a
        ``.keras`` path or a SavedModel folder (see :func:`load_predictor`).
      batch_size: images per network call in :meth:`colorize_batch`.

    Gray, RGB (re-colorized from its own L*), RGBA (alpha kept), 8- and 16-bit
    inputs are accepted; the output has the input's size.

    Example::

        colorizer = Colorizer.from_path("model.keras")
        out = colorizer.colorize(np.asarray(PIL.Image.open("scan.png")))  # (H, W, 3) uint8
    """

    def __init__(self, model, *, batch_size=8):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self._predictor = load_predictor(model)
        self.image_size = self._predictor.image_size
        self.batch_size = batch_size

    @classmethod
    def from_path(cls, path, **kwargs):
        """Loads a bundled model by name (``"scenes"``), a ``.keras`` file or a SavedModel folder."""
        return cls(path, **kwargs)

    # -- low level, shared with evaluation and film --------------------------

    def predict_ab(self, l_small):
        """``(B, S, S, 1)`` L/100 at the model size -> ``(B, S, S, 2)`` a*b* target units."""
        l_small = np.asarray(l_small, np.float32)
        if l_small.ndim != 4 or l_small.shape[1:] != (self.image_size, self.image_size, 1):
            raise ValueError(f"l_small must have shape (B, {self.image_size}, {self.image_size}, 1), "
                             f"got {l_small.shape}")
        outs = [self._predictor(l_small[i:i + self.batch_size]) for i in range(0, len(l_small), self.batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self.image_size, self.image_size, 2), np.float32)

    def colorize_pictures(self, pictures):
        """Colorizes :class:`keras_colorize.inference.images.Picture` objects.

        Returns:
          list of ``(rgb, alpha)``: rgb ``(H, W, 3)`` in the picture's bit depth
          (uint8 or uint16), alpha as given (or None).
        """
        results = []
        for i in range(0, len(pictures), self.batch_size):
            chunk = pictures[i:i + self.batch_size]
            l_full = [lightness(p.pixels) for p in chunk]
            ab = self.predict_ab(np.stack([model_input(l, self.image_size) for l in l_full]))
            for picture, l, ab_i in zip(chunk, l_full, ab):
                results.append((merge(l, ab_i, picture.pixels.dtype.type), picture.alpha))
        return results

    # -- convenience ---------------------------------------------------------

    def colorize(self, image):
        """Colorizes one image at full resolution.

        Args:
          image: ``PIL.Image`` (returns a ``PIL.Image``, RGB or RGBA), a NumPy
            array ``(H, W)`` / ``(H, W, 1|2|3|4)`` uint8, uint16 or float in
            [0, 1] (returns the same dtype, 3 or 4 channels), or a file path
            (returns a ``PIL.Image``).
        """
        return self.colorize_batch([image])[0]

    def colorize_batch(self, images_in):
        """Colorizes a list of images (types as in :meth:`colorize`), batching the network calls."""
        pictures, kinds = [], []
        for image in images_in:
            if isinstance(image, Image.Image):
                image.load()
                pictures.append(images.from_pil(image))
                kinds.append("pil")
            elif isinstance(image, (str, os.PathLike)):
                pictures.append(images.read_image(image))
                kinds.append("pil")
            else:
                array = np.asarray(image)
                pictures.append(images.from_array(array))
                kinds.append(array.dtype)
        outputs = []
        for (rgb, alpha), kind in zip(self.colorize_pictures(pictures), kinds):
            if alpha is not None:
                rgb = np.concatenate([rgb, alpha.astype(rgb.dtype)[..., None]], axis=-1)
            if kind == "pil":
                if rgb.dtype == np.uint16:
                    rgb = images.to_uint8(rgb)  # PIL has no 48-bit RGB mode
                outputs.append(Image.fromarray(rgb, "RGBA" if rgb.shape[-1] == 4 else "RGB"))
            elif np.issubdtype(kind, np.floating):
                outputs.append((rgb.astype(np.float32) / 65535.0).astype(kind))
            else:
                outputs.append(rgb)
        return outputs
