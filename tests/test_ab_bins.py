"""a*b* bins (Zhang et al. 2016): in-gamut quantization, soft encoding, rebalancing, annealed mean, the loss,
and the ab_prior command on real shards. Expected values are computed here in NumPy, not by ab_bins."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_colorize.data import pipeline
from keras_colorize.data import shards_lib
from keras_colorize.data import shard_writer
from keras_colorize.data import photo_repair
from keras_colorize.models import ab_bins
from keras_colorize.tools import ab_prior

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _centers():
    return ab_bins.bin_centers()


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


# --- in-gamut bins -----------------------------------------------------------

def _lab_ab_of_all_8bit_srgb():
    """Yields a*b* (N, 2) of all 2^24 8-bit sRGB colours, 256 reds at a time (D65, white = matrix row sums)."""
    m = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    white = m.sum(axis=1)
    v = np.arange(256, dtype=np.float64) / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, np.power((v + 0.055) / 1.055, 2.4))
    gg, bb = np.meshgrid(lin, lin, indexing="ij")
    for r in lin:
        rgb = np.stack([np.full(gg.size, r), gg.ravel(), bb.ravel()], axis=1)
        xyz = rgb @ m.T / white
        f = np.where(xyz > 0.008856, xyz ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
        yield np.stack([500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], axis=1)


def test_in_gamut_bins_match_an_independent_gamut_computation():
    cells = np.zeros((41, 41), bool)  # grid indices -20..20
    for ab in _lab_ab_of_all_8bit_srgb():
        q = np.floor(ab / 10.0 + 0.5).astype(int) + 20
        cells[q[:, 0], q[:, 1]] = True
    expected = np.argwhere(cells).astype(np.float64) * 10 - 200  # a-major, b ascending
    assert len(expected) == 261
    np.testing.assert_array_equal(_centers(), expected)
    assert ab_bins.NUM_BINS == 261
    # The extremes: all centres are multiples of 10 inside [-110, 100].
    assert _centers()[:, 0].min() == -90 and _centers()[:, 0].max() == 100
    assert _centers()[:, 1].min() == -110 and _centers()[:, 1].max() == 90


def test_nearest_bins_is_the_nearest_centre():
    rng = np.random.default_rng(1)
    ab = rng.uniform(-128, 127, (500, 2))
    expected = ((ab[:, None, :] - _centers()[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(ab_bins.nearest_bins(ab), expected)


# --- soft encoding -----------------------------------------------------------

def test_soft_encoding_matches_numpy():
    rng = np.random.default_rng(2)
    ab = rng.uniform(-80, 80, (3, 4, 2)).astype(np.float32)
    idx, w = ab_bins.soft_encode(ab)
    idx, w = keras.ops.convert_to_numpy(idx), keras.ops.convert_to_numpy(w)
    d2 = ((ab[..., None, :].astype(np.float64) - _centers()) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=-1)[..., :5]
    np.testing.assert_array_equal(idx, nearest)
    d2_near = np.take_along_axis(d2, nearest, -1)
    expected = np.exp(-d2_near / (2 * 5.0**2))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(w, expected, rtol=1e-4, atol=1e-6)
    assert w.shape == (3, 4, 5)


# --- rebalancing -------------------------------------------------------------

def _independent_rebalance(prior, lam=0.5, sigma=5.0):
    """Smoothing as a separable Gaussian convolution of the prior painted on the 2-D a*b* grid."""
    c = _centers()
    grid = np.zeros((23, 23))  # a, b in -110..110
    ia, ib = ((c + 110) / 10).astype(int).T
    grid[ia, ib] = prior / prior.sum()
    k = np.exp(-(np.arange(-6, 7) * 10.0) ** 2 / (2 * sigma**2))
    padded = np.pad(grid, 6)
    rows = np.stack([np.convolve(row, k, mode="same") for row in padded])
    both = np.stack([np.convolve(col, k, mode="same") for col in rows.T]).T
    smoothed = both[6:-6, 6:-6][ia, ib]
    smoothed /= smoothed.sum()
    w = 1.0 / ((1 - lam) * smoothed + lam / len(c))
    return w / (smoothed * w).sum(), smoothed


def test_rebalance_weights_match_numpy():
    rng = np.random.default_rng(3)
    prior = rng.gamma(0.3, size=ab_bins.NUM_BINS) * (rng.random(ab_bins.NUM_BINS) < 0.6)
    expected_w, smoothed = _independent_rebalance(prior)
    np.testing.assert_allclose(ab_bins.smooth_prior(prior), smoothed, rtol=1e-9, atol=1e-15)
    w = ab_bins.rebalance_weights(prior)
    np.testing.assert_allclose(w, expected_w, rtol=1e-9)
    np.testing.assert_allclose((smoothed * w).sum(), 1.0, rtol=1e-12)
    # Rare colours weigh more; lambda = 1 is no rebalancing; no prior = 1.
    assert w[np.argmin(smoothed)] > 1 > w[np.argmax(smoothed)]
    np.testing.assert_allclose(ab_bins.rebalance_weights(prior, lam=1.0), 1.0)
    np.testing.assert_array_equal(ab_bins.rebalance_weights(None), 1.0)


def test_prior_checks_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"\(261,\)"):
        ab_bins.check_prior(np.ones(313))
    with pytest.raises(ValueError, match=">= 0"):
        ab_bins.check_prior(-np.ones(261))
    bad = tmp_path / "prior.npy"
    bad.write_text("not numpy")
    with pytest.raises(ValueError, match="cannot read"):
        ab_bins.load_prior(str(bad))


# --- annealed mean and the loss -----------------------------------------------

def test_annealed_mean_matches_numpy():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (2, 3, 3, ab_bins.NUM_BINS)).astype(np.float32)
    for t in (0.38, 1.0):
        got = keras.ops.convert_to_numpy(ab_bins.AnnealedMean(t)(logits))
        expected = (_softmax(logits.astype(np.float64) / t) @ _centers() + 128.0) / 255.0
        np.testing.assert_allclose(got, expected, atol=2e-6)
    # Low temperature -> the mode's centre; T = 1 -> the plain mean.
    mode = rng.integers(0, ab_bins.NUM_BINS, logits.shape[:-1])
    peaked = 0.1 * logits + 5.0 * (np.arange(ab_bins.NUM_BINS) == mode[..., None])
    cold = keras.ops.convert_to_numpy(ab_bins.AnnealedMean(0.05)(peaked.astype(np.float32)))
    np.testing.assert_allclose(cold, (_centers()[peaked.argmax(-1)] + 128) / 255, atol=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        ab_bins.AnnealedMean(0.0)


def test_rebalanced_soft_ce_matches_numpy():
    rng = np.random.default_rng(5)
    y_true = rng.uniform(0.2, 0.8, (2, 8, 8, 2)).astype(np.float32)
    y_pred = _softmax(rng.normal(0, 1, (2, 2, 2, ab_bins.NUM_BINS))).astype(np.float32)
    prior = rng.random(ab_bins.NUM_BINS)
    weights, _ = _independent_rebalance(prior)
    got = float(ab_bins.RebalancedSoftCE(ab_bins.rebalance_weights(prior))(y_true, y_pred))
    ab = y_true[:, ::4, ::4, :].astype(np.float64) * 255 - 128  # the 1/4-resolution target
    d2 = ((ab[..., None, :] - _centers()) ** 2).sum(-1)
    near = np.argsort(d2, -1)[..., :5]
    z = np.exp(-np.take_along_axis(d2, near, -1) / 50.0)
    z /= z.sum(-1, keepdims=True)
    ce = -(z * np.log(np.take_along_axis(y_pred.astype(np.float64), near, -1))).sum(-1)
    expected = (weights[near[..., 0]] * ce).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # Uniform weights: the plain soft-encoded cross-entropy.
    np.testing.assert_allclose(float(ab_bins.RebalancedSoftCE()(y_true, y_pred)), ce.mean(), rtol=1e-4)
    clone = ab_bins.RebalancedSoftCE.from_config(ab_bins.RebalancedSoftCE(weights).get_config())
    np.testing.assert_array_equal(clone.weights, weights)


# --- the ab_prior command ----------------------------------------------------

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    for label, name in enumerate(["coast", "field"]):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(5):
            y, x = np.mgrid[0:70, 0:90] / 90.0
            image = np.stack([np.sin(6 * x + label) * 0.5 + 0.5, y, np.cos(4 * (x + y) + i) * 0.5 + 0.5], -1)
            image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1)
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=95)
    classes = root / "classes.txt"
    classes.write_text("/c/coast\n/f/field\n")
    out = tmp_path_factory.mktemp("shards")
    config = shards_lib.MakeShardsConfig(source=str(root), output=str(out), split="train", classes=str(classes),
                                         test_per_class=0, shard_size=4, encode=photo_repair.EncodeConfig(short_side=64))
    stats, _ = shards_lib.make_shards(config, progress=False)
    assert stats.num_written == 10
    return shard_writer.file_pattern(str(out), "train")


def _run_command(*args):
    return subprocess.run([sys.executable, "-m", "keras_colorize.tools.ab_prior", *args], capture_output=True,
                          text=True, timeout=300, cwd=str(REPO_ROOT))


def test_ab_prior_command_counts_every_pixel(shards, tmp_path):
    output = tmp_path / "out" / "prior.npy"
    result = _run_command(f"--train_data={shards}", f"--output={output}", "--image_size=32", "--batch_size=3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "10 images" in result.stdout and f"{10 * 32 * 32} pixels" in result.stdout
    prior = np.load(output)
    # Independent: the same crops, nearest centre by brute force.
    counts = np.zeros(ab_bins.NUM_BINS)
    for _, targets in pipeline.make_dataset(shards, "val", 32, 4, with_class=False):
        ab = targets["ab"].numpy().reshape(-1, 2).astype(np.float64) * 255 - 128
        counts += np.bincount(((ab[:, None] - _centers()) ** 2).sum(-1).argmin(1), minlength=ab_bins.NUM_BINS)
    np.testing.assert_allclose(prior, counts / counts.sum(), atol=1e-12)
    assert prior.shape == (261,) and (prior > 0).sum() > 10
    # The file loads as the trainer's --ab_prior.
    np.testing.assert_allclose(ab_bins.load_prior(str(output)), prior)

    # An existing output is kept unless --overwrite; bad arguments exit 2 with one line.
    before = output.read_bytes()
    again = _run_command(f"--train_data={shards}", f"--output={output}", "--image_size=32")
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert output.read_bytes() == before
    limited = _run_command(f"--train_data={shards}", f"--output={output}", "--image_size=32", "--max_images=2",
                           "--overwrite")
    assert limited.returncode == 0 and "2 images" in limited.stdout
    assert np.load(output).sum() == pytest.approx(1.0) and output.read_bytes() != before
    missing = _run_command(f"--train_data={tmp_path}/none-*.tfrecord", f"--output={tmp_path / 'p.npy'}")
    assert missing.returncode == 2 and "matches no files" in missing.stderr
    assert not (tmp_path / "p.npy").exists()
    assert _run_command(f"--train_data={shards}", f"--output={tmp_path / 'p.txt'}").returncode == 2


def test_estimate_prior_rejects_bad_arguments(shards):
    with pytest.raises(ValueError, match="image_size"):
        ab_prior.estimate_prior(shards, image_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        ab_prior.estimate_prior(shards, batch_size=0)
