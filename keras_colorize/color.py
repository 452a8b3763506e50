"""sRGB <-> CIE L*a*b* as TensorFlow ops, and the model's normalized units.

Everything here is plain TF math on float32 tensors of shape ``[..., 3]`` (or
``[..., 1]`` / ``[..., 2]`` for the channel helpers), so it runs eagerly,
inside ``tf.data`` and inside SavedModel signatures, batched or not.

Conventions (identical to ``skimage.color.rgb2lab`` with its defaults):

* sRGB transfer curve (IEC 61966-2-1), linear RGB -> XYZ with the sRGB/D65
  matrix, CIE 1976 L*a*b* against the D65 2-degree white.
* The white point is taken as the XYZ of RGB white under that matrix
  (row sums, 0.950456 / 1 / 1.088754) instead of the rounded published
  (0.95047 / 1 / 1.08883), so every pure gray maps to exactly a* = b* = 0. The
  difference to skimage is below 0.003 in a*/b* anywhere in the cube.

Model units (the paper's normalization):

* input  ``L / 100``           in [0, 1]
* target ``(ab + 128) / 255``  in [0, 1] (what the sigmoid head predicts)
"""

import numpy as np
import tensorflow as tf

# Linear sRGB -> XYZ (D65), the matrix skimage and most references use.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
# XYZ of sRGB white under XYZ_FROM_RGB: grays are exactly neutral.
WHITE_D65 = XYZ_FROM_RGB.sum(axis=1)
# Linear RGB -> XYZ / white, the argument of the CIE f().
_T_FROM_LINEAR_RGB = XYZ_FROM_RGB / WHITE_D65[:, None]

_EPSILON = 0.008856  # (6/29)^3, rounded as in the CIE publication
_KAPPA_SLOPE = 7.787  # (29/6)^2 / 3, rounded
_F_THRESHOLD = 0.2068966  # 6/29
_AB_OFFSET = 128.0
_AB_SCALE = 255.0
_L_SCALE = 100.0


def _as_float_rgb(rgb):
    """uint8 -> [0,1] float32; floats are taken as already in [0, 1]."""
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        return tf.cast(rgb, tf.float32) / 255.0
    if rgb.dtype == tf.uint16:
        return tf.cast(rgb, tf.float32) / 65535.0
    if not rgb.dtype.is_floating:
        raise ValueError(f"rgb must be uint8, uint16 or float, got dtype {rgb.dtype.name}")
    return tf.cast(rgb, tf.float32)


def _check_channels(x, n, name):
    if x.shape.rank is not None and x.shape[-1] is not None and x.shape[-1] != n:
        raise ValueError(f"{name} must have {n} channels in the last axis, got shape {x.shape}")


def _matmul_channels(x, matrix):
    """x[..., 3] @ matrix.T for a constant (k, 3) matrix -> [..., k].

    A reshape to 2-D and one MatMul: several times faster than tensordot or
    broadcasting on the CPU, and the same in XLA.
    """
    m = tf.constant(matrix.T, dtype=tf.float32)
    flat = tf.matmul(tf.reshape(x, [-1, 3]), m)
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [matrix.shape[0]]], axis=0))


def _pow(x, exponent):
    """x ** exponent for x > 0 as exp(log(x) * exponent): 2-5x faster than
    tf.pow on the CPU (its generic kernel) at float32 precision."""
    return tf.exp(tf.math.log(x) * exponent)


def _srgb_decode(v):
    return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)


