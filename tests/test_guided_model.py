"""The guided model option (hints=True): inputs, warm start, data, training."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_colorize import models
from keras_colorize.data import pipeline
from keras_colorize.data import places365
from keras_colorize.guidance import hint_ops
from keras_colorize.guidance import spec
from keras_colorize.models import model_contract
from keras_colorize.training import config as train_config
from keras_colorize.training import trainer

TINY_IIZUKA = dict(image_size=64, num_classes=4, width=0.25)
PRESETS = [("tiny", {}), ("iizuka2016", TINY_IIZUKA)]


def _feed(l_input, hints=None, reference=None):
    batch, size = l_input.shape[0], l_input.shape[1]
    return {"L": l_input,
            "hints": hint_ops.no_hints(size, batch).numpy() if hints is None else hints,
            "reference": hint_ops.no_reference(batch).numpy() if reference is None else reference}


@pytest.mark.parametrize("preset,overrides", PRESETS)
@pytest.mark.parametrize("fusion", [True, False])
def test_guided_model_takes_hints_and_a_reference_and_keeps_its_outputs(preset, overrides, fusion):
    keras.utils.set_random_seed(0)
    model = models.build_colorizer(models.get_preset(preset, hints=True, fusion=fusion, **overrides))
    assert sorted(model.input) == sorted((spec.L_INPUT, spec.HINTS_INPUT, spec.REFERENCE_INPUT))
    contract = model_contract.check_model_contract(model)
    assert contract.guided and contract.image_size == 64
    out = model(_feed(np.random.default_rng(0).random((2, 64, 64, 1), np.float32)), training=False)
    assert tuple(out["ab"].shape) == (2, 64, 64, 2)
    assert ("class" in out) == fusion
    counts = models.parameter_counts(model)
    automatic = models.parameter_counts(models.build_colorizer(models.get_preset(preset, fusion=fusion, **overrides)))
    guidance = counts.get("Guidance", counts.get("guidance"))
    assert guidance > 0 and counts["total"] == automatic["total"] + guidance


def test_the_option_is_off_by_default_so_presets_keep_their_single_input():
    for name in ("paper", "tiny", "iizuka2016"):
        assert models.get_preset(name).hints is False
    model = models.build_colorizer(models.get_preset("tiny"))
    assert len(model.inputs) == 1 and not model_contract.check_model_contract(model).guided


@pytest.mark.parametrize("preset,overrides", PRESETS)
def test_warm_start_gives_exactly_the_automatic_model_until_training_moves_the_guidance(preset, overrides, tmp_path):
    keras.utils.set_random_seed(1)
    automatic = models.build_colorizer(models.get_preset(preset, **overrides))
    automatic.save(tmp_path / "auto.keras")
    source = keras.saving.load_model(tmp_path / "auto.keras")
    keras.utils.set_random_seed(2)
    guided = models.build_colorizer(models.get_preset(preset, hints=True, **overrides))
    report = models.transfer_weights(source, guided)
    assert not report.reshaped and set(report.new) >= {"hint_input_conv", "reference1_dense", "reference_fusion_dense"}
    rng = np.random.default_rng(0)
    l_input = rng.random((2, 64, 64, 1), np.float32)
    want = np.asarray(automatic(l_input, training=False)["ab"])
    got = np.asarray(guided(_feed(l_input), training=False)["ab"])
    np.testing.assert_allclose(got, want, atol=1e-6)
    # Hints change nothing until the zero-initialized layers move ...
    hints = hint_ops.paint_hints([[20.0, 20.0]], [[80.0, 60.0]], [5], 64).numpy()[None].repeat(2, 0)
    reference = hint_ops.reference_histograms(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)).numpy()
    np.testing.assert_allclose(np.asarray(guided(_feed(l_input, hints, reference), training=False)["ab"]), want,
                               atol=1e-6)
    # ... and once they do, both kinds of guidance reach the output.
    for layer in guided.layers:
        if layer.name in ("hint_input_conv", "reference_fusion_dense"):
            layer.set_weights([w + 0.05 for w in layer.get_weights()])
    moved = np.asarray(guided(_feed(l_input, hints), training=False)["ab"])
    assert np.abs(moved - want).max() > 1e-3
    with_reference = np.asarray(guided(_feed(l_input, None, reference), training=False)["ab"])
    assert np.abs(with_reference - np.asarray(guided(_feed(l_input), training=False)["ab"])).max() > 1e-3


def test_transfer_reports_a_reshaped_class_head_and_refuses_an_unrelated_model():
    source = models.build_colorizer(models.get_preset("iizuka2016", **TINY_IIZUKA))
    target = models.build_colorizer(models.get_preset("iizuka2016", **dict(TINY_IIZUKA, num_classes=6), hints=True))
    report = models.transfer_weights(source, target)
    assert report.reshaped == ("class2_dense",)
    np.testing.assert_array_equal(target.get_layer("low1_conv").get_weights()[0],
                                  source.get_layer("low1_conv").get_weights()[0])
    with pytest.raises(ValueError, match="not a variant"):
        models.transfer_weights(source, models.build_colorizer(models.get_preset("tiny")))


def test_guided_model_round_trips_through_a_keras_file(tmp_path):
    keras.utils.set_random_seed(3)
    model = models.build_colorizer(models.get_preset("iizuka2016", hints=True, **TINY_IIZUKA))
    for layer in model.layers:  # non-zero guidance, so the check covers those weights too
        if layer.name.startswith(("hint", "reference_fusion")):
            layer.set_weights([w + 0.01 for w in layer.get_weights()])
    model.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras")
    assert loaded.config.hints
    feed = _feed(np.random.default_rng(1).random((1, 64, 64, 1), np.float32),
                 hint_ops.paint_hints([[3.0, 9.0]], [[40.0, 40.0]], [3], 64).numpy()[None])
    np.testing.assert_allclose(np.asarray(loaded(feed)["ab"]), np.asarray(model(feed)["ab"]), atol=1e-6)


def test_point_palette_is_exactly_zero_without_points_and_moves_the_palette_with_them(tmp_path):
    keras.utils.set_random_seed(4)
    plain = models.build_colorizer(models.get_preset("iizuka2016", hints=True, **TINY_IIZUKA))
    for layer in plain.layers:  # a trained-looking guided model: guidance layers away from zero
        if layer.name.startswith(("hint", "reference_fusion")):
            layer.set_weights([w + 0.02 for w in layer.get_weights()])
    palette = models.build_colorizer(models.get_preset("iizuka2016", hints=True, point_palette=True, **TINY_IIZUKA))
    report = models.transfer_weights(plain, palette)
    assert set(report.new) == {"point1_dense", "point2_dense", "point_fusion_dense"}
    counts = models.parameter_counts(palette)
    assert counts["total"] == models.parameter_counts(plain)["total"] + sum(
        palette.get_layer(n).count_params() for n in report.new)
    fusion_dense = palette.get_layer("point_fusion_dense")
    fusion_dense.set_weights([np.full(fusion_dense.kernel.shape, 0.05, np.float32)])
    rng = np.random.default_rng(5)
    l_input = rng.random((2, 64, 64, 1), np.float32)
    reference = hint_ops.reference_histograms(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)).numpy()
    hints = hint_ops.paint_hints([[20.0, 20.0], [40.0, 50.0]], [[80.0, 60.0], [-20.0, 10.0]], [5, 3], 64).numpy()
    hints = hints[None].repeat(2, 0)
    for feed in (_feed(l_input), _feed(l_input, None, reference)):  # no points: exactly the model without it
        np.testing.assert_array_equal(np.asarray(palette(feed, training=False)["ab"]),
                                      np.asarray(plain(feed, training=False)["ab"]))
    moved = np.asarray(palette(_feed(l_input, hints), training=False)["ab"])
    assert np.abs(moved - np.asarray(plain(_feed(l_input, hints), training=False)["ab"])).max() > 1e-3
    # The summary: mean and spread of the hinted a*b* (pixel-weighted), their share of the grid, the flag.
    summary = np.asarray(palette.get_layer("point_summary")(hints))[0]
    mask = hints[0, ..., 2] > 0
    ab = hints[0, ..., :2][mask]
    np.testing.assert_allclose(summary[:4], np.concatenate([ab.mean(0), ab.std(0)]), atol=1e-3)
    np.testing.assert_allclose(summary[4:], [np.log1p(mask.sum()) / np.log1p(64 * 64), 1.0], rtol=1e-5)
    palette.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras")
    assert loaded.config.point_palette
    np.testing.assert_array_equal(np.asarray(loaded(_feed(l_input, hints))["ab"]), np.asarray(palette(
        _feed(l_input, hints))["ab"]))
    with pytest.raises(ValueError, match="point_palette must be False without hints"):
        models.get_preset("tiny", point_palette=True)


# ---------------------------------------------------------------------------
# Data and training
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory):
    from keras_colorize.data import demo

    return demo.ensure_demo_shards(str(tmp_path_factory.mktemp("demo")), image_size=64, num_train=64, num_val=16,
                                   num_test=16, seed=0, progress=False)


def test_guided_pipeline_simulates_hints_for_training_and_none_for_validation(demo_shards):
    train = pipeline.make_dataset(demo_shards["train"], "train", 64, 8, seed=0, hints=True)
    inputs, targets = next(iter(train))
    assert sorted(inputs) == ["L", "hints", "reference"]
    assert inputs["hints"].shape == (8, 64, 64, 3) and inputs["reference"].shape == (8, spec.REFERENCE_SIZE)
    # Hinted values are the ground truth's colours around those pixels: close to the target there.
    mask = inputs["hints"].numpy()[..., 2] > 0
    assert mask.any()
    hint_ab = inputs["hints"].numpy()[..., :2][mask] * spec.HINT_AB_SCALE
    true_ab = targets["ab"].numpy()[mask] * 255.0 - 128.0
    assert np.median(np.abs(hint_ab - true_ab)) < 10.0
    val_inputs, _ = next(iter(pipeline.make_dataset(demo_shards["val"], "val", 64, 8, hints=True)))
    assert not val_inputs["hints"].numpy().any() and not val_inputs["reference"].numpy().any()
    # Seeded: the same hints on a second pass with the same seed.
    again, _ = next(iter(pipeline.make_dataset(demo_shards["train"], "train", 64, 8, seed=0, hints=True)))
    np.testing.assert_array_equal(again["hints"].numpy(), inputs["hints"].numpy())
    plain, _ = next(iter(pipeline.make_dataset(demo_shards["val"], "val", 64, 8)))
    assert isinstance(plain, tf.Tensor)


def test_hints_config_rules():
    with pytest.raises(train_config.ConfigError, match="--hints"):
        train_config.TrainConfig(work_dir="w", demo_data_dir="d", model_preset="zhang2016", hints=True)
    config = train_config.TrainConfig(work_dir="w", demo_data_dir="d", model_preset="tiny", hints=True)
    assert config.model_config().hints and "hints" in train_config.RESUME_FIELDS
    with pytest.raises(train_config.ConfigError, match="--point_palette=True: .* it needs --hints"):
        train_config.TrainConfig(work_dir="w", demo_data_dir="d", model_preset="tiny", point_palette=True)
    with pytest.raises(train_config.ConfigError, match="--train_only='point,': expected comma-separated"):
        train_config.TrainConfig(work_dir="w", demo_data_dir="d", model_preset="tiny", train_only="point,")
    with pytest.raises(train_config.ConfigError, match="--train_only='pint': no layer .* starts with it"):
        trainer._train_only(models.build_colorizer(models.get_preset("tiny")), ("pint",))


def test_training_a_guided_model_warm_started_from_an_automatic_one(tmp_path, tiny_model_path):
    """With --train_only=point,hint (stage 3 of the guided recipe): those layers train, the rest stays the source."""
    work = tmp_path / "run"
    config = train_config.TrainConfig(
        work_dir=str(work), demo_data_dir=str(tmp_path / "data"), model_preset="tiny", num_classes=5, hints=True,
        point_palette=True, train_only="point,hint",
        init_from=str(tiny_model_path), batch_size=8, epochs=1, steps_per_epoch=3, val_steps=1,
        precision="float32", grid_images=2, checkpoint_every_steps=0, learning_rate=1e-3)
    result = trainer.train(config)
    saved = keras.saving.load_model(work / "best.keras")
    assert model_contract.check_model_contract(saved).guided and saved.get_layer("point_summary")
    run_config = json.loads((work / "config.json").read_text())
    assert run_config["hints"] is True and run_config["point_palette"] is True
    assert run_config["train_only"] == "point,hint"
    assert np.isfinite(result.summary["val"]["mae"])
    # The guidance layers trained (they start at zero), every other layer is still exactly the source's.
    for name in ("hint_input_conv", "point_fusion_dense"):
        assert np.abs(saved.get_layer(name).get_weights()[0]).max() > 0, name
    source = keras.saving.load_model(tiny_model_path)
    frozen = [layer for layer in source.layers if layer.weights and not layer.name.startswith("class2")]  # 4 -> 5 classes
    assert len(frozen) > 10
    for layer in frozen:
        for want, got in zip(layer.get_weights(), saved.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    with pytest.raises(train_config.ConfigError, match="--init_from"):
        trainer.validate(train_config.TrainConfig(
            work_dir=str(tmp_path / "other"), demo_data_dir=str(tmp_path / "data"), model_preset="tiny",
            hints=True, init_from=str(tmp_path / "missing.keras")))


def test_class_list_lines_gather_folders_into_one_class(tmp_path):
    from PIL import Image

    for rel in ("sun/sky/a.jpg", "ccsn/Ac/b.jpg", "ccsn/Cb/c.jpg", "ccsn/Cb/d.jpg", "intel/sea/e.jpg"):
        path = tmp_path / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    classes = tmp_path / "classes.txt"
    classes.write_text("# comment\nsky\nclouds = Ac Cb  # cloud types\nsea\n")
    assert places365.read_class_folders(classes) == {"sky": ("sky",), "clouds": ("Ac", "Cb"), "sea": ("sea",)}
    assert places365.read_class_list(classes) == ["sky", "clouds", "sea"]
    _, records = places365.list_records(str(tmp_path / "src"), "train", layout="classes",
                                        class_names=places365.read_class_list(classes),
                                        class_folders=places365.read_class_folders(classes), test_per_class=0,
                                        val_fraction=0.0)
    assert sorted((r.source, r.label) for r in records) == [
        ("ccsn/Ac/b.jpg", 1), ("ccsn/Cb/c.jpg", 1), ("ccsn/Cb/d.jpg", 1), ("intel/sea/e.jpg", 2), ("sun/sky/a.jpg", 0)]
    classes.write_text("clouds = Ac Xx\n")
    with pytest.raises(ValueError, match="Xx"):
        places365.list_records(str(tmp_path / "src"), "train", layout="classes",
                               class_names=["clouds"], class_folders=places365.read_class_folders(classes))
    classes.write_text("clouds =\n")
    with pytest.raises(ValueError, match="gathers no folders"):
        places365.read_class_folders(classes)
