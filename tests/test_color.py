"""CIE Lab ops against skimage.color, the reference implementation."""

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from keras_colorize import color


def _rgb_cube(step=15):
    """Dense sample of the 8-bit RGB cube with its corners, grays and primaries."""
    levels = np.unique(np.concatenate([np.arange(0, 256, step), [255]]))
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    cube = np.stack([r, g, b], -1).reshape(-1, 3)
    grays = np.repeat(np.arange(256)[:, None], 3, axis=1)
    primaries = np.array(
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255], [1, 0, 0], [0, 0, 1]]
    )
    return np.concatenate([cube, grays, primaries]).astype(np.uint8)


def test_rgb_to_lab_matches_skimage():
    rgb = _rgb_cube()
    ours = color.rgb_to_lab(tf.constant(rgb)).numpy()
    ref = skcolor.rgb2lab(rgb[None].astype(np.float64) / 255.0)[0]
    diff = np.abs(ours - ref).max(axis=0)
    assert diff[0] <= 0.01 and diff[1] <= 0.01 and diff[2] <= 0.01, diff


def test_lab_to_rgb_matches_skimage():
    rgb = _rgb_cube()
    lab = skcolor.rgb2lab(rgb[None].astype(np.float64) / 255.0)[0]
    # Also points out of gamut, where both clip.
    rng = np.random.default_rng(0)
    extra = np.stack([rng.uniform(0, 100, 2000), rng.uniform(-128, 127, 2000), rng.uniform(-128, 127, 2000)], -1)
    lab = np.concatenate([lab, extra])
    ours = color.lab_to_rgb(tf.constant(lab, tf.float32)).numpy()
    ref = skcolor.lab2rgb(lab[None])[0]
    assert np.abs(ours - ref).max() <= 1e-3


def test_round_trip_8bit_within_one_level():
    rgb = _rgb_cube(step=5)
    back = color.float_to_uint8(color.lab_to_rgb(color.rgb_to_lab(tf.constant(rgb)))).numpy()
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 1


def test_grays_are_neutral():
    grays = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    lab = color.rgb_to_lab(tf.constant(grays)).numpy()
    assert np.abs(lab[:, 1:]).max() <= 0.01
    # and the inverse of a neutral L is a gray
    rgb = color.l_to_gray_rgb(tf.constant(lab[:, :1])).numpy()
    assert np.abs(rgb - grays / 255.0).max() <= 1.0 / 255


def test_rgb_to_l_matches_full_conversion():
    rgb = _rgb_cube()
    full = color.rgb_to_lab(tf.constant(rgb)).numpy()[:, :1]
    assert np.abs(color.rgb_to_l(tf.constant(rgb)).numpy() - full).max() <= 1e-4


@pytest.mark.parametrize("shape", [(3,), (7, 3), (2, 5, 4, 3)])
def test_batched_or_not_and_inside_tf_function_and_dataset(shape):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=shape, dtype=np.uint8)
    eager = color.rgb_to_lab(rgb).numpy()
    graph = tf.function(color.rgb_to_lab)(tf.constant(rgb)).numpy()
    ds = tf.data.Dataset.from_tensors(rgb).map(color.rgb_to_lab)
    mapped = next(iter(ds)).numpy()
    assert eager.shape == shape and eager.dtype == np.float32
    np.testing.assert_allclose(eager, graph, atol=1e-4)
    np.testing.assert_allclose(eager, mapped, atol=1e-4)


def test_model_units_round_trip_and_range():
    rgb = _rgb_cube()
    l_in, ab_t = color.rgb_to_model(tf.constant(rgb))
    assert 0.0 <= l_in.numpy().min() and l_in.numpy().max() <= 1.0
    assert 0.0 <= ab_t.numpy().min() and ab_t.numpy().max() <= 1.0
    back = color.float_to_uint8(color.model_to_rgb(l_in, ab_t)).numpy()
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 1
    ab = tf.constant([[-128.0, 127.0], [0.0, 0.0]])
    np.testing.assert_allclose(color.target_to_ab(color.ab_to_target(ab)).numpy(), ab.numpy(), atol=1e-4)
    np.testing.assert_allclose(color.ab_to_target(tf.zeros([2])).numpy(), color.GRAY_TARGET)


def test_fit_to_gamut_keeps_luminance_and_in_gamut_colours():
    """Out-of-gamut colours are mixed with their gray: Y (hence L*) kept exactly, in-gamut colours untouched."""
    inside = color.srgb_to_linear(tf.constant(_rgb_cube())).numpy()
    np.testing.assert_allclose(color.fit_to_gamut(inside).numpy(), inside, atol=1e-6)
    rng = np.random.default_rng(2)
    lab = np.stack([rng.uniform(1, 99, 4000), rng.uniform(-128, 127, 4000), rng.uniform(-128, 127, 4000)], -1)
    linear = color.lab_to_linear_rgb(tf.constant(lab, tf.float32)).numpy()
    assert (linear.min(-1) < 0).mean() > 0.5  # most of these are impossible colours
    fitted = color.fit_to_gamut(linear).numpy()
    assert 0.0 <= fitted.min() and fitted.max() <= 1.0
    luminance = color.XYZ_FROM_RGB[1]
    y_fitted, y_linear = (fitted @ luminance)[:, None], (linear @ luminance)[:, None]
    np.testing.assert_allclose(y_fitted, y_linear, atol=1e-5)
    away_from_gray = fitted - y_fitted  # a positive multiple of linear - y: the hue is kept
    assert np.all((np.sign(away_from_gray) == np.sign(linear - y_linear)) | (np.abs(away_from_gray) < 1e-5))
    with pytest.raises(ValueError, match="linear_rgb must have 3 channels"):
        color.fit_to_gamut(tf.zeros([4, 2]))


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="3 channels"):
        color.rgb_to_lab(tf.zeros([4, 4], tf.uint8))
    with pytest.raises(ValueError, match="dtype"):
        color.rgb_to_lab(tf.zeros([4, 3], tf.int32))
