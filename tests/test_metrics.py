"""The paper's metrics against an independent NumPy/skimage computation."""

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from keras_colorize import color
from keras_colorize.evaluation import metrics


def _numpy_reference(rgb_true_u8, ab_pred_norm):
    lab_true = skcolor.rgb2lab(rgb_true_u8 / 255.0)
    l_in = lab_true[..., :1] / 100.0
    ab_true = (lab_true[..., 1:] + 128.0) / 255.0
    mae = np.abs(ab_pred_norm - ab_true).mean(axis=(1, 2, 3))
    mse_ab = ((ab_pred_norm - ab_true) ** 2).mean(axis=(1, 2, 3))
    lab_pred = np.concatenate([lab_true[..., :1], ab_pred_norm * 255.0 - 128.0], -1)
    rgb_pred = np.round(np.clip(skcolor.lab2rgb(lab_pred), 0, 1) * 255.0)
    lab_back = skcolor.rgb2lab(rgb_pred / 255.0)
    got = np.concatenate([lab_back[..., :1] / 100.0, (lab_back[..., 1:] + 128.0) / 255.0], -1)
    want = np.concatenate([l_in, ab_true], -1)
    mse_lab = ((got - want) ** 2).mean(axis=(1, 2, 3))
    return l_in, ab_true, dict(mae=mae, mse_ab=mse_ab, mse_lab=mse_lab)


def _numpy_colorfulness(rgb):
    rgb = rgb.astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    axes = (1, 2)
    return np.sqrt(rg.std(axis=axes) ** 2 + yb.std(axis=axes) ** 2) + 0.3 * np.sqrt(
        rg.mean(axis=axes) ** 2 + yb.mean(axis=axes) ** 2
    )


def test_paper_metrics_match_numpy():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 24, 20, 3)).astype(np.uint8)
    ab_pred = rng.uniform(0.2, 0.8, size=(3, 24, 20, 2))
    l_in, ab_true, ref = _numpy_reference(rgb, ab_pred)
    ours = metrics.paper_metrics(tf.constant(l_in, tf.float32), tf.constant(ab_true, tf.float32), tf.constant(ab_pred, tf.float32))
    for key in ("mae", "mse_ab"):
        np.testing.assert_allclose(ours[key].numpy(), ref[key], rtol=1e-4, atol=1e-6)
    # mse_lab goes through 8-bit rounding: allow rare one-level rounding differences.
    np.testing.assert_allclose(ours["mse_lab"].numpy(), ref["mse_lab"], rtol=2e-2, atol=1e-5)


def test_perfect_prediction_scores_zero_and_gray_baseline_is_gray():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(2, 16, 16, 3)).astype(np.uint8)
    l_in, ab_true = color.rgb_to_model(tf.constant(rgb))
    m = metrics.paper_metrics(l_in, ab_true, ab_true)
    assert float(tf.reduce_max(m["mae"])) < 1e-6
    assert float(tf.reduce_max(m["mse_lab"])) < 2e-5  # 8-bit round trip only
    gray = metrics.gray_prediction(l_in)
    assert gray.shape == ab_true.shape
    rgb_gray = metrics.predicted_rgb(l_in, gray).numpy()
    assert float(tf.reduce_max(metrics.colorfulness(rgb_gray))) == 0.0


def test_colorfulness_matches_numpy_and_is_zero_for_exact_gray():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(4, 10, 12, 3)).astype(np.uint8)
    np.testing.assert_allclose(metrics.colorfulness(rgb).numpy(), _numpy_colorfulness(rgb), rtol=1e-4)
    l_in, _ = color.rgb_to_model(tf.constant(rgb))
    gray = color.float_to_uint8(color.l_to_gray_rgb(color.input_to_l(l_in)))
    assert float(tf.reduce_max(metrics.colorfulness(gray))) == 0.0


def test_psnr_ssim_identity_and_shapes():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-10, 11, size=a.shape), 0, 255).astype(np.uint8)
    mse = ((a.astype(float) - b.astype(float)) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(a, b).numpy(), 10 * np.log10(255.0**2 / mse), rtol=1e-4)
    np.testing.assert_allclose(metrics.ssim(a, a).numpy(), 1.0, atol=1e-5)
    assert metrics.ssim(a, b).shape == (2,)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="ab_pred"):
        metrics.paper_metrics(tf.zeros([1, 4, 4, 1]), tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 3]))
