"""The full-resolution steps around the network: the photo's L*, the model input, the merge.

The network sees a fixed square input (256 px in the paper). Like Zhang et al.
(2016) and DeOldify, every colorizer here therefore

1. computes CIE L* of the whole image at its own resolution (:func:`lightness`),
2. resizes L* (bilinear, antialiased) to the model's input size
   (:func:`model_input`), the network predicts a*b*,
3. upsamples the predicted a*b* bilinearly (half-pixel centres) to the
   original size and merges it with the original full-resolution L*; colours
   outside sRGB are desaturated at constant L* (:func:`keras_colorize.color.fit_to_gamut`).

Step 2 has one implementation, TF ops that run eagerly for photos and film
and inside the SavedModel's ``serving_default``. Step 3 has two, measured to
be worth it (BUILD_NOTES.md), sharing the colour conversion (:func:`_srgb_codes`):

* :func:`merge_chunked`: NumPy in, NumPy out, XLA-compiled kernels over
  fixed-size flat chunks of pixels, compiled once per model input size
  whatever the image size; bounded memory (a few copies of the image). The
  colorize CLI, film, the LiteRT runner and :class:`keras_colorize.inference.api.Colorizer`.
* :func:`merge_graph`: whole-image graph ops, for the serving graph, which
  must be one self-contained graph of plain TF ops (no Python loop over
  NumPy chunks). About 9x slower on a 12 MP image (6.3 s against 0.7 s,
  2 loaded cores) and ~90 bytes per pixel of memory.

Step 1 is :func:`lightness` (lookup tables, XLA chunks) for NumPy pixels and
:func:`keras_colorize.color.rgb_to_l` in the graph. ``tests/test_merge.py``
runs the same image through both paths, step by step, and pins the
differences. No Pillow here: the serving graph imports this module.

Example::

    l_full = lightness(pixels)                        # (H, W) float32
    ab = predict(model_input(l_full, 256)[None])[0]   # (256, 256, 2)
    rgb = merge_chunked(l_full, ab)                   # (H, W, 3) uint8
"""

import numpy as np
import tensorflow as tf

from keras_colorize import color

# Pixels per full-resolution kernel call. Fixed sizes keep XLA from recompiling
# for every image size: the largest chunk that fits goes first; the tail is
# padded up to the smallest size.
_CHUNKS = (1 << 16, 1 << 20)
_LUMINANCE = color.XYZ_FROM_RGB[1].astype(np.float32)  # linear RGB -> Y; sums to 1


# ----------------------------------------------------------------------------
# Resampling: one convention for every path
# ----------------------------------------------------------------------------


def downscale(image, image_size):
    """``[B,] H, W, C`` -> ``[B,] S, S, C``: bilinear with antialiasing (a triangle filter widened to the scale)."""
    return tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)


def upsample(image, size):
    """``[B,] h, w, C`` -> ``[B,] H, W, C``: bilinear, half-pixel centres (what :func:`merge_chunked` gathers)."""
    return tf.image.resize(image, size, method="bilinear")


def model_input(lightness, image_size):
    """Full-resolution L* ``(H, W)`` or ``(H, W, 1)`` in [0, 100] -> model input ``(S, S, 1)`` = L/100.

    A float32 tensor (``np.asarray`` it for NumPy), eager or inside a graph.
    The same function for photos, film and the serving graph, so every path
    gives the network the same input.
    """
    lightness = tf.convert_to_tensor(lightness, tf.float32)
    if lightness.shape.rank == 2:
        lightness = lightness[..., None]
    if lightness.shape.rank != 3 or lightness.shape[-1] not in (1, None):
        raise ValueError(f"lightness must have shape (H, W) or (H, W, 1), got {lightness.shape}")
    return tf.clip_by_value(color.l_to_input(downscale(lightness, image_size)), 0.0, 1.0)


# ----------------------------------------------------------------------------
# The colour step shared by both merges
# ----------------------------------------------------------------------------


def _srgb_codes(lightness, ab_target, out_dtype):
    """L* ``[..., 1]`` + a*b* target ``[..., 2]`` -> sRGB codes ``[..., 3]`` of ``out_dtype`` (uint8/uint16)."""
    lab = tf.concat([lightness, color.target_to_ab(ab_target)], axis=-1)
    srgb = color.linear_to_srgb(color.fit_to_gamut(color.lab_to_linear_rgb(lab)))
    return tf.cast(tf.round(srgb * out_dtype.max), out_dtype)


# ----------------------------------------------------------------------------
# Graph path (the SavedModel)
# ----------------------------------------------------------------------------


def merge_graph(lightness, ab_target):
    """Full-resolution L* ``(H, W, 1)`` + model output ``(S, S, 2)`` -> sRGB uint8 ``(H, W, 3)``, as graph ops.

    a*b* (model units) is resized bilinearly (:func:`upsample`) to the L*
    map's size; L* is the original, untouched. Equals :func:`merge_chunked`
    within one 8-bit level.
    """
    ab = upsample(ab_target, tf.shape(lightness)[:2])
    return _srgb_codes(lightness, ab, tf.uint8)


# ----------------------------------------------------------------------------
# Chunked NumPy/XLA path (photos, film, LiteRT)
# ----------------------------------------------------------------------------


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
def _srgb_chunk(lightness, ab_target, out_dtype):
    return _srgb_codes(lightness[:, None], ab_target, out_dtype)


def _merge_chunk(lightness, start, height, width, ab_small, out_dtype):
    ab = _upsample_chunk(start, tf.constant(lightness.shape[0], tf.int32), height, width, ab_small)
    return _srgb_chunk(lightness, ab, out_dtype)


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
    """CIE L* in [0, 100], float32 ``(H, W)``, of ``(H, W, 1|3)`` uint8/uint16 sRGB pixels.

    Equals :func:`keras_colorize.color.rgb_to_l` (the serving graph's L*)
    within 0.01 L* unit, several times faster.
    """
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


def merge_chunked(l_full, ab_small, out_dtype=np.uint8):
    """Full-resolution L* ``(H, W)`` + predicted ``(h, w, 2)`` a*b* target -> sRGB ``(H, W, 3)`` NumPy.

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
