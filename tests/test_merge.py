"""The full-resolution steps (keras_colorize.inference.merge): both paths agree, chroma bilinear, L* kept."""

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from keras_colorize import color
from keras_colorize.export import image_ops
from keras_colorize.inference import merge

# A small real B&W photo (387 x 601) on which the photo path's old model input (Pillow's resize with
# reducing_gap) missed the serving graph's by 1.5 L* units at 64 px (5.6 on the largest photos).
REAL_PHOTO = "OregonTrail1870s.jpg"
# Tolerances, with the figures measured on this machine (TF 2.21, CPU):
L_TOLERANCE = 0.01  # L* units; measured 3e-5 (8-bit L* table vs the direct formula)
INPUT_TOLERANCE = 0.01  # L* units, in the model input; measured 5e-5 (one resampling, the L* difference only)
MERGE_TOLERANCE = 1  # 8-bit levels; measured 1 on under 0.01 % of the pixels (float rounding at .5)


def _synthetic_photo():
    """A smooth colour image with fine noise at an odd size (301 x 451), not from ../shared."""
    rng = np.random.default_rng(0)
    smooth = tf.image.resize(rng.uniform(0, 255, (1, 6, 8, 3)), [301, 451], method="bicubic")[0].numpy()
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("case", ["real", "synthetic"])
def test_photo_and_serving_paths_agree(case, request):
    """The same image through the photo path (NumPy/XLA chunks) and the serving graph: L*, model input, merge."""
    if case == "real":
        path = request.getfixturevalue("bw_dir") / REAL_PHOTO
        if not path.is_file():
            pytest.skip(f"{path} is absent from the shared test data")
        encoded = path.read_bytes()
    else:
        encoded = tf.io.encode_png(_synthetic_photo()).numpy()
    rgb = image_ops.decode_rgb(encoded).numpy()  # the pixels both paths see (one decoder)

    l_photo = merge.lightness(rgb)
    l_graph = tf.function(color.rgb_to_l)(rgb).numpy()[..., 0]
    assert np.abs(l_photo - l_graph).max() <= L_TOLERANCE

    # Model input: photo path eagerly on its L*; serving path as image_ops.model_inputs runs it for each
    # decoded image, in a graph (the request's tf.data plumbing around it costs 6 s to trace, and is tested
    # end to end by test_export_saved_model.py::test_fresh_process_matches_keras).
    in_photo = np.asarray(merge.model_input(l_photo, 64))
    in_graph = tf.function(lambda pixels: merge.model_input(color.rgb_to_l(pixels), 64))(rgb).numpy()
    assert in_photo.shape == in_graph.shape == (64, 64, 1)
    assert 100.0 * np.abs(in_photo - in_graph).max() <= INPUT_TOLERANCE

    # Merge: the same L* and a*b* through both; wide a*b* (much of it out of gamut) exercises fit_to_gamut.
    rng = np.random.default_rng(1)
    ab_small = tf.image.resize(rng.uniform(0, 1, (1, 8, 8, 2)).astype(np.float32), [64, 64])[0].numpy()
    out_chunked = merge.merge_chunked(l_photo, ab_small)
    out_graph = tf.function(merge.merge_graph)(l_photo[..., None], ab_small).numpy()
    assert out_chunked.shape == out_graph.shape == rgb.shape and out_graph.dtype == np.uint8
    assert np.abs(out_chunked.astype(int) - out_graph.astype(int)).max() <= MERGE_TOLERANCE


def test_model_input_checks_its_argument():
    with pytest.raises(ValueError, match=r"lightness must have shape \(H, W\) or \(H, W, 1\), got \(4, 4, 3\)"):
        merge.model_input(np.zeros((4, 4, 3), np.float32), 64)


def test_ab_upsampling_is_bilinear():
    """The merged chroma equals tf.image.resize(bilinear) of the prediction (mid-gray keeps gamut)."""
    rng = np.random.default_rng(1)
    ab_small = np.clip(0.5 + 0.04 * rng.standard_normal((8, 8, 2)), 0.44, 0.56).astype(np.float32)
    l_full = np.full((37, 53), 60.0, np.float32)
    rgb = merge.merge_chunked(l_full, ab_small, np.uint16)
    lab = skcolor.rgb2lab(rgb / 65535.0)
    expected = tf.image.resize(ab_small[None], (37, 53), method="bilinear")[0].numpy() * 255.0 - 128.0
    np.testing.assert_allclose(lab[..., 1:], expected, atol=0.05)


def test_out_of_gamut_keeps_lightness():
    """Extreme predictions are desaturated, not clipped: L* stays, hue direction stays."""
    l_full = np.linspace(1, 99, 64 * 64, dtype=np.float32).reshape(64, 64)
    for corner in ([0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]):
        ab_small = np.broadcast_to(np.array(corner, np.float32), (4, 4, 2))
        rgb = merge.merge_chunked(l_full, ab_small, np.uint16)
        lab = skcolor.rgb2lab(rgb / 65535.0)
        assert np.abs(lab[..., 0] - l_full).max() < 0.05
        sign = np.sign(np.array(corner) - 0.5)
        middle = lab[16:48]  # away from black and white, where any chroma is possible
        assert np.all(np.sign(middle[..., 1]) == sign[0]) and np.all(np.sign(middle[..., 2]) == sign[1])
