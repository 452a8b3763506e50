"""Zhang et al. 2016 preset (and the bins head on the U-Net): counts, the annealed mean, config validation, the
prior through the trainer's build_and_compile, the trainer end to end with a prior. Output contract, training
step, save/load and export of both: test_model_battery.py."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize import models
from keras_colorize.training import trainer
from keras_colorize.data import shards_lib
from keras_colorize.data import shard_writer
from keras_colorize.data import photo_repair
from keras_colorize.models import ab_bins
from keras_colorize.tools import ab_prior

TINY = dict(image_size=64, width=0.125)
Q = 261


def _zhang_params(width=1.0, q=Q):
    """Trainable parameters of the network of the module docstring, counted by hand."""
    ch = lambda c: max(1, round(c * width))  # noqa: E731
    conv = lambda cin, cout, k=3: k * k * cin * cout + cout  # noqa: E731
    total, cin = 0, 1
    for filters, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3), (512, 3), (512, 3)):
        for _ in range(convs):
            total += conv(cin, ch(filters))
            cin = ch(filters)
        total += 2 * cin  # BN gamma, beta
    total += conv(cin, ch(256), k=4) + 2 * conv(ch(256), ch(256)) + conv(ch(256), q, k=1)
    return total


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return models.build_colorizer(models.get_preset("zhang2016", **TINY))


def _batch(size=64, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((batch, size, size, 1), dtype=np.float32), {"ab": rng.uniform(0.3, 0.7, (batch, size, size, 2))
                                                                  .astype(np.float32)}


@pytest.mark.slow
def test_paper_size_parameter_counts():
    model = models.build_colorizer(models.get_preset("zhang2016"))
    counts = models.parameter_counts(model)
    assert counts["total"] == _zhang_params() == 32_222_021
    # The paper's network (Q = 313, Caffe's BatchNorm without scale/offset): 32.2 M.
    assert _zhang_params(q=313) - 2 * (64 + 128 + 256 + 4 * 512) == 32_230_393
    assert counts["conv5"] == 3 * (9 * 512 * 512 + 512) + 2 * 512
    assert counts["ab head"] == 256 * Q + Q
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == counts["total"]


def test_tiny_counts_and_annealed_mean(tiny):
    """Counts pinned; "ab" from "ab_bins" (output contract, ranges, saving, export: test_model_battery.py)."""
    assert models.parameter_counts(tiny)["total"] == _zhang_params(0.125) == 512_525
    l_in, _ = _batch(batch=3)
    # "ab" is the annealed mean of the logits behind "ab_bins", upsampled 4x.
    logits_model = keras.Model(tiny.input, tiny.get_layer("ab_logits").output)
    logits = keras.ops.convert_to_numpy(logits_model(l_in)).astype(np.float64)
    e = np.exp((logits - logits.max(-1, keepdims=True)) / 0.38)
    low = (e / e.sum(-1, keepdims=True)) @ ab_bins.bin_centers()
    ab_low = keras.ops.convert_to_numpy(keras.Model(tiny.input, tiny.get_layer("ab_annealed_mean").output)(l_in))
    np.testing.assert_allclose(ab_low, (low + 128) / 255, atol=1e-5)
    # Bilinear upsampling of a 1/4 map: the full-size mean equals the low-resolution mean closely.
    ab = keras.ops.convert_to_numpy(tiny(l_in)["ab"])
    np.testing.assert_allclose(ab.mean(axis=(1, 2)), ab_low.mean(axis=(1, 2)), atol=2e-3)
    assert ab.min() >= ab_low.min() - 1e-6 and ab.max() <= ab_low.max() + 1e-6  # a convex interpolation
    assert models.get_preset("zhang2016").width == 1.0


def test_config_round_trip_and_validation(tiny):
    config = tiny.get_config()
    clone = models.ZhangColorizer.from_config(config)
    assert clone.get_config() == config and clone.config == tiny.config
    prior = np.random.default_rng(0).random(Q)
    with_prior = models.get_preset("zhang2016", **TINY, prior=prior)
    np.testing.assert_allclose(with_prior.prior, prior / prior.sum())
    model = models.build_colorizer(with_prior)
    assert models.ZhangColorizer.from_config(json.loads(json.dumps(model.get_config()))).config == with_prior
    with pytest.raises(ValueError, match="image_size"):
        models.get_preset("zhang2016", image_size=100)
    with pytest.raises(ValueError, match="prior"):
        models.get_preset("zhang2016", prior=np.ones(313))
    with pytest.raises(ValueError, match="num_classes"):
        models.get_preset("zhang2016", num_classes=4)


def _trainer_config(tmp_path, **overrides):
    values = dict(work_dir=str(tmp_path / "run"), demo_data_dir=str(tmp_path / "demo"), model_preset="zhang2016",
                  batch_size=2, precision="float32", **TINY)
    values.update(overrides)
    return trainer.TrainConfig(**values)


def test_trainer_options_are_checked(tmp_path):
    config = _trainer_config(tmp_path)
    assert (config.fusion, config.ab_loss, config.num_classes) == (False, "rebalanced_ce", None)
    for field, value, match in (("fusion", True, "no class head"), ("ab_loss", "mse", "rebalanced_ce only"),
                                ("ab_prior", "prior.txt", ".npy"),
                                ("encoder_weights", "r.weights.h5", "ResNet34 encoder")):
        with pytest.raises(trainer.ConfigError, match=f"{field}=.*{match}"):
            _trainer_config(tmp_path, **{field: value})
    with pytest.raises(trainer.ConfigError, match="ab_prior=.*only used"):
        _trainer_config(tmp_path, model_preset="tiny", ab_prior="p.npy")
    with pytest.raises(trainer.ConfigError, match="ab_loss=.*bins head"):
        _trainer_config(tmp_path, model_preset="iizuka2016", ab_loss="rebalanced_ce")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones(10))
    with pytest.raises(trainer.ConfigError, match=r"ab_prior=.*\(261,\)"):
        trainer.build_and_compile(_trainer_config(tmp_path, ab_prior=str(bad)), tf.distribute.get_strategy(), 1)
    # The paper's defaults are untouched.
    paper = trainer.TrainConfig(work_dir="w", demo_data_dir="d")
    assert (paper.fusion, paper.ab_loss, paper.class_loss_weight, paper.ab_prior) == (True, "mse", 1.0, "")
    assert paper.model_config() == models.get_preset("paper")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny zhang2016 built and compiled by the trainer with a prior, after one step."""
    tmp = tmp_path_factory.mktemp("zhang")
    prior = np.random.default_rng(1).random(Q) ** 4
    np.save(tmp / "prior.npy", prior)
    config = _trainer_config(tmp, ab_prior=str(tmp / "prior.npy"))
    model, loss = trainer.build_and_compile(config, tf.distribute.get_strategy(), total_steps=4)
    model.run_eagerly = True  # tracing costs more than the step; the trainer end-to-end test runs it compiled
    l_in, targets = _batch(batch=4)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(l_in, targets, return_dict=True)
    return model, loss, prior, before, logs, tmp


