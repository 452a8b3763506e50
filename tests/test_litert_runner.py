"""The LiteRT runner's bundled model names (converted once, cached by SHA-256) and the exit codes of the exporters,
the runner and the serving client."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_colorize import pretrained
from keras_colorize.export import litert_runner

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
CLASS_NAMES = ("sky", "sea", "field", "mountain")


def _save_tiny(path, seed):
    import keras

    from keras_colorize.models import build_colorizer, get_preset

    keras.utils.set_random_seed(seed)
    build_colorizer(get_preset("tiny")).save(path)


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A tiny model installed as the bundled model 'scenes' (this process only), and an empty cache folder."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    _save_tiny(folder / pretrained.RELEASED["scenes"].filename, seed=0)
    (folder / pretrained.RELEASED["scenes"].classes).write_text("".join(f"{n}\n" for n in CLASS_NAMES))
    monkeypatch.setattr(pretrained, "_HERE", folder)
    monkeypatch.setenv(litert_runner.CACHE_ENV, str(tmp_path / "cache"))
    return folder / pretrained.RELEASED["scenes"].filename


def _photo(path, size=(90, 60)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.uniform(0, 255, (4, 6, 3)).astype(np.uint8)).resize(size, Image.BICUBIC).save(path)
    return path


def test_bundled_name_is_converted_once_and_cached(bundled, tmp_path):
    photo = _photo(tmp_path / "photo.jpg")
    first = litert_runner.colorize_files("scenes", [photo], tmp_path / "out1.png", progress=False)
    cached = sorted((tmp_path / "cache" / "tflite").iterdir())
    digest = litert_runner._sha256(bundled)
    assert [p.name for p in cached] == [f"scenes-{digest}_float32.tflite"]  # no temporary leftovers
    stamp = cached[0].stat().st_mtime_ns

    # The second run reuses the cached file, and gives the pixels of that .tflite run directly.
    second = litert_runner.colorize_files("scenes", [photo], tmp_path / "out2.png", progress=False)
    assert cached[0].stat().st_mtime_ns == stamp
    assert np.array_equal(np.asarray(Image.open(first[0])), np.asarray(Image.open(second[0])))
    direct = litert_runner.colorize_files(cached[0], [photo], tmp_path / "out3.png", progress=False)
    assert np.array_equal(np.asarray(Image.open(first[0])), np.asarray(Image.open(direct[0])))
    assert Image.open(first[0]).size == (90, 60)

    # A different model file under the same name gets its own conversion (the key is the file's content).
    _save_tiny(bundled, seed=1)
    assert litert_runner._sha256(bundled) != digest
    path = litert_runner.tflite_for("scenes", progress=lambda message: None)
    assert path.name == f"scenes-{litert_runner._sha256(bundled)}_float32.tflite" and path.is_file()
    assert len(list((tmp_path / "cache" / "tflite").iterdir())) == 2


def test_model_argument_errors(bundled, tmp_path):
    photo = _photo(tmp_path / "photo.jpg")
    for bad in ("scenes.keras", str(bundled), str(tmp_path / "missing.tflite")):
        with pytest.raises(ValueError, match=r"does not exist \(bundled model names|must be a bundled model name .* or a \.tflite file"):
            litert_runner.tflite_for(bad)
    bundled.unlink()
    with pytest.raises(ValueError, match="bundled model 'scenes' is missing"):
        litert_runner.colorize_files("scenes", [photo], tmp_path / "out.png", progress=False)


def test_exporters_take_bundled_names(bundled, tmp_path):
    import json

    from keras_colorize.export import export_lib
    from keras_colorize.export import saved_model

    model, description = export_lib.load_model("scenes")
    assert "bundled model 'scenes'" in description and model.count_params() > 0
    config = export_lib.SavedModelExportConfig(output=str(tmp_path / "served"), version=1, model_path="scenes")
    path = export_lib.export_saved_model(config)
    metadata = json.loads((path / saved_model.METADATA_FILE).read_text())
    assert metadata["serving_config"]["class_names"] == list(CLASS_NAMES)  # the bundled model's class list
    with pytest.raises(ValueError, match="bundled model name"):
        export_lib.load_model("no_such_model")


def _run(*command):
    return subprocess.run([sys.executable, *command], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def _own_lines(stderr):
    """stderr without TensorFlow's native start-up log (printed before Python runs, whatever the flags)."""
    noise = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "W0000 ", "E0000 ")
    return [line for line in stderr.strip().splitlines() if not line.startswith(noise)]


