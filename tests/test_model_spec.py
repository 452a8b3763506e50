"""One resolver for every command's model argument (keras_colorize/inference/model_spec.py): what it accepts,
and the message for each thing it refuses. No model is loaded here."""

import re

import pytest

from keras_colorize import pretrained
from keras_colorize.inference import model_spec

NAMES = re.escape(", ".join(pretrained.NAMES))  # "scenes, scenes_guided"


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "_HERE", folder)
    return folder


def test_accepts_each_kind_it_is_asked_for(tmp_path, bundled):
    keras_file, h5_file, tflite_file = tmp_path / "m.keras", tmp_path / "m.h5", tmp_path / "m.tflite"
    for path in (keras_file, h5_file, tflite_file):
        path.write_bytes(b"x")
    saved = tmp_path / "served"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    (bundled / "scenes.keras").write_bytes(b"x")
    assert model_spec.locate(str(keras_file)) == keras_file and model_spec.locate(h5_file) == h5_file
    assert model_spec.locate(str(saved)) == saved
    assert model_spec.locate(tflite_file, kinds=(model_spec.TFLITE,)) == tflite_file
    assert model_spec.locate("scenes") == bundled / "scenes.keras"


@pytest.mark.parametrize("make, kinds, message", [
    (lambda d: "", None, rf"^model '': give a bundled model name \({NAMES}\) or a path$"),
    (lambda d: d / "nope.keras", None, rf"^model '.*nope\.keras' does not exist \(bundled model names: {NAMES}\)$"),
    (lambda d: d, None, r"is a folder without saved_model.pb \(not a SavedModel\); it must be a bundled model name"),
    (lambda d: d, ("keras",), rf"is a folder; it must be a bundled model name \({NAMES}\) or a \.keras file$"),
    (lambda d: d / "m.keras", ("tflite",), r"is a \.keras file; it must be a bundled model name .* or a \.tflite file$"),
    (lambda d: d / "m.tflite", None, r"is a \.tflite file; .* or a \.keras file or a SavedModel folder$"),
])
def test_refusals_name_the_spec_and_what_was_wanted(tmp_path, bundled, make, kinds, message):
    for name in ("m.keras", "m.tflite"):
        (tmp_path / name).write_bytes(b"x")
    spec = make(tmp_path)
    with pytest.raises(ValueError, match=message):
        model_spec.locate(str(spec) if spec != "" else spec, **({"kinds": kinds} if kinds else {}))


def test_a_bundled_name_missing_from_the_installation_and_the_label(tmp_path, bundled):
    with pytest.raises(ValueError, match="the bundled model 'scenes' is missing from this installation"):
        model_spec.locate("scenes")
    with pytest.raises(ValueError, match=r"^--init_from='x\.keras' does not exist"):
        model_spec.locate("x.keras", label="--init_from=")
