"""Hint maps, reference histograms and simulated hints (keras_colorize.guidance.hint_ops)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_colorize import color
from keras_colorize.guidance import hint_ops
from keras_colorize.guidance import spec
from keras_colorize.models import ab_bins


def _lab(rgb_uint8):
    return color.rgb_to_lab(tf.image.convert_image_dtype(rgb_uint8, tf.float32)).numpy()


def test_paint_hints_places_each_patch_around_its_point_and_later_points_win():
    hints = hint_ops.paint_hints([[10.5, 5.5], [11.2, 6.9]], [[60.0, -20.0], [5.0, 10.0]], [3, 1], 16).numpy()
    assert hints.shape == (16, 16, spec.HINT_CHANNELS)
    mask = hints[..., 2]
    # A 3 px patch centred on pixel (x=10, y=5): rows 4..6, columns 9..11; the 1 px point is inside it.
    assert sorted(map(tuple, np.argwhere(mask > 0))) == [(y, x) for y in (4, 5, 6) for x in (9, 10, 11)]
    np.testing.assert_allclose(hints[5, 10, :2], np.array([60.0, -20.0]) / spec.HINT_AB_SCALE)
    np.testing.assert_allclose(hints[6, 11, :2], np.array([5.0, 10.0]) / spec.HINT_AB_SCALE)  # the later point
    assert np.all(hints[mask == 0] == 0)


def test_paint_hints_even_sizes_edges_and_no_points():
    hints = hint_ops.paint_hints([[0.2, 15.9]], [[1.0, 1.0]], [4], 16).numpy()
    # Size 4 from a corner: clipped to the image, never wrapped around.
    assert sorted(map(tuple, np.argwhere(hints[..., 2] > 0))) == [(y, x) for y in (14, 15) for x in (0, 1, 2)]
    empty = hint_ops.paint_hints(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0,), np.int32), 8).numpy()
    assert empty.shape == (8, 8, 3) and not empty.any()
    gray = hint_ops.paint_hints([[4, 4]], [[0.0, 0.0]], [1], 8).numpy()
    assert gray[4, 4, 2] == 1 and not gray[..., :2].any()  # a gray hint differs from no hint by its mask


def test_reference_vector_is_the_ab_histogram_of_the_photo():
    rng = np.random.default_rng(0)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), 4, 0), 4, 1)  # 32 x 32: no resize blur
    vector = hint_ops.reference_vector(rgb).numpy()
    assert vector.shape == (spec.REFERENCE_SIZE,) and vector[-1] == 1.0
    expected = np.bincount(ab_bins.nearest_bins(_lab(rgb)[..., 1:]).ravel(), minlength=ab_bins.NUM_BINS) / rgb[..., 0].size
    np.testing.assert_allclose(vector[:-1], expected, atol=1e-6)
    # Any size: a large photo of one colour puts all of its weight in that colour's bin.
    orange = np.zeros((300, 500, 3), np.uint8) + np.array([230, 120, 30], np.uint8)
    big = hint_ops.reference_vector(orange).numpy()
    assert big[:-1].argmax() == ab_bins.nearest_bins(_lab(orange[:1, :1])[0, 0, 1:]) and big[:-1].max() == 1.0


def _ground_truth(batch=4, size=32, seed=0):
    rgb = np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    return rgb, _lab(rgb)[..., 1:]


def test_simulated_hints_follow_zhang_et_al():
    rgb, ab = _ground_truth(batch=64, size=32)
    counts, given = [], []
    for i in range(8):
        hints, reference = hint_ops.simulate_hints(ab, rgb, tf.constant([i, 7]))
        hints, reference = hints.numpy(), reference.numpy()
        counts += [int(h[..., 2].any()) for h in hints]
        given += list(reference[:, -1])
        # A hinted pixel's value is the mean a*b* of some patch of the ground truth: within its range.
        on = hints[..., 2] > 0
        assert np.all(np.abs(hints[..., :2][on]) <= 128.0 / spec.HINT_AB_SCALE)
        # Reference: the crop's own histogram for the given ones, zeros for the others.
        for r, img in zip(reference, rgb):
            if r[-1]:
                np.testing.assert_allclose(r, hint_ops.reference_vector(img).numpy(), atol=1e-6)
            else:
                assert not r.any()
    none_share, given_share = 1 - np.mean(counts), np.mean(given)
    # 512 draws: 1/8 get no points (sd 0.015) and 1/2 the reference (sd 0.022).
    assert 0.06 < none_share < 0.2, none_share
    assert 0.4 < given_share < 0.6, given_share


def test_automatic_probability_makes_that_share_hint_free():
    rgb, ab = _ground_truth(batch=64, size=32)
    seed = tf.constant([3, 7])
    shares = {}
    for a in (0.0, 0.5, 1.0):
        hints, reference = hint_ops.simulate_hints(ab, rgb, seed, automatic_probability=a)
        free = ~hints.numpy()[..., 2].any(axis=(1, 2)) & (reference.numpy()[:, -1] == 0)
        shares[a] = free.mean()
    # a + (1 - a) / 8 / 2: 1/16, 0.53, 1 (64 draws: sd about 0.06 at a = 0.5).
    assert shares[1.0] == 1.0 and shares[0.0] < 0.2 and 0.35 < shares[0.5] < 0.75, shares
    # The other draws keep their streams: the crops that a = 0.5 leaves alone get exactly the hints and
    # reference of the default schedule (a = 0), so the paper's schedule is reproduced bit for bit.
    default_hints, default_ref = (t.numpy() for t in hint_ops.simulate_hints(ab, rgb, seed))
    half_hints, half_ref = (t.numpy() for t in hint_ops.simulate_hints(ab, rgb, seed, automatic_probability=0.5))
    kept = half_hints[..., 2].any(axis=(1, 2)) | (half_ref[:, -1] > 0)
    assert kept.sum() >= 10, kept.sum()
    np.testing.assert_array_equal(half_hints[kept], default_hints[kept])
    np.testing.assert_array_equal(half_ref[kept], default_ref[kept])


def test_simulated_hint_values_are_patch_means_of_the_ground_truth():
    size = 16
    # Left half one colour, right half another: a patch inside one half must carry exactly that colour.
    ab = np.zeros((2, size, size, 2), np.float32)
    ab[:, :, : size // 2] = [30.0, -40.0]
    ab[:, :, size // 2:] = [-20.0, 50.0]
    hints = hint_ops.sample_hints(ab, 30, tf.constant([1, 2])).numpy()
    assert hints.shape == (2, size, size, 3) and (hints[..., 2].sum((1, 2)) > 0).all()
    values = hints[..., :2] * spec.HINT_AB_SCALE
    left, right = np.array([30.0, -40.0]), np.array([-20.0, 50.0])
    for b, y, x in np.argwhere(hints[..., 2] > 0):
        t = np.dot(values[b, y, x] - left, right - left) / np.dot(right - left, right - left)
        # On the segment between the two colours (a patch straddling the border mixes them) ...
        np.testing.assert_allclose(values[b, y, x], left + t * (right - left), atol=1e-3)
        assert -1e-4 <= t <= 1 + 1e-4
    # ... and patches inside one half are pure: the mean of their own pixels, not of the image.
    on = values[hints[..., 2] > 0]
    assert np.any(np.all(np.abs(on - left) < 1e-3, -1)) and np.any(np.all(np.abs(on - right) < 1e-3, -1))


def test_evaluation_hints_are_nested_and_seeded():
    rgb, ab = _ground_truth(batch=3, size=32, seed=1)
    seed = tf.constant([0, 4])
    two = hint_ops.sample_hints(ab, 2, seed, max_points=50).numpy()
    ten = hint_ops.sample_hints(ab, 10, seed, max_points=50).numpy()
    again = hint_ops.sample_hints(ab, 10, seed, max_points=50).numpy()
    np.testing.assert_array_equal(ten, again)
    assert np.all(ten[..., 2][two[..., 2] > 0] > 0)  # the 2 points are among the 10
    assert (ten[..., 2].sum() > two[..., 2].sum())
    assert not hint_ops.sample_hints(ab, 0, seed).numpy().any()


def test_simulation_runs_inside_a_tf_function_like_eagerly():
    rgb, ab = _ground_truth(batch=4, size=32, seed=2)
    seed = tf.constant([5, 6])
    eager = hint_ops.simulate_hints(ab, rgb, seed)
    graph = tf.function(hint_ops.simulate_hints)(tf.constant(ab), tf.constant(rgb), seed)
    for e, g in zip(eager, graph):
        np.testing.assert_allclose(e.numpy(), g.numpy(), atol=1e-6)


@pytest.mark.parametrize("bad", [0, 10])
def test_patch_sizes_are_clipped_to_the_documented_range(bad):
    hints = hint_ops.paint_hints([[8.0, 8.0]], [[10.0, 10.0]], [bad], 32).numpy()
    side = int(round(np.sqrt(hints[..., 2].sum())))
    assert side == (spec.MIN_PATCH if bad < spec.MIN_PATCH else spec.MAX_PATCH)
