"""The model contract: refused models, refused files, one check shared by every command."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_colorize.inference import api
from keras_colorize.models import model_contract
from keras_colorize.models import build_colorizer, get_preset

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cli(module, *args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _save(model, path):
    model.save(path)
    return path


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    """Two real .keras files that load but are not colorizers."""
    folder = tmp_path_factory.mktemp("bad_models")
    x = keras.Input((64, 64, 1))
    rgb = _save(keras.Model(x, keras.layers.Conv2D(3, 1, activation="sigmoid")(x)), folder / "rgb_out.keras")
    x = keras.Input((64, 64, 1))
    dense = _save(keras.Model(x, keras.layers.Dense(10)(keras.layers.Flatten()(x))), folder / "dense10.keras")
    return {"rgb": rgb, "dense": dense}


@pytest.fixture()
def one_photo(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(folder / "a.png")
    return folder


def test_contract_accepts_colorizers():
    tiny = model_contract.check_model_contract(build_colorizer(get_preset("tiny")))
    assert (tiny.image_size, tiny.ab_key, tiny.num_classes) == (64, "ab", get_preset("tiny").num_classes)
    x = keras.Input((32, 32, 1))
    single = model_contract.check_model_contract(keras.Model(x, keras.layers.Conv2D(2, 1)(x)))
    assert (single.image_size, single.ab_key, single.num_classes) == (32, None, None)


@pytest.mark.parametrize("make, reason", [
    (lambda: keras.Model(x := keras.Input((64, 64, 1)), keras.layers.Conv2D(3, 1)(x)), r"\(None, 64, 64, 3\)"),
    (lambda: keras.Model(x := keras.Input((64, 64, 1)), keras.layers.Dense(10)(keras.layers.Flatten()(x))),
     r"\(None, 10\)"),
    (lambda: keras.Model(x := keras.Input((48, 48, 1)), keras.layers.Conv2D(2, 1)(x)), "multiple of 32"),
    (lambda: keras.Model(x := keras.Input((64, 32, 1)), keras.layers.Conv2D(2, 1)(x)), "fixed square"),
    (lambda: keras.Model(x := keras.Input((64, 64, 3)), keras.layers.Conv2D(2, 1)(x)), r"\(batch, S, S, 1\)"),
    (lambda: keras.Model(x := keras.Input((64, 64, 1), dtype="int32"), keras.layers.Conv2D(2, 1)(x)), "float"),
    (lambda: keras.Model(x := keras.Input((64, 64, 1)), {"rgb": keras.layers.Conv2D(3, 1)(x)}), "'ab'"),
])
def test_contract_refuses(make, reason):
    with pytest.raises(ValueError, match="does not fit the colorizer contract.*" + reason):
        model_contract.check_model_contract(make())
    with pytest.raises(ValueError, match=reason):
        api.load_predictor(make())


def test_exporter_uses_the_same_contract():
    from keras_colorize.export import saved_model

    x = keras.Input((48, 48, 1))
    with pytest.raises(ValueError, match="multiple of 32"):
        saved_model.model_geometry(keras.Model(x, {"ab": keras.layers.Conv2D(2, 1)(x)}))
    assert saved_model.model_geometry(build_colorizer(get_preset("tiny")))[0] == 64


@pytest.mark.parametrize("kind", ["rgb", "dense"])
def test_colorize_refuses_bad_model_before_reading_images(bad_models, one_photo, tmp_path, kind):
    out = tmp_path / "out"
    result = _cli("keras_colorize.colorize", "--model", str(bad_models[kind]), "--input", str(one_photo),
                  "--output", str(out), "--noprogress")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("kc-colorize: error: model path ") and "colorizer contract" in lines[-1]
    assert {"rgb": "(None, 64, 64, 3)", "dense": "(None, 10)"}[kind] in lines[-1]
    assert "Traceback" not in result.stderr
    assert not list(out.rglob("*.png")) and "colorized" not in result.stdout


def test_evaluate_refuses_bad_model(bad_models, one_photo, tmp_path):
    result = _cli("keras_colorize.evaluate", "--model", f"bad={bad_models['dense']}", f"--data={one_photo}",
                  f"--output={tmp_path / 'eval'}", "--noprogress")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "kc-evaluate: error:" in result.stderr and "(None, 10)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.parametrize("content, reason", [(b"", "empty file, 0 bytes"),
                                             (b"this is not a zip archive" * 10, "not a zip archive")])
def test_garbage_keras_file_is_not_a_valid_model(one_photo, tmp_path, content, reason):
    model = tmp_path / "broken.keras"
    model.write_bytes(content)
    with pytest.raises(ValueError, match=f"not a valid Keras model file \\(.*{reason}"):
        api.load_predictor(model)
    result = _cli("keras_colorize.colorize", "--model", str(model), "--input", str(one_photo), "--output",
                  str(tmp_path / "out"), "--noprogress")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"kc-colorize: error: model path {str(model)!r}: not a valid Keras model file (")
    assert reason in last
    assert "not a valid Keras model file" in result.stderr and "File not found" not in result.stderr


def test_zip_that_is_not_a_model(tmp_path):
    import zipfile

    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ValueError, match="not a valid Keras model file"):
        api.load_predictor(path)


@pytest.mark.slow
def test_savedmodel_without_ab_output_is_refused(tmp_path):
    x = keras.Input((64, 64, 1))
    keras.Model(x, keras.layers.Conv2D(3, 1)(x)).export(str(tmp_path / "rgb"), verbose=False)
    with pytest.raises(ValueError, match=r"no SavedModel signature fits the colorizer contract.*\(None, 64, 64, 3\)"):
        api.load_predictor(tmp_path / "rgb")
    x = keras.Input((64, 64, 1))
    keras.Model(x, {"ab": keras.layers.Conv2D(2, 1)(x)}).export(str(tmp_path / "good"), verbose=False)
    assert api.load_predictor(tmp_path / "good").image_size == 64


def test_load_keras_model_for_exporters(tiny_model_path, bad_models, tmp_path):
    assert api.load_keras_model(tiny_model_path).inputs[0].shape[1] == 64
    with pytest.raises(ValueError, match=r"colorizer contract.*\(None, 10\)"):
        api.load_keras_model(bad_models["dense"])
    (tmp_path / "empty.keras").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not a valid Keras model file \(empty file, 0 bytes\)"):
        api.load_keras_model(tmp_path / "empty.keras")
    with pytest.raises(ValueError, match="does not exist"):
        api.load_keras_model(tmp_path / "missing.keras")


@pytest.mark.parametrize("content", [b"", b"\x13\x37 not a zip " * 20])
def test_exporters_call_a_garbage_keras_file_invalid(tmp_path, content):
    """The exporters load through the same checked loader as colorize (not Keras' "File not found")."""
    from keras_colorize.export import export_lib

    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a valid Keras model file"):
        export_lib.load_model(str(path))
