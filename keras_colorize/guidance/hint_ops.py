"""Hint maps and reference histograms as TensorFlow ops (eager, ``tf.data`` and SavedModel graphs alike).

One implementation serves every place a guided model runs: the training pipeline simulates
hints with :func:`simulate_hints`, ``evaluate`` draws fixed-count hints with
:func:`sample_hints`, and the commands, the SavedModel's ``colorize_guided`` signature and the
LiteRT runner paint user hints with :func:`paint_hints` and histogram a reference photo with
:func:`reference_vector`. The layout of the outputs is :mod:`keras_colorize.guidance.spec`.

Hint simulation follows Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with
Learned Deep Priors", Sec. 3.1): the number of points is geometric (p = 1/8, so about 1/8 of
images get none), locations are drawn from a Gaussian around the centre (sd = S/4 per axis),
the patch side is uniform in 1..9 grid pixels and the hint value is the patch's mean a*b*.

Example::

    hints = paint_hints([[40.5, 12.5]], [[60.0, 50.0]], [3], image_size=128)   # (128, 128, 3)
    reference = reference_vector(sunset_uint8)                                 # (262,)
"""

import numpy as np
import tensorflow as tf

from keras_colorize import color
from keras_colorize.guidance import spec
from keras_colorize.models import ab_bins

#: Side of the grid a reference photo is resized to before its a*b* histogram (the palette, not the layout).
REFERENCE_GRID = 32
#: Geometric parameter of the simulated number of points (Zhang et al. 2017: 1/8).
GEOMETRIC_P = 1.0 / 8.0
#: Most points one simulated example gets (the geometric draw is clipped here; P(n > 48) is 0.2 %).
MAX_SIMULATED_POINTS = 48
#: Share of training examples that get the reference (global) hint.
REFERENCE_PROBABILITY = 0.5
#: Share of training examples made automatic outright (no points, no reference) before the draws above.
AUTOMATIC_PROBABILITY = 0.0

_OFFSETS = np.arange(spec.MAX_PATCH, dtype=np.int32)