def _one_line_error(done, program, *words):
    lines = _own_lines(done.stderr)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.slow  # several TensorFlow start-ups
def test_bad_arguments_exit_2_with_one_line(tmp_path):
    """Bad values, through the export/ wrappers and the modules (a missing required flag, for every installed
    script: tests/test_console_scripts.py)."""
    photo = _photo(tmp_path / "photo.jpg")
    saved = str(REPO / "export" / "export_saved_model.py")
    tflite = str(REPO / "export" / "export_tflite.py")
    out = f"--output={tmp_path / 'served'}"
    _one_line_error(_run(saved, out, "--version=abc"), "kc-export-saved-model", "--version")
    _one_line_error(_run(saved, out, "--version=1", "--output_format=gif"), "kc-export-saved-model", "--output_format")
    _one_line_error(_run(saved, out, "--version=1", "--jpeg_quality=0"), "kc-export-saved-model", "jpeg_quality")
    _one_line_error(_run(saved, out, "--version=1", "--model=nowhere.keras"), "kc-export-saved-model", "model",
                    "nowhere.keras")
    _one_line_error(_run(saved, out, "--version=1", f"--class_names={tmp_path / 'none.txt'}"),
                    "kc-export-saved-model", "class_names")
    assert not (tmp_path / "served").exists()
    _one_line_error(_run(tflite, f"--output_dir={tmp_path / 't'}", "--variants=float32,bogus"), "kc-export-tflite",
                    "variants", "bogus")
    runner = ["-m", "keras_colorize.export.litert_runner"]
    _one_line_error(_run(*runner, "--model=missing.tflite", f"--input={photo}", f"--output={tmp_path / 'o.png'}"),
                    "kc-litert", "model", "missing.tflite")
    _one_line_error(_run(*runner, "--model=m.tflite", f"--input={photo}", f"--output={tmp_path / 'o.png'}",
                         "--num_threads=x"), "kc-litert", "--num_threads")
    client = ["-m", "keras_colorize.export.serving_client"]
    _one_line_error(_run(*client, f"--output_dir={tmp_path / 'c'}", "--batch_size=0", str(photo)), "kc-serving-client",
                    "batch_size")
    _one_line_error(_run(*client, f"--output_dir={tmp_path / 'c'}", "--protocol=smtp", str(photo)), "kc-serving-client",
                    "--protocol")
    _one_line_error(_run(*client, f"--output_dir={tmp_path / 'c'}"), "kc-serving-client", "inputs")
    hints = tmp_path / "photo.jpg.hints.json"
    hints.write_text('{"version": 1, "points": [{"x": 5, "y": 5, "color": "#ff0000"}]}')
    _one_line_error(_run(*client, f"--output_dir={tmp_path / 'c'}", f"--hints={hints}", str(photo),
                         str(_photo(tmp_path / "other.jpg"))), "kc-serving-client", "one photo")
    hints.write_text('{"version": 1, "points": [{"x": 5, "y": 5, "colour": "#ff0000"}]}')
    _one_line_error(_run(*client, f"--output_dir={tmp_path / 'c'}", f"--hints={hints}", str(photo)),
                    "kc-serving-client", "points[0].colour: unknown field")
    assert not (tmp_path / "c").exists()
    # A server that is not there is not a bad argument: status 1, still one line.
    down = _run(*client, f"--output_dir={tmp_path / 'c'}", "--server=127.0.0.1:9", str(photo))
    assert down.returncode == 1 and "cannot reach TF Serving" in down.stderr and "Traceback" not in down.stderr
