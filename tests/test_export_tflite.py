"""TFLite export: BN folding, the four variants under a real LiteRT interpreter, the runner, the report.

Most tests use the tiny preset with BatchNormalization statistics re-estimated
on real photos (activations of trained magnitude, see
``keras_colorize.export.bn_statistics``); the slow test converts the paper's
256 px network, whose 32768->1024 Dense + BN is what needs folding.
"""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize.inference import api
from keras_colorize.data import places365
from keras_colorize.data import shards_lib
from keras_colorize.export import bn_folding
from keras_colorize.export import bn_statistics
from keras_colorize.export import export_lib
from keras_colorize.export import litert_runner
from keras_colorize.export import tflite
from keras_colorize.export import tflite_report
from keras_colorize.models import build_colorizer, get_preset

ENV_PYTHON = sys.executable
NUM_EVAL_PHOTOS = 24


def _smooth_l(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return tf.image.resize(rng.uniform(0, 1, (n, 8, 8, 1)).astype("float32"), [size, size]).numpy()


def _randomize_batch_norm(model, seed=0):
    """Non-trivial BN parameters and statistics, so folding is actually exercised."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[-1]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.5, 2.0, n)])


@pytest.fixture(scope="module")
def photos(landscapes_dir):
    """Evaluation photos (the first ones) and calibration files (disjoint, later ones)."""
    files = sorted(pathlib.Path(landscapes_dir).glob("*.jpg"))
    return files[:NUM_EVAL_PHOTOS], files[100:140]


@pytest.fixture(scope="module")
def tiny_model(photos):
    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("tiny"))
    l_calib, _ = tflite_report.load_photos(photos[1][:16], 64)
    bn_statistics.reestimate_batch_norm(model, l_calib)
    return model


@pytest.fixture(scope="module")
def calibration_shards(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    records = [places365.Record(str(p), -1, "", p.name) for p in photos[1]]
    shards_lib.write_shards(records, out, "val", config=shards_lib.EncodeConfig(short_side=64), shard_size=20,
                            progress=False)
    return shards_lib.file_pattern(out, "val")


@pytest.fixture(scope="module")
def converted(tiny_model, calibration_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    calibration = tflite.calibration_dataset(calibration_shards, 64, num_steps=40)
    return tflite.convert_variants(tiny_model, out, tflite.VARIANTS, calibration)


@pytest.fixture(scope="module")
def eval_photos(photos):
    return tflite_report.load_photos(photos[0], 64)


def test_bn_folding_is_exact_and_complete():
    keras.utils.set_random_seed(1)
    model = build_colorizer(get_preset("tiny"))
    _randomize_batch_norm(model)
    # Statistics of other data: trained-like activation scale, and mean/var far from 0/1.
    bn_statistics.reestimate_batch_norm(model, _smooth_l(8, 64, seed=5))
    folded, pairs = bn_folding.fold_batch_norms(model)
    all_bn = [l for l in model._flatten_layers(recursive=True) if isinstance(l, keras.layers.BatchNormalization)]  # noqa: SLF001
    assert len(pairs) == len(all_bn) == 54  # every BN of this network follows a conv/Dense
    assert not [l for l in folded._flatten_layers(recursive=True) if isinstance(l, keras.layers.BatchNormalization)]  # noqa: SLF001
    x = _smooth_l(4, 64)
    want, got = model(x, training=False), folded(x, training=False)
    assert set(got) == {"ab", "class"}
    # float32 rounding through ~50 layers (different summation order), not a folding error.
    ab_diff = np.abs(np.asarray(want["ab"]) - np.asarray(got["ab"]))
    assert ab_diff.max() < 1e-4 and ab_diff.mean() < 1e-6
    assert np.abs(np.asarray(want["class"]) - np.asarray(got["class"])).max() < 1e-4
    # The original model is untouched.
    assert any(isinstance(l, keras.layers.BatchNormalization) for l in model._flatten_layers(recursive=True))  # noqa: SLF001


def test_bn_folding_leaves_inexact_pairs_alone():
    x_in = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="relu_conv")(x_in)
    a = keras.layers.BatchNormalization(name="after_relu")(a)  # not linear before BN: keep
    b = keras.layers.Conv2D(4, 1, name="shared_conv")(a)
    c = keras.layers.BatchNormalization(name="bn_of_shared")(b)
    d = keras.layers.Add(name="uses_conv_output_too")([b, c])  # conv output used twice: keep
    e = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(d)
    e = keras.layers.BatchNormalization(name="dw_bn")(e)
    f = keras.layers.Conv2DTranspose(3, 2, strides=2, name="deconv")(e)
    f = keras.layers.BatchNormalization(name="deconv_bn")(f)
    model = keras.Model(x_in, f)
    _randomize_batch_norm(model, seed=3)
    folded, pairs = bn_folding.fold_batch_norms(model)
    assert sorted(pairs) == [("deconv", "deconv_bn"), ("dw", "dw_bn")]
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(folded(x), model(x, training=False), atol=1e-5)


# A model without class head, and mixed-precision models (converted as float32): test_model_battery.py.


def test_float32_tflite_matches_keras(tiny_model, converted, eval_photos):
    l_photos, _ = eval_photos
    predictor = litert_runner.LiteRTPredictor(converted.paths["float32"], num_threads=2)
    got = predictor.predict(l_photos)
    want = tiny_model(l_photos, training=False)
    assert np.abs(got["ab"] - np.asarray(want["ab"])).max() <= 1e-4
    assert np.abs(got["class_probabilities"] - np.asarray(want["class"])).max() <= 1e-4


def test_quantized_variants_keep_paper_mae(converted, eval_photos):
    l_photos, ab_true = eval_photos
    mae = {}
    for variant, path in converted.paths.items():
        ab = litert_runner.LiteRTPredictor(path).predict(l_photos)["ab"]
        mae[variant] = float(np.mean(tflite_report.metrics.paper_metrics(l_photos, ab_true, ab)["mae"]))
    for variant in ("float16", "dynamic_int8", "int8"):
        assert abs(mae[variant] - mae["float32"]) <= 0.005, mae


def test_int8_files_are_small_and_full_integer_keeps_float_io(converted):
    sizes = {v: p.stat().st_size for v, p in converted.paths.items()}
    assert sizes["dynamic_int8"] <= 0.30 * sizes["float32"], sizes
    assert sizes["int8"] <= 0.30 * sizes["float32"], sizes
    assert sizes["float16"] <= 0.55 * sizes["float32"], sizes

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(converted.paths["int8"]))
    runner = interpreter.get_signature_runner()
    assert runner.get_input_details()["L"]["dtype"] == np.float32
    assert {d["dtype"] for d in runner.get_output_details().values()} == {np.float32}
    ops = {op["op_name"] for op in interpreter._get_ops_details()}  # noqa: SLF001
    assert "CONV_2D" in ops and "QUANTIZE" in ops and "DEQUANTIZE" in ops
    conv_inputs = [op["inputs"] for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]  # noqa: SLF001
    dtypes = {interpreter._get_tensor_details(i, 0)["dtype"] for ins in conv_inputs for i in ins[:2]}  # noqa: SLF001
    assert dtypes == {np.int8}  # activations and weights of every conv are int8


def test_convert_checks_arguments_first(tiny_model, tmp_path, converted):
    with pytest.raises(ValueError, match="variants"):
        tflite.convert_variants(tiny_model, tmp_path, ["float32", "int4"])
    with pytest.raises(ValueError, match="calibration"):
        tflite.convert_variants(tiny_model, tmp_path, ["int8"])
    with pytest.raises(ValueError, match="calibration"):
        tflite.convert_variants(tiny_model, tmp_path, ["int16x8"])
    with pytest.raises(ValueError, match="clip_percentile"):
        tflite.convert_variants(tiny_model, tmp_path, ["float32"], clip_percentile=40)
    with pytest.raises(FileExistsError):
        tflite.convert_variants(tiny_model, converted.paths["float32"].parent, ["float32"])
    assert not list(tmp_path.iterdir())


def test_litert_runner_cli_matches_keras_colorizer(tiny_model, converted, photos, tmp_path):
    source = photos[0][0]
    out = tmp_path / "out" / "colorized.png"
    done = subprocess.run([ENV_PYTHON, "-m", "keras_colorize.export.litert_runner",
                           f"--model={converted.paths['float32']}", f"--input={source}", f"--output={out}"],
                          cwd=pathlib.Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.asarray(Image.open(out))
    want = api.Colorizer(tiny_model).colorize(str(source))
    assert got.shape == np.asarray(want).shape == (512, 512, 3)
    assert np.abs(got.astype(int) - np.asarray(want).astype(int)).max() <= 1

    # Python API: same pixels for the in-memory image; class probabilities exposed.
    colorizer = litert_runner.LiteRTColorizer(converted.paths["float32"])
    rgb = np.asarray(Image.open(source).convert("RGB"))
    assert np.abs(colorizer.colorize(rgb).astype(int) - got.astype(int)).max() <= 1
    probabilities = colorizer.predict(np.zeros((64, 64, 1), np.float32))["class_probabilities"]
    assert probabilities.shape == (1, 4) and abs(probabilities.sum() - 1) < 1e-4

    with pytest.raises(ValueError, match="overwrite an input"):
        litert_runner.colorize_files(converted.paths["float32"], [source], source.parent)
    with pytest.raises(ValueError, match="model_path"):
        litert_runner.LiteRTPredictor(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="l_input"):
        colorizer.predict(np.zeros((32, 32, 1), np.float32))


def test_report_written_and_consistent(tiny_model, converted, eval_photos, tmp_path):
    l_photos, ab_true = eval_photos
    report = tflite_report.build_report(tiny_model, converted.paths, l_photos[:6], ab_true[:6], runs=3)
    path = tflite_report.write_report(report, tmp_path / "report.json")
    loaded = json.loads(path.read_text())
    rows = {r["variant"]: r for r in loaded["variants"]}
    assert set(rows) == set(tflite.VARIANTS)
    assert rows["float32"]["size_vs_float32"] == 1.0
    for variant, row in rows.items():
        assert row["size_mb"] == pytest.approx(converted.paths[variant].stat().st_size / 1e6)
        assert 0 < row["latency_min_ms"] <= row["latency_ms"] and row["latency_vs_saved_model"] > 0
        assert row["paper_mae"] == pytest.approx(loaded["keras_paper_mae"] + row["paper_mae_delta"])
    assert rows["float32"]["ab_max_abs_vs_keras"] <= 1e-4
    assert rows["float32"]["recommended"] and rows["float32"]["tolerance"] == tflite.TOLERANCES["float32"]
    table = tflite_report.format_table(loaded)
    assert all(f"| {v} |" for v in tflite.VARIANTS) and "SavedModel" in table


@pytest.mark.slow
def test_paper_model_converts_with_folded_batch_norm(tmp_path, landscapes_dir):
    """The 256 px network (32768->1024 Dense + BN) converts; float32 matches Keras; int8 is a quarter."""
    files = sorted(pathlib.Path(landscapes_dir).glob("*.jpg"))
    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("paper"))
    l_calib, _ = tflite_report.load_photos(files[100:108], 256)
    bn_statistics.reestimate_batch_norm(model, l_calib)
    config = export_lib.TfliteExportConfig(output_dir=str(tmp_path), variants=("float32", "dynamic_int8"))
    result = export_lib.export_tflite(config, model=model, progress=lambda message: None)
    assert len(result.folded_pairs) == 54
    l_photos, _ = tflite_report.load_photos(files[:2], 256)
    got = litert_runner.LiteRTPredictor(result.paths["float32"]).predict(l_photos)["ab"]
    assert np.abs(got - np.asarray(model(l_photos, training=False)["ab"])).max() <= 1e-4
    sizes = {v: p.stat().st_size for v, p in result.paths.items()}
    assert sizes["dynamic_int8"] <= 0.30 * sizes["float32"]
