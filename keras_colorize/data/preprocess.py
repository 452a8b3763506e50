"""Preprocessing ops: small pure functions of tensors, usable eagerly and in ``tf.data``.

Each op takes and returns tensors only (no Python state, no op-level random
seeds): randomness comes in as an explicit stateless seed (an int ``[2]``
tensor), so the same seed gives the same crop and flip eagerly, inside
``Dataset.map`` and on every replica. The pipeline
(:mod:`keras_colorize.data.pipeline`) composes them; tests check each one
eagerly against its ``Dataset.map`` twin.

Images are ``[H, W, 3]``; after :func:`decode` they are uint8, after
:func:`to_float` float32 in [0, 1].
"""

import tensorflow as tf

from keras_colorize import color


def decode(encoded):
    """Encoded JPEG (or PNG/BMP/GIF) bytes -> uint8 ``[H, W, 3]``."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def to_float(image):
    """uint8 ``[H, W, 3]`` -> float32 in [0, 1]."""
    return tf.image.convert_image_dtype(image, tf.float32)


def resize_short_side(image, size):
    """Resizes so that the shorter side is ``size`` (aspect kept; no-op if it already is).

    Args:
      image: float32 ``[H, W, C]`` in [0, 1].
      size: target short side in pixels (int or scalar tensor).

    Returns:
      float32 ``[H', W', C]`` with ``min(H', W') == size``, values clipped to [0, 1].
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    size = tf.cast(size, tf.int32)

    def _resize():
        scale = tf.cast(size, tf.float32) / tf.cast(short, tf.float32)
        new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
        new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
        new_h = tf.where(height <= width, size, new_h)
        new_w = tf.where(width < height, size, new_w)
        resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
        return tf.clip_by_value(resized, 0.0, 1.0)

    return tf.cond(tf.equal(short, size), lambda: tf.identity(image), _resize)


def center_crop(image, size):
    """Central ``size x size`` window of an image whose sides are both >= ``size``."""
    shape = tf.shape(image)
    top = (shape[0] - size) // 2
    left = (shape[1] - size) // 2
    cropped = tf.image.crop_to_bounding_box(image, top, left, size, size)
    return tf.ensure_shape(cropped, [size, size, image.shape[-1]])


def random_crop(image, size, seed):
    """Uniformly placed ``size x size`` window; ``seed`` is a stateless int ``[2]`` seed."""
    channels = image.shape[-1]
    cropped = tf.image.stateless_random_crop(image, [size, size, channels], seed=seed)
    return tf.ensure_shape(cropped, [size, size, channels])


def random_flip(image, seed):
    """Left-right flip with probability 1/2; ``seed`` is a stateless int ``[2]`` seed."""
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def to_model_units(image):
    """RGB ``[..., H, W, 3]`` (uint8, or float in [0, 1]) -> (``L/100`` ``[..., 1]``, ``(ab+128)/255`` ``[..., 2]``)."""
    return color.rgb_to_model(image)


# The same op compiled with XLA: the pipeline applies it to whole batches, where
# fusing the elementwise Lab math is ~5x faster than TF's per-op kernels.
to_model_units_batch = tf.function(to_model_units, jit_compile=True)


def resize_short_side_uint8(image, size):
    """:func:`resize_short_side` for uint8 images; untouched (no float round trip) when already that size."""
    short = tf.minimum(tf.shape(image)[0], tf.shape(image)[1])
    return tf.cond(
        tf.equal(short, tf.cast(size, tf.int32)),
        lambda: tf.identity(image),
        lambda: color.float_to_uint8(resize_short_side(to_float(image), size)),
    )


def train_image(encoded, image_size, seed, scale_jitter=1.0):
    """Training view, uint8: decode, short side to ``image_size``, random crop, random flip.

    With ``scale_jitter > 1`` the short side goes to a size drawn uniformly from
    ``[image_size, scale_jitter * image_size]`` first, so the crop is a zoom of up to
    ``scale_jitter`` into the photo (a photo whose short side is the crop size would
    otherwise get only flips). ``scale_jitter=1`` is exactly the unjittered view.
    """
    if not 1.0 <= scale_jitter <= 4.0:
        raise ValueError(f"scale_jitter must be in [1, 4], got {scale_jitter!r}")
    if scale_jitter == 1.0:  # two seeds, as before the option existed: the same crops and flips
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        short = image_size
    else:
        crop_seed, flip_seed, scale_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        largest = int(image_size * scale_jitter)
        short = tf.random.stateless_uniform([], scale_seed, minval=image_size, maxval=largest + 1, dtype=tf.int32)
    image = resize_short_side_uint8(decode(encoded), short)
    return random_flip(random_crop(image, image_size, crop_seed), flip_seed)


def eval_image(encoded, image_size):
    """Evaluation view, uint8: decode, short side to ``image_size``, center crop."""
    image = resize_short_side_uint8(decode(encoded), image_size)
    return center_crop(image, image_size)
