"""The paper's evaluation metrics, and image-quality figures beside them.

One implementation, used by the trainer's validation and by
``python -m keras_colorize.evaluate``. All functions take batches and return
one float32 value per image (shape ``(N,)``); average them yourself.

Definitions (the paper's normalized units: ``L/100`` and ``(ab + 128) / 255``,
both in [0, 1]):

* ``mae``: mean over pixels and the two channels of ``|ab_pred - ab_true|``.
  The paper's "average MAE" (its Table 2) is the mean of this over images.
* ``mse_ab``: mean over pixels and channels of ``(ab_pred - ab_true)^2``.
* ``mse_lab``: the prediction is first made what a user gets: L from the input
  plus predicted a*b*, converted to an 8-bit sRGB image and back to L*a*b*;
  then the mean over pixels and the three channels of the squared difference
  to the ground truth ``(L/100, (ab+128)/255)``.
* ``psnr`` / ``ssim``: on 8-bit sRGB, ``max_val = 255`` (``tf.image.psnr`` and
  ``tf.image.ssim`` with their default 11x11 Gaussian window, averaged over
  the three channels).
* ``colorfulness``: Hasler and Suesstrunk (2003), on 8-bit sRGB:
  ``rg = R - G``, ``yb = (R + G) / 2 - B``,
  ``C = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)``.
  A gray image scores 0.
"""

import tensorflow as tf

from keras_colorize import color


def _per_image_mean(x):
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def _check_batch(name, x, channels):
    if x.shape.rank != 4 or (x.shape[-1] is not None and x.shape[-1] != channels):
        raise ValueError(f"{name} must have shape (N, H, W, {channels}), got {x.shape}")


def predicted_rgb(l_input, ab_pred):
    """What a user gets: L from the input plus predicted a*b*, as 8-bit sRGB."""
    return color.float_to_uint8(color.model_to_rgb(l_input, ab_pred))


def paper_metrics(l_input, ab_true, ab_pred):
    """Per-image ``mae``, ``mse_ab`` and ``mse_lab`` in the paper's normalized units.

    Args:
      l_input: ``(N, H, W, 1)`` model input, ``L / 100``.
      ab_true: ``(N, H, W, 2)`` ground truth, ``(ab + 128) / 255``.
      ab_pred: ``(N, H, W, 2)`` prediction in the same units.

    Returns:
      dict of ``(N,)`` float32 tensors.

    Example:
      >>> m = paper_metrics(l, ab, model(l)["ab"]); float(tf.reduce_mean(m["mae"]))
    """
    l_input = tf.cast(l_input, tf.float32)
    ab_true = tf.cast(ab_true, tf.float32)
    ab_pred = tf.cast(ab_pred, tf.float32)
    _check_batch("l_input", l_input, 1)
    _check_batch("ab_true", ab_true, 2)
    _check_batch("ab_pred", ab_pred, 2)
    diff = ab_pred - ab_true
    l_got, ab_got = color.rgb_to_model(predicted_rgb(l_input, ab_pred))
    lab_diff = tf.concat([l_got - l_input, ab_got - ab_true], axis=-1)
    return {
        "mae": _per_image_mean(tf.abs(diff)),
        "mse_ab": _per_image_mean(tf.square(diff)),
        "mse_lab": _per_image_mean(tf.square(lab_diff)),
    }


def gray_prediction(l_input):
    """The "predict gray" baseline: a* = b* = 0 everywhere, in model units."""
    l_input = tf.convert_to_tensor(l_input)
    shape = tf.concat([tf.shape(l_input)[:-1], [2]], axis=0)
    return tf.fill(shape, tf.constant(color.GRAY_TARGET, tf.float32))


def psnr(rgb_true, rgb_pred):
    """Per-image PSNR in dB of two uint8 ``(N, H, W, 3)`` batches."""
    return tf.image.psnr(tf.cast(rgb_true, tf.float32), tf.cast(rgb_pred, tf.float32), max_val=255.0)


def ssim(rgb_true, rgb_pred):
    """Per-image SSIM of two uint8 ``(N, H, W, 3)`` batches (mean over channels)."""
    return tf.image.ssim(tf.cast(rgb_true, tf.float32), tf.cast(rgb_pred, tf.float32), max_val=255.0)


def colorfulness(rgb):
    """Hasler-Suesstrunk colorfulness of uint8 ``(N, H, W, 3)`` images, ``(N,)``."""
    rgb = tf.cast(rgb, tf.float32)
    _check_batch("rgb", rgb, 3)
    r, g, b = tf.unstack(rgb, axis=-1)
    rg = tf.reshape(r - g, [tf.shape(rgb)[0], -1])
    yb = tf.reshape(0.5 * (r + g) - b, [tf.shape(rgb)[0], -1])
    std = tf.sqrt(tf.math.reduce_variance(rg, axis=1) + tf.math.reduce_variance(yb, axis=1))
    mean = tf.sqrt(tf.square(tf.reduce_mean(rg, axis=1)) + tf.square(tf.reduce_mean(yb, axis=1)))
    return std + 0.3 * mean