def _patch_pixels(points_xy, sizes, image_size):
    """Pixels of each point's square patch.

    Args:
      points_xy: (B, P, 2) float (x, y) in grid pixels.
      sizes: (B, P) int32 patch sides in [MIN_PATCH, MAX_PATCH].
      image_size: S.

    Returns:
      ``(yy, xx, inside)``: (B, P, MAX_PATCH, MAX_PATCH) int32 rows and columns (clipped into
      the image) and a bool mask of the pixels that belong to the patch and lie inside.
    """
    size = tf.clip_by_value(tf.cast(sizes, tf.int32), spec.MIN_PATCH, spec.MAX_PATCH)
    centre = tf.clip_by_value(tf.cast(tf.floor(points_xy), tf.int32), 0, image_size - 1)
    start = centre - ((size - 1) // 2)[..., None]  # (B, P, 2): x0, y0
    offsets = tf.constant(_OFFSETS)
    rows = start[..., 1, None] + offsets  # (B, P, M)
    cols = start[..., 0, None] + offsets
    in_patch = offsets < size[..., None]  # (B, P, M)
    row_ok = in_patch & (rows >= 0) & (rows < image_size)
    col_ok = in_patch & (cols >= 0) & (cols < image_size)
    inside = row_ok[..., :, None] & col_ok[..., None, :]
    yy = tf.broadcast_to(tf.clip_by_value(rows, 0, image_size - 1)[..., :, None], tf.shape(inside))
    xx = tf.broadcast_to(tf.clip_by_value(cols, 0, image_size - 1)[..., None, :], tf.shape(inside))
    return yy, xx, inside


def _paint(yy, xx, inside, colors_ab, valid, image_size):
    """(B, S, S, 3) hint maps: each valid point's patch gets its colour; later points win overlaps."""
    shape = tf.shape(inside)
    batch, points = shape[0], shape[1]
    ids = tf.range(1, points + 1, dtype=tf.int32)[None, :, None, None]
    keep = inside & tf.cast(valid, tf.bool)[:, :, None, None]
    updates = tf.where(keep, tf.broadcast_to(ids, shape), 0)
    bb = tf.broadcast_to(tf.range(batch, dtype=tf.int32)[:, None, None, None], shape)
    indices = tf.reshape(tf.stack([bb, yy, xx], -1), [-1, 3])
    owner = tf.tensor_scatter_nd_max(tf.zeros([batch, image_size, image_size], tf.int32), indices,
                                     tf.reshape(updates, [-1]))  # 0 = no hint, else point index + 1
    mask = tf.cast(owner > 0, tf.float32)[..., None]
    colors = tf.concat([tf.zeros([batch, 1, 2], tf.float32), tf.cast(colors_ab, tf.float32)], axis=1)
    ab = tf.gather(colors, owner, batch_dims=1)  # (B, S, S, 2)
    return tf.concat([ab / spec.HINT_AB_SCALE * mask, mask], axis=-1)


def paint_hints(points_xy, colors_ab, sizes, image_size):
    """The hint map of user points.

    Args:
      points_xy: (N, 2) float (x, y) in model-grid pixels (0..S; pixel i covers [i, i+1)).
      colors_ab: (N, 2) float a*b* in Lab units.
      sizes: (N,) int patch sides in grid pixels (clipped to 1..9).
      image_size: the model's side S (a Python int).

    Returns:
      (S, S, 3) float32: a*/128, b*/128 and the mask (see :mod:`keras_colorize.guidance.spec`).
    """
    points_xy = tf.reshape(tf.cast(points_xy, tf.float32), [1, -1, 2])
    colors_ab = tf.reshape(tf.cast(colors_ab, tf.float32), [1, -1, 2])
    sizes = tf.reshape(tf.cast(sizes, tf.int32), [1, -1])
    yy, xx, inside = _patch_pixels(points_xy, sizes, image_size)
    return _paint(yy, xx, inside, colors_ab, tf.ones_like(sizes, tf.bool), image_size)[0]


def no_hints(image_size, batch=None):
    """Zeros: the hint map of no hints, (S, S, 3) or (batch, S, S, 3)."""
    shape = [image_size, image_size, spec.HINT_CHANNELS]
    return tf.zeros(shape if batch is None else [batch] + shape, tf.float32)


def no_reference(batch=None):
    """Zeros: the reference input of no reference photo, (R,) or (batch, R)."""
    return tf.zeros([spec.REFERENCE_SIZE] if batch is None else [batch, spec.REFERENCE_SIZE], tf.float32)


def _nearest_bin(ab):
    """(..., 2) a*b* -> (...) int32 index of the nearest bin centre."""
    centres = tf.constant(ab_bins.bin_centers(), tf.float32)  # (K, 2)
    flat = tf.reshape(ab, [-1, 2])
    # |ab - c|^2 without its |ab|^2 term (the same for every bin): one matmul instead of a
    # (pixels, K, 2) broadcast, about 50x faster on CPU in the training pipeline.
    d2 = tf.reduce_sum(tf.square(centres), axis=-1) - 2.0 * tf.matmul(flat, centres, transpose_b=True)
    return tf.reshape(tf.argmin(d2, axis=-1, output_type=tf.int32), tf.shape(ab)[:-1])


def reference_histograms(rgb):
    """(B, H, W, 3) RGB (uint8, or float in [0, 1]) -> (B, R) reference inputs with the flag set.

    Each photo is resized to 32 x 32 (antialiased: its palette, not its layout) and the a*b*
    of every pixel counted in its nearest bin; the histogram sums to 1.
    """
    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype == tf.uint8:
        rgb = tf.image.convert_image_dtype(rgb, tf.float32)
    rgb = tf.cast(rgb, tf.float32)
    small = tf.clip_by_value(
        tf.image.resize(rgb, [REFERENCE_GRID, REFERENCE_GRID], method="area", antialias=True), 0.0, 1.0)
    ab = color.rgb_to_lab(small)[..., 1:]
    batch = tf.shape(rgb)[0]
    bins = tf.reshape(_nearest_bin(ab), [batch, -1]) + spec.NUM_REFERENCE_BINS * tf.range(batch)[:, None]
    counts = tf.reshape(tf.math.bincount(tf.reshape(bins, [-1]), minlength=batch * spec.NUM_REFERENCE_BINS,
                                         maxlength=batch * spec.NUM_REFERENCE_BINS, dtype=tf.float32),
                        [batch, spec.NUM_REFERENCE_BINS])
    hist = counts / tf.cast(REFERENCE_GRID * REFERENCE_GRID, tf.float32)
    return tf.concat([hist, tf.ones_like(hist[:, :1])], axis=-1)


def reference_vector(rgb):
    """(H, W, 3) RGB of any size (uint8, or float in [0, 1]) -> (R,) float32 reference input."""
    return reference_histograms(tf.convert_to_tensor(rgb)[None])[0]


def _draw_points(ab, counts, seed, max_points):
    """Simulated points for a batch of ground truths ``ab`` (B, S, S, 2) in a*b* units.

    Returns (B, S, S, 3) hint maps; example b gets ``counts[b]`` points (at most ``max_points``).
    """
    image_size = int(ab.shape[1])
    batch = tf.shape(ab)[0]
    loc_seed, size_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    centre = image_size / 2.0
    points = tf.random.stateless_normal([batch, max_points, 2], loc_seed, mean=centre, stddev=image_size / 4.0)
    points = tf.clip_by_value(points, 0.0, image_size - 1e-3)
    sizes = tf.random.stateless_uniform([batch, max_points], size_seed, minval=spec.MIN_PATCH,
                                        maxval=spec.MAX_PATCH + 1, dtype=tf.int32)
    valid = tf.range(max_points)[None, :] < tf.cast(counts, tf.int32)[:, None]
    yy, xx, inside = _patch_pixels(points, sizes, image_size)
    shape = tf.shape(inside)
    bb = tf.broadcast_to(tf.range(batch, dtype=tf.int32)[:, None, None, None], shape)
    values = tf.gather_nd(tf.cast(ab, tf.float32), tf.stack([bb, yy, xx], -1))  # (B, P, M, M, 2)
    weight = tf.cast(inside, tf.float32)[..., None]
    mean_ab = tf.reduce_sum(values * weight, axis=[2, 3]) / tf.maximum(tf.reduce_sum(weight, axis=[2, 3]), 1.0)
    return _paint(yy, xx, inside, mean_ab, valid, image_size)


def sample_hints(ab, num_points, seed, max_points=None):
    """``num_points`` hints per image drawn from the ground truth, as ``evaluate`` does (fixed seed).

    Locations and patch sizes follow the training distribution. With ``max_points`` the
    points are the first ``num_points`` of one fixed sequence of ``max_points``, so the
    hints of N points are part of the hints of any larger N (the same seed).

    Args:
      ab: (B, S, S, 2) float ground-truth a*b* in Lab units.
      num_points: Python int >= 0.
      seed: int [2] stateless seed.
      max_points: length of the sequence (default ``num_points``).
    """
    ab = tf.convert_to_tensor(ab, tf.float32)
    batch = tf.shape(ab)[0]
    if num_points == 0:
        return no_hints(int(ab.shape[1]), batch)
    max_points = max(num_points, max_points or 0)
    return _draw_points(ab, tf.fill([batch], num_points), seed, max_points)


def simulate_hints(ab, rgb, seed, reference_probability=REFERENCE_PROBABILITY,
                   automatic_probability=AUTOMATIC_PROBABILITY, max_points=MAX_SIMULATED_POINTS):
    """Training hints for a batch: geometric point counts and the reference given to about half.

    An example is automatic (no points and no reference) with probability
    ``a + (1 - a) * p * (1 - r)``: ``a`` = ``automatic_probability``, ``p`` = GEOMETRIC_P (the
    chance of no points), ``r`` = ``reference_probability``; with the defaults 1/16.

    Args:
      ab: (B, S, S, 2) float ground-truth a*b* in Lab units.
      rgb: (B, S, S, 3) the same crops as RGB (uint8 or float), for the reference histograms.
      seed: int [2] stateless seed.
      reference_probability: share of the (not outright automatic) examples given the reference.
      automatic_probability: share of examples given neither points nor reference outright.

    Returns:
      ``(hints (B, S, S, 3), reference (B, R))``.
    """
    count_seed, point_seed, ref_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    auto_seed = tf.random.experimental.stateless_fold_in(seed, 4)  # the three draws above keep their streams
    batch = tf.shape(ab)[0]
    u = tf.random.stateless_uniform([batch], count_seed, minval=1e-7, maxval=1.0)
    # Geometric on {0, 1, ...}: P(n = k) = (1 - p)^k p.
    counts = tf.minimum(tf.floor(tf.math.log(u) / tf.math.log(1.0 - GEOMETRIC_P)), float(max_points))
    automatic = tf.random.stateless_uniform([batch], auto_seed) < automatic_probability
    counts = tf.where(automatic, 0.0, counts)
    hints = _draw_points(ab, counts, point_seed, max_points)
    given = (tf.random.stateless_uniform([batch, 1], ref_seed) < reference_probability) & ~automatic[:, None]
    reference = tf.where(given, reference_histograms(rgb), 0.0)
    return hints, reference