def test_training_step_through_build_and_compile(trained):
    model, loss, prior, before, logs, _ = trained
    assert all(np.isfinite(v) for v in logs.values()), logs
    # The rebalanced CE is the whole loss; the annealed-mean MSE is logged with weight 0.
    np.testing.assert_allclose(logs["loss"], logs["ab_bins_loss"], rtol=1e-6)
    assert 0 < logs["ab_loss"] < 0.2 and logs["ab_bins_loss"] > 1
    np.testing.assert_allclose(model.config.prior, prior / prior.sum())
    np.testing.assert_allclose(ab_bins.model_prior(model), prior / prior.sum(), rtol=1e-6)
    np.testing.assert_allclose(loss["ab_bins"].weights, ab_bins.rebalance_weights(prior))
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.isfinite(w).all() for w in after)
    assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > 0.9 * len(before)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    for label, name in enumerate(["coast", "field"]):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(4):
            y, x = np.mgrid[0:80, 0:80] / 80.0
            image = np.stack([np.sin(6 * x + label) * 0.5 + 0.5, y, np.cos(4 * (x + y) + i) * 0.5 + 0.5], -1)
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=95)
    (root / "classes.txt").write_text("/c/coast\n/f/field\n")
    out = tmp_path_factory.mktemp("shards")
    config = shards_lib.MakeShardsConfig(source=str(root), output=str(out), split="train",
                                         classes=str(root / "classes.txt"), test_per_class=0, shard_size=4,
                                         encode=photo_repair.EncodeConfig(short_side=64))
    shards_lib.make_shards(config, progress=False)
    return shard_writer.file_pattern(str(out), "train")


@pytest.mark.slow
def test_trainer_end_to_end_with_estimated_prior(shards, tmp_path):
    prior, _ = ab_prior.estimate_prior(shards, image_size=64)
    ab_prior.write_prior(prior, str(tmp_path / "prior.npy"))
    config = trainer.TrainConfig(work_dir=str(tmp_path / "run"), train_data=shards, val_data=shards,
                                   model_preset="zhang2016", ab_prior=str(tmp_path / "prior.npy"), batch_size=4,
                                   epochs=1, steps_per_epoch=2, val_steps=1, grid_images=2, learning_rate=1e-3,
                                   checkpoint_every_steps=2, **TINY)
    result = trainer.train(config)
    assert result.summary["steps"] == 2 and np.isfinite(result.summary["val"]["mae"])
    loaded = keras.saving.load_model(tmp_path / "run" / "final.keras")
    # The trainer saves a clone (a plain Functional): the prior travels as the head's weight.
    np.testing.assert_allclose(ab_bins.model_prior(loaded), prior, rtol=1e-6)
    assert "--ab_loss=rebalanced_ce" in (tmp_path / "run" / "flags.txt").read_text()


# --- the bins head on the paper's U-Net (--ab_loss=rebalanced_ce) -------------

def test_unet_bins_head_through_build_and_compile(tmp_path):
    config = _trainer_config(tmp_path, model_preset="tiny", ab_loss="rebalanced_ce", width=None, image_size=None)
    model, loss = trainer.build_and_compile(config, tf.distribute.get_strategy(), total_steps=2)
    assert isinstance(model, models.UNetBinsColorizer) and sorted(loss) == ["ab", "ab_bins", "class"]
    assert sorted(model.output) == ["ab", "ab_bins", "class"]
    assert tuple(model.output["ab_bins"].shape) == (None, 16, 16, Q)
    names = {layer.name for layer in model.layers}
    assert "up3_2_relu" in names and not {"up4_deconv", "up5_deconv", "out_conv"} & names
    # U-Net part identical to the paper's up to Up 3.
    unet = models.block_parameter_counts(models.build_colorizer(models.get_preset("tiny")))
    counts = models.parameter_counts(model)
    assert {k: counts[k] for k in list(counts)[:12]} == {k: unet[k] for k in list(unet)[:12]}
    assert counts["Up 4"] == counts["Up 5"] == 0 and counts["Conv Out"] == 64 // 4 * Q + Q
    # Training step, outputs, saving and export: the unet_bins variant of test_model_battery.py.
