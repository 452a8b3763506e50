"""Iizuka et al. 2016 preset: counts, output contract, a training step through the trainer's build_and_compile
(MSE + 1/300 CE), .keras save/load in a fresh process, config round trip, the "w/o global features" variant."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_colorize import models
from keras_colorize.training import trainer

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TINY = dict(image_size=64, num_classes=4, width=0.125)


def _iizuka_params(size=256, classes=137, width=1.0, fusion=True):
    """Trainable parameters of the network of the module docstring, counted by hand."""
    ch = lambda c: max(1, round(c * width))  # noqa: E731
    conv = lambda cin, cout: 9 * cin * cout + cout + 2 * cout  # conv with bias + BN  # noqa: E731
    dense = lambda nin, nout: nin * nout + nout + 2 * nout  # noqa: E731
    total, cin = 0, 1
    for c in (64, 128, 128, 256, 256, 512, 512, 256):  # low-level + mid-level
        total, cin = total + conv(cin, ch(c)), ch(c)
    if fusion:
        g = ch(512)
        total += 4 * conv(g, g) - conv(g, g) + conv(ch(512), g)  # the first reads the low-level 512
        total += dense((size // 32) ** 2 * g, ch(1024)) + dense(ch(1024), ch(512)) + dense(ch(512), ch(256))
        total += dense(ch(512), ch(256)) + ch(256) * classes + classes  # classification
        total += (ch(256) + ch(256)) * ch(256) + ch(256)  # fusion 1x1
    for c in (128, 64, 64, 32):
        total, cin = total + conv(cin, ch(c)), ch(c)
    return total + 9 * cin * 2 + 2


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return models.build_colorizer(models.get_preset("iizuka2016", **TINY))


def _batch(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((batch, 64, 64, 1), dtype=np.float32),
            {"ab": rng.uniform(0.3, 0.7, (batch, 64, 64, 2)).astype(np.float32),
             "class": np.array([0, -1, 3, 1][:batch], np.int32)})


@pytest.mark.slow
def test_paper_size_parameter_counts():
    model = models.build_colorizer(models.get_preset("iizuka2016"))
    counts = models.parameter_counts(model)
    assert counts["total"] == _iizuka_params() == 50_213_675
    # At the paper's 224 px and 205 Places classes; the first global FC is 7*7*512*1024 weights there.
    paper = models.build_colorizer(models.get_preset("iizuka2016", image_size=224, num_classes=205))
    assert models.parameter_counts(paper)["total"] == _iizuka_params(224, 205) == 42_366_831
    assert counts["global"] - models.parameter_counts(paper)["global"] == (64 - 49) * 512 * 1024


def test_tiny_counts_and_outputs_contract(tiny):
    counts = models.parameter_counts(tiny)
    assert counts["total"] == _iizuka_params(64, 4, 0.125) == 294_938
    assert set(counts) == {"low-level", "mid-level", "global", "classification", "fusion", "colorization",
                           "output", "total"}
    l_in, _ = _batch(batch=3)
    for training in (False, True):
        out = tiny(l_in, training=training)
        assert sorted(out) == ["ab", "class"]
        ab, probs = keras.ops.convert_to_numpy(out["ab"]), keras.ops.convert_to_numpy(out["class"])
        assert ab.shape == (3, 64, 64, 2) and ab.dtype == np.float32
        assert probs.shape == (3, 4) and probs.dtype == np.float32
        assert np.all((ab >= 0) & (ab <= 1)) and np.isfinite(ab).all()
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # Strides: mid-level at 1/8, the global grid at 1/32, the sigmoid at 1/2 before the last upsampling.
    assert tiny.get_layer("mid2_relu").output.shape[1:3] == (8, 8)
    assert tiny.get_layer("global_flatten").input.shape[1:3] == (2, 2)
    assert tiny.get_layer("ab_sigmoid").output.shape[1:3] == (32, 32)


def test_without_global_features():
    model = models.build_colorizer(models.get_preset("iizuka2016", **dict(TINY, fusion=False)))
    assert list(model.output) == ["ab"]
    counts = models.parameter_counts(model)
    assert counts["global"] == counts["classification"] == counts["fusion"] == 0
    assert counts["total"] == _iizuka_params(64, 4, 0.125, fusion=False)


def test_config_round_trip_and_validation(tiny):
    config = tiny.get_config()
    clone = models.IizukaColorizer.from_config(config)
    assert clone.get_config() == config and clone.config == tiny.config
    clone.set_weights(tiny.get_weights())
    l_in, _ = _batch()
    np.testing.assert_array_equal(clone.predict(l_in, verbose=0)["ab"], tiny.predict(l_in, verbose=0)["ab"])
    for field, value in (("image_size", 48), ("num_classes", 1), ("width", 0), ("fusion", "yes")):
        with pytest.raises(ValueError, match=field):
            models.get_preset("iizuka2016", **{field: value})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iizuka")
    config = trainer.TrainConfig(work_dir=str(tmp / "run"), demo_data_dir=str(tmp / "demo"),
                                   model_preset="iizuka2016", batch_size=4, precision="float32", **TINY)
    model, loss = trainer.build_and_compile(config, tf.distribute.get_strategy(), total_steps=4)
    l_in, targets = _batch(batch=4)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(l_in, targets, return_dict=True)
    return config, model, loss, before, logs, tmp


def test_training_step_through_build_and_compile(trained):
    config, model, loss, before, logs, _ = trained
    assert config.class_loss_weight == pytest.approx(1 / 300) and config.ab_loss == "mse"
    assert sorted(loss) == ["ab", "class"]
    assert all(np.isfinite(v) for v in logs.values()), logs
    # loss = MSE + CE / 300 (the paper's alpha).
    np.testing.assert_allclose(logs["loss"], logs["ab_loss"] + logs["class_loss"] / 300, rtol=1e-5)
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.isfinite(w).all() for w in after)
    assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > 0.9 * len(before)


def test_keras_save_load_identical_in_a_fresh_process(trained):
    _, model, _, _, _, tmp = trained
    path = tmp / "iizuka.keras"
    model.save(path)
    l_in, _ = _batch(seed=3)
    expected = model.predict(l_in, verbose=0)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, models.IizukaColorizer) and loaded.config == model.config
    for key, value in loaded.predict(l_in, verbose=0).items():
        np.testing.assert_array_equal(value, expected[key])
    np.save(tmp / "x.npy", l_in)
    np.save(tmp / "ab.npy", expected["ab"])
    code = ("import numpy as np, keras, keras_colorize.models; "
            f"m = keras.saving.load_model({str(path)!r}); "
            f"print(float(np.abs(m.predict(np.load({str(tmp / 'x.npy')!r}), verbose=0)['ab'] "
            f"- np.load({str(tmp / 'ab.npy')!r})).max()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=str(REPO_ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) == 0.0


@pytest.mark.slow
def test_saved_model_and_tflite_parity(tiny, tmp_path):
    from keras_colorize.export import litert_runner, saved_model, tflite  # noqa: PLC0415

    l_in = np.random.default_rng(7).random((2, 64, 64, 1), dtype=np.float32)
    expected = tiny.predict(l_in, verbose=0)["ab"]
    path = saved_model.export_saved_model(tiny, tmp_path / "sm", 1)
    served = tf.saved_model.load(str(path)).signatures["colorize_l"](L=tf.constant(l_in))
    np.testing.assert_allclose(served["ab"].numpy(), expected, atol=1e-5)
    converted = tflite.convert_variants(tiny, tmp_path / "tflite", variants=("float32",))
    lite = litert_runner.LiteRTPredictor(str(converted.paths["float32"])).predict(l_in)
    np.testing.assert_allclose(lite["ab"], expected, atol=1e-4)