# Linear value of each 8-bit code: 8-bit input is linearized by a table look-up.
_LINEAR_FROM_UINT8 = _srgb_decode(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def srgb_to_linear(rgb):
    """sRGB transfer curve, inverse: encoded -> linear [0,1].

    uint8 input goes through an exact 256-entry table; floats are clipped to
    [0, 1] and computed.
    """
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        return tf.gather(tf.constant(_LINEAR_FROM_UINT8), tf.cast(rgb, tf.int32))
    rgb = tf.clip_by_value(_as_float_rgb(rgb), 0.0, 1.0)
    safe = tf.maximum((rgb + 0.055) / 1.055, 0.04045)
    return tf.where(rgb > 0.04045, _pow(safe, 2.4), rgb / 12.92)


def linear_to_srgb(linear):
    """sRGB transfer curve: linear [0,1] -> encoded [0,1] (clipped)."""
    linear = tf.clip_by_value(tf.cast(linear, tf.float32), 0.0, 1.0)
    safe = tf.maximum(linear, 0.0031308)  # keeps log() away from 0
    return tf.where(linear > 0.0031308, 1.055 * _pow(safe, 1.0 / 2.4) - 0.055, linear * 12.92)


def _lab_f(t):
    """CIE f(t): cube root above (6/29)^3, linear below."""
    return tf.where(t > _EPSILON, _pow(tf.maximum(t, _EPSILON), 1.0 / 3.0), _KAPPA_SLOPE * t + 16.0 / 116.0)


def rgb_to_lab(rgb):
    """sRGB image(s) -> CIE L*a*b* (D65).

    Args:
      rgb: ``[..., 3]`` tensor, uint8 / uint16, or float in [0, 1].

    Returns:
      float32 ``[..., 3]``: L in [0, 100], a and b roughly in [-128, 127].

    Example:
      >>> lab = rgb_to_lab(tf.constant([[255, 0, 0]], tf.uint8))  # ~(53.2, 80.1, 67.2)
    """
    rgb = tf.convert_to_tensor(rgb)
    _check_channels(rgb, 3, "rgb")
    # XYZ already divided by the white point: one matrix.
    t = _matmul_channels(srgb_to_linear(rgb), _T_FROM_LINEAR_RGB)
    fx, fy, fz = tf.unstack(_lab_f(t), axis=-1)
    lightness = tf.maximum(116.0 * fy - 16.0, 0.0)  # no -6e-8 for black under XLA
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return tf.stack([lightness, a, b], axis=-1)


def lab_to_rgb(lab):
    """CIE L*a*b* (D65) -> sRGB float32 in [0, 1] (out-of-gamut values clipped)."""
    return linear_to_srgb(lab_to_linear_rgb(lab))


def lab_to_linear_rgb(lab):
    """CIE L*a*b* (D65) -> linear RGB float32, not clipped (may leave [0, 1]).

    For gamut mapping that needs to know how far out of gamut a colour is
    (:func:`fit_to_gamut` keeps L exact by desaturating instead of clipping).
    """
    lab = tf.cast(tf.convert_to_tensor(lab), tf.float32)
    _check_channels(lab, 3, "lab")
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = tf.maximum(fy - b / 200.0, 0.0)
    f = tf.stack([fx, fy, fz], axis=-1)
    t = tf.where(f > _F_THRESHOLD, f * f * f, (f - 16.0 / 116.0) / _KAPPA_SLOPE)
    xyz = t * tf.constant(WHITE_D65, dtype=tf.float32)
    return _matmul_channels(xyz, RGB_FROM_XYZ)


def rgb_to_l(rgb):
    """Lightness only, ``[..., 1]`` in [0, 100]; cheaper than the full conversion."""
    rgb = tf.convert_to_tensor(rgb)
    _check_channels(rgb, 3, "rgb")
    y = _matmul_channels(srgb_to_linear(rgb), XYZ_FROM_RGB[1:2])  # [..., 1]
    return tf.maximum(116.0 * _lab_f(y) - 16.0, 0.0)


def fit_to_gamut(linear_rgb):
    """Brings linear RGB ``[..., 3]`` into [0, 1] by mixing with the gray of equal luminance.

    Luminance ``Y`` is linear in linear RGB and the gray ``(Y, Y, Y)`` has the
    same ``Y``, so every mix keeps ``Y`` (hence L*) and the hue; the largest
    mix factor ``t <= 1`` that keeps all three channels in [0, 1] is taken per
    pixel. In-gamut colours are unchanged. Unlike the per-channel clipping of
    :func:`lab_to_rgb`, an impossible colour keeps its lightness.

    Example:
      >>> srgb = linear_to_srgb(fit_to_gamut(lab_to_linear_rgb(lab)))  # L* of ``lab`` kept
    """
    linear_rgb = tf.cast(tf.convert_to_tensor(linear_rgb), tf.float32)
    _check_channels(linear_rgb, 3, "linear_rgb")
    y = tf.clip_by_value(_matmul_channels(linear_rgb, XYZ_FROM_RGB[1:2]), 0.0, 1.0)  # [..., 1]
    d = linear_rgb - y
    safe = tf.where(tf.abs(d) > 1e-12, d, tf.ones_like(d))
    limit = tf.where(linear_rgb > 1.0, (1.0 - y) / safe, tf.where(linear_rgb < 0.0, -y / safe, tf.ones_like(d)))
    t = tf.clip_by_value(tf.reduce_min(limit, axis=-1, keepdims=True), 0.0, 1.0)
    return tf.clip_by_value(y + t * d, 0.0, 1.0)


def l_to_gray_rgb(lightness):
    """``[..., 1]`` L in [0, 100] -> gray sRGB ``[..., 3]`` in [0, 1] (a* = b* = 0).

    Computed through Y alone, so R = G = B exactly (no float noise between
    channels): a gray prediction stays exactly gray after 8-bit rounding.
    """
    lightness = tf.cast(lightness, tf.float32)
    fy = (lightness + 16.0) / 116.0
    y = tf.where(fy > _F_THRESHOLD, fy * fy * fy, (fy - 16.0 / 116.0) / _KAPPA_SLOPE)
    gray = linear_to_srgb(y)
    return tf.concat([gray, gray, gray], axis=-1)


# ----------------------------------------------------------------------------
# Model units
# ----------------------------------------------------------------------------


def l_to_input(lightness):
    """L in [0, 100] -> model input L/100 in [0, 1]."""
    return tf.cast(lightness, tf.float32) / _L_SCALE


def input_to_l(x):
    """Model input in [0, 1] -> L in [0, 100]."""
    return tf.cast(x, tf.float32) * _L_SCALE


def ab_to_target(ab):
    """a*b* -> (ab + 128) / 255, the range of the model's sigmoid output."""
    return (tf.cast(ab, tf.float32) + _AB_OFFSET) / _AB_SCALE


def target_to_ab(target):
    """Inverse of :func:`ab_to_target`."""
    return tf.cast(target, tf.float32) * _AB_SCALE - _AB_OFFSET


# Target value of a neutral (gray) pixel: a* = b* = 0.
GRAY_TARGET = _AB_OFFSET / _AB_SCALE


def rgb_to_model(rgb):
    """sRGB -> (``L/100`` ``[..., 1]``, ``(ab+128)/255`` ``[..., 2]``)."""
    lab = rgb_to_lab(rgb)
    return l_to_input(lab[..., :1]), ab_to_target(lab[..., 1:])


def model_to_rgb(l_input, ab_target):
    """(``L/100``, ``(ab+128)/255``) -> sRGB float32 in [0, 1]."""
    lab = tf.concat([input_to_l(l_input), target_to_ab(ab_target)], axis=-1)
    return lab_to_rgb(lab)


def float_to_uint8(rgb):
    """[0, 1] float -> uint8 with rounding (not truncation)."""
    return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8)
