"""Hint files and every host-side way hints reach a guided model: Python API, kc-colorize, kc-colorize-video.

Most checks use an *oracle* guided model whose hint weights are set by hand: its a*b* output is
the hint map's colour where a hint is given and gray elsewhere, shifted everywhere by the mean
a*b* of the reference histogram. Whatever it outputs shows exactly where a hint landed and which
reference reached it, so these tests measure the plumbing (file -> grid -> model -> full-resolution
merge) rather than a trained network. The tiny guided preset checks that the real architecture is
fed the same way.
"""

import concurrent.futures
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from keras_colorize.guidance import hint_file
from keras_colorize.guidance import hint_ops
from keras_colorize.guidance import spec
from keras_colorize.inference import api
from keras_colorize.inference import photos
from keras_colorize.models import ab_bins
from keras_colorize.models import build_colorizer, get_preset

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = 64
ORANGE_AB = (30.0, 40.0)


# ----------------------------------------------------------------------------
# Models and files
# ----------------------------------------------------------------------------


def _oracle_model(size=SIZE):
    """A guided model (inputs L, hints, reference) with hand-set weights: ab = hint colour (or gray) + mean
    a*b* of the reference histogram, in target units."""
    l_input = keras.Input((size, size, 1), name=spec.L_INPUT)
    hints = keras.Input((size, size, spec.HINT_CHANNELS), name=spec.HINTS_INPUT)
    reference = keras.Input((spec.REFERENCE_SIZE,), name=spec.REFERENCE_INPUT)
    hint_ab = keras.layers.Conv2D(2, 1, name="hint_ab")(hints)
    from_l = keras.layers.Conv2D(2, 1, use_bias=False, kernel_initializer="zeros", name="l_ab")(l_input)
    shift = keras.layers.Dense(2, use_bias=False, name="reference_ab")(reference)
    shift = keras.layers.UpSampling2D(size, name="reference_tile")(keras.layers.Reshape((1, 1, 2))(shift))
    ab = keras.layers.Add(name="ab_sum")([hint_ab, from_l, shift])
    model = keras.Model({spec.L_INPUT: l_input, spec.HINTS_INPUT: hints, spec.REFERENCE_INPUT: reference},
                        {"ab": ab}, name="oracle")
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 0] = kernel[0, 0, 1, 1] = spec.HINT_AB_SCALE / 255.0
    model.get_layer("hint_ab").set_weights([kernel, np.full(2, 128.0 / 255.0, np.float32)])
    centres = np.asarray(ab_bins.bin_centers(), np.float32) / 255.0
    model.get_layer("reference_ab").set_weights([np.concatenate([centres, np.zeros((1, 2), np.float32)])])
    return model


@pytest.fixture(scope="module")
def oracle_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("oracle") / "oracle.keras"
    _oracle_model().save(path)
    return path


@pytest.fixture(scope="module")
def oracle(oracle_path):
    return api.Colorizer(oracle_path)


@pytest.fixture(scope="module")
def tiny_colorizer(tiny_model_path):
    """The unguided tiny preset (conftest's ``tiny_model_path``), loaded once for the in-process checks."""
    return api.Colorizer(tiny_model_path)


@pytest.fixture(scope="module")
def guided_tiny_path(tmp_path_factory):
    """The tiny preset with hints=True; its zero-initialized hint conv set by hand so that hints move the output."""
    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("tiny", hints=True))
    layer = model.get_layer("hint_input_conv")
    kernel = np.zeros(layer.get_weights()[0].shape, np.float32)
    kernel[1, 1, 0, :] = 8.0
    kernel[1, 1, 2, :] = 2.0
    layer.set_weights([kernel])
    head = model.get_layer("out_bn")  # calm chroma, so the merged colours stay in gamut
    weights = head.get_weights()
    weights[0] = np.full_like(weights[0], 0.1)
    head.set_weights(weights)
    path = tmp_path_factory.mktemp("guided") / "guided_tiny.keras"
    model.save(path)
    return path


def _gray_photo(path, size=(160, 120), level=150):
    Image.fromarray(np.full((size[1], size[0]), level, np.uint8), "L").save(path)
    return path


def _textured_photo(path, size=(160, 120), seed=0):
    rng = np.random.default_rng(seed)
    array = np.clip(120 + rng.normal(0, 25, (size[1], size[0])), 0, 255).astype(np.uint8)
    Image.fromarray(array, "L").save(path)
    return path


def _solid(path, rgb, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), rgb, np.uint8), "RGB").save(path)
    return path


def _write(path, document):
    path.write_text(json.dumps(document))
    return path


def _ab(rgb):
    """(H, W, 2) CIE a*b* of an sRGB uint8 image (skimage, independent of the package)."""
    return skcolor.rgb2lab(np.asarray(rgb, np.float64)[..., :3] / 255.0)[..., 1:]


def _point(x, y, color, size=None):
    point = {"x": x, "y": y, "color": color}
    if size is not None:
        point["size"] = size
    return point


def _doc(*points, **fields):
    return {"version": 1, "points": list(points), **fields}


# ----------------------------------------------------------------------------
# The file format
# ----------------------------------------------------------------------------

GOOD_DOCUMENTS = [
    {"version": 1},
    {"version": 1, "points": []},
    _doc(_point(0, 0, "#d2691e")),
    _doc(_point(12.5, 300, [20.0, -35.5], 9), _point(7, 8, "#FFFFFF", 1)),
    _doc(_point(0.5, 1, [-128, 128], 3.0), units="fraction"),
    _doc(_point(5000, 4000, "#000000"), units="pixels", reference="ref.jpg", saturation=0),
    {"version": 1, "reference": "../photos/sunset.png", "saturation": 2},
]

BAD_DOCUMENTS = [  # (document, the start of the message: field and value named)
    ([], "the document: must be a JSON object"),
    ({}, "version: missing"),
    ({"version": 2}, "version: 2 is not supported"),
    ({"version": "1"}, 'version: "1" is not supported'),
    ({"version": True}, "version: true is not supported"),
    ({"version": 1, "refrence": "a.jpg"}, "refrence: unknown field"),
    ({"version": 1, "units": "inches"}, 'units: must be "pixels" or "fraction", got "inches"'),
    ({"version": 1, "points": {"x": 1}}, "points: must be a list"),
    (_doc([1, 2]), "points[0]: must be an object"),
    (_doc({"x": 1, "y": 2}), "points[0].color: missing"),
    (_doc({"y": 2, "color": "#000000"}), "points[0].x: missing"),
    (_doc(_point("10", 2, "#000000")), 'points[0].x: must be a number, got "10"'),
    (_doc(_point(True, 2, "#000000")), "points[0].x: must be a number, got true"),
    (_doc(_point(1, -0.5, "#000000")), "points[0].y: -0.5 is outside the photo"),
    (_doc(_point(1.5, 0.5, "#000000"), units="fraction"), "points[0].x: 1.5 is outside the photo"),
    (_doc(_point(1, 1, "#12345")), 'points[0].color: "#12345" is not a colour'),
    (_doc(_point(1, 1, "red")), 'points[0].color: "red" is not a colour'),
    (_doc(_point(1, 1, "#12345g")), 'points[0].color: "#12345g" is not a colour'),
    (_doc(_point(1, 1, [1, 2, 3])), "points[0].color: [1, 2, 3] is not a colour"),
    (_doc(_point(1, 1, [200, 0])), "points[0].color: [200, 0] is not a colour"),
    (_doc(_point(1, 1, ["a", 0])), 'points[0].color: ["a", 0] is not a colour'),
    (_doc(_point(1, 1, "#000000", 0)), "points[0].size: must be an integer in [1, 9]"),
    (_doc(_point(1, 1, "#000000", 10)), "points[0].size: must be an integer in [1, 9] (model-grid pixels), got 10"),
    (_doc(_point(1, 1, "#000000", 2.5)), "points[0].size: must be an integer in [1, 9] (model-grid pixels), got 2.5"),
    (_doc(_point(1, 1, "#000000"), {"x": 1, "y": 1, "color": "#000000", "colour": "#fff"}),
     "points[1].colour: unknown field"),
    ({"version": 1, "reference": ""}, 'reference: must be the path of a photo, got ""'),
    ({"version": 1, "reference": 3}, "reference: must be the path of a photo, got 3"),
    ({"version": 1, "saturation": 2.5}, "saturation: must be a number in [0, 2], got 2.5"),
]

GOOD_FILMS = [
    [],
    [{"frames": [0, 0], "version": 1}],
    [{"frames": [0, 9], "version": 1, "units": "fraction", "points": [_point(0.5, 0.5, "#ff0000", 9)]},
     {"frames": [10, 20], "version": 1, "reference": "dusk.jpg"}],
]

BAD_FILMS = [  # (document, message start, whether JSON Schema can say it)
    ({"version": 1}, "the document must be a JSON list", True),
    ([{"version": 1}], "[0].frames: missing", True),
    ([{"frames": [0], "version": 1}], "[0].frames: must be [first, last]", True),
    ([{"frames": [-1, 3], "version": 1}], "[0].frames: must be [first, last]", True),
    ([{"frames": [0, 3]}], "[0].version: missing", True),
    ([{"frames": [0, 3], "version": 1, "points": [_point(1, 1, "#zzzzzz")]}], "[0].points[0].color:", True),
    ([{"frames": [0, 3], "version": 1, "frame": 2}], "[0].frame: unknown field", True),
    ([{"frames": [5, 3], "version": 1}], "[0].frames: must be [first, last]", False),
    ([{"frames": [0, 10], "version": 1}, {"frames": [10, 12], "version": 1}],
     "[1].frames: overlaps [0].frames (frame 10 is in both)", False),
]


def test_good_documents_validate_and_load():
    for document in GOOD_DOCUMENTS:
        hint_file.validate(document)
    hints = hint_file.Hints.load(GOOD_DOCUMENTS[3], base_dir="/photos")
    first, second = hints.points
    assert (first.x, first.y, first.ab, first.size, first.hex, first.fraction) == (12.5, 300, (20.0, -35.5), 9,
                                                                                   None, False)
    assert second.hex == "#ffffff" and second.size == 1 and max(map(abs, second.ab)) < 0.01  # white is a*b* = 0
    assert hint_file.Hints.load({"version": 1}).guides is False
    assert hint_file.Hints.load(GOOD_DOCUMENTS[4]).points[0].fraction


@pytest.mark.parametrize("document,message", BAD_DOCUMENTS, ids=[m for _, m in BAD_DOCUMENTS])
def test_bad_documents_name_the_field_and_the_value(document, message):
    with pytest.raises(hint_file.HintFileError) as caught:
        hint_file.validate(document)
    assert str(caught.value).startswith(message), str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_hex_colours_become_their_a_b_of_skimage():
    for hex_color in ("#d2691e", "#3060c0", "#20a040", "#808080"):
        rgb = np.array([[[int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]]], np.uint8)
        np.testing.assert_allclose(hint_file.hex_to_ab(hex_color), _ab(rgb)[0, 0], atol=0.02)
    point = hint_file.Hints.load(_doc(_point(1, 2, [30.0, 40.0]))).points[0]
    back = hint_file.hex_to_ab(hint_file.point_hex(point))
    assert abs(back[0] - 30) < 2 and abs(back[1] - 40) < 2  # the studio's hex of an [a, b] colour


def test_schema_and_validator_agree():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the [test] extra")
    schema = json.loads(hint_file.SCHEMA_PATH.read_text())
    film_schema = json.loads(hint_file.FILM_SCHEMA_PATH.read_text())
    for which in (schema, film_schema):
        jsonschema.Draft202012Validator.check_schema(which)
    hints_validator = jsonschema.Draft202012Validator(schema)
    film_validator = jsonschema.Draft202012Validator(film_schema)
    for document in GOOD_DOCUMENTS:
        assert not list(hints_validator.iter_errors(document)), document
    for document, message in BAD_DOCUMENTS:
        assert list(hints_validator.iter_errors(document)), (document, message)
    for document in GOOD_FILMS:
        hint_file.validate_film(document)
        assert not list(film_validator.iter_errors(document)), document
    for document, message, expressible in BAD_FILMS:
        with pytest.raises(hint_file.HintFileError, match=None) as caught:
            hint_file.validate_film(document)
        assert str(caught.value).startswith(message), str(caught.value)
        assert bool(list(film_validator.iter_errors(document))) == expressible, (document, message)


def test_schema_ships_with_the_package():
    setup = (REPO / "setup.cfg").read_text()
    assert "guidance/*.json" in setup
    assert hint_file.SCHEMA_PATH.is_file() and hint_file.FILM_SCHEMA_PATH.is_file()
    assert json.loads(hint_file.SCHEMA_PATH.read_text())["properties"]["version"] == {"const": 1}


def test_files_resolve_the_reference_and_refuse_bad_json(tmp_path):
    folder = tmp_path / "hints"
    folder.mkdir()
    reference = _solid(tmp_path / "sunset.png", (230, 120, 40))
    path = _write(folder / "scan.jpg.hints.json", _doc(_point(3, 4, "#d2691e"), reference="../sunset.png"))
    hints = hint_file.Hints.load(path)
    assert hints.reference.resolve() == reference.resolve() and hints.source == str(path)
    # relative to the file's folder, not the working directory
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        assert hint_file.Hints.load(str(path)).reference.resolve() == reference.resolve()
    finally:
        os.chdir(cwd)
    cases = {
        "missing.json": (None, "hints file '{}' does not exist"),
        "broken.json": ('{"version": 1, "points": [}', "hints file '{}': not valid JSON (line 1 column 27"),
        "nan.json": ('{"version": 1, "saturation": NaN}', "hints file '{}': not valid JSON (NaN is not valid JSON)"),
        "twice.json": ('{"version": 1, "version": 1}', "hints file '{}': not valid JSON (duplicate field 'version')"),
        "field.json": ('{"version": 1, "points": [{"x": 1, "y": 1, "color": "blue"}]}',
                       "hints file '{}': points[0].color: \"blue\" is not a colour"),
        "noref.json": ('{"version": 1, "reference": "nowhere.jpg"}',
                       "hints file '{}': reference: 'nowhere.jpg' ('{}') does not exist"),
        "textref.json": ('{"version": 1, "reference": "notes.jpg"}',
                         "hints file '{}': reference: 'notes.jpg' ('{}') is not an image (not a recognised image"),
    }
    (folder / "notes.jpg").write_text("not a photo")
    for name, (text, message) in cases.items():
        bad = folder / name
        if text is not None:
            bad.write_text(text)
        referenced = folder / {"noref.json": "nowhere.jpg", "textref.json": "notes.jpg"}.get(name, "")
        with pytest.raises(hint_file.HintFileError) as caught:
            hint_file.Hints.load(bad)
        assert str(caught.value).startswith(message.format(bad, referenced)), str(caught.value)


def test_points_outside_the_photo_are_refused_when_its_size_is_known():
    hints = hint_file.Hints(points=(hint_file.Point(640, 10, (1.0, 2.0)),), source="a.json")
    hints.check_photo(640, 480)  # the right edge is in
    with pytest.raises(hint_file.HintFileError, match=r"^hints file 'a.json': points\[0\].x: 640 is outside the "
                                                      r"photo \(639 x 480 pixels: x must be in \[0, 639\]\)"):
        hints.check_photo(639, 480)
    with pytest.raises(ValueError, match=r"points\[0\].y: 10 is outside"):
        hint_file.model_inputs(hints, 800, 9, SIZE)
    fraction = hint_file.Hints.load(_doc(_point(1.0, 1.0, "#000000"), units="fraction"))
    fraction.check_photo(3, 2)


def test_model_inputs_paint_the_grid_where_the_photo_point_is(tmp_path):
    # A 640 x 480 photo on a 64 grid: x / 10, y / 7.5.
    hints = hint_file.Hints.load(_doc(_point(205, 150, [40.0, -20.0], 1), _point(600, 450, "#000000", 3)))
    hint_map, reference = hint_file.model_inputs(hints, 640, 480, SIZE)
    assert hint_map.shape == (SIZE, SIZE, 3) and hint_map.dtype == np.float32
    np.testing.assert_allclose(hint_map[20, 20], [40 / 128, -20 / 128, 1.0], atol=1e-6)  # (20.5, 20.0)
    assert hint_map[60, 59:62, 2].tolist() == [1, 1, 1] and hint_map[60, 59:62, :2].max() == 0.0  # gray differs
    assert hint_map[..., 2].sum() == 1 + 9
    assert not reference.any()
    # the same points as fractions give the same map
    same = hint_file.Hints.load(_doc(_point(205 / 640, 150 / 480, [40.0, -20.0], 1),
                                     _point(600 / 640, 450 / 480, "#000000", 3), units="fraction"))
    np.testing.assert_array_equal(hint_file.model_inputs(same, 640, 480, SIZE)[0], hint_map)
    # a reference photo's histogram, flag set; the same as hint_ops'
    _solid(tmp_path / "orange.png", (230, 120, 40))
    with_reference = hint_file.Hints.load(_doc(reference="orange.png"), base_dir=tmp_path)
    _, reference = hint_file.model_inputs(with_reference, 10, 10, SIZE)
    assert reference.shape == (spec.REFERENCE_SIZE,) and reference[-1] == 1.0
    assert abs(reference[:-1].sum() - 1.0) < 1e-5
    want = hint_ops.reference_vector(np.full((30, 40, 3), (230, 120, 40), np.uint8)).numpy()
    np.testing.assert_allclose(reference, want, atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    _solid(tmp_path / "ref.png", (20, 90, 200))
    hints = hint_file.Hints.load(_doc(_point(1, 2, "#D2691E", 5), _point(3.5, 4, [1.5, -2.0]),
                                      reference=str(tmp_path / "ref.png"), saturation=1.25))
    saved = hints.save(tmp_path / "sub" / "x.hints.json")
    document = json.loads(saved.read_text())
    assert document["reference"] == "../ref.png" and document["points"][0]["color"] == "#d2691e"
    hint_file.validate(document)
    again = hint_file.Hints.load(saved)
    assert again.points == hints.points and again.saturation == 1.25
    assert again.reference.resolve() == (tmp_path / "ref.png").resolve()


def test_film_hints_pick_the_range_of_each_frame(tmp_path):
    _solid(tmp_path / "dusk.jpg", (200, 90, 60))
    path = _write(tmp_path / "film.json", GOOD_FILMS[2])
    film = hint_file.FilmHints.load(path)
    assert [hint_file.FilmHints.load(path).at(f)[0] for f in (0, 9, 10, 20, 21)] == [0, 0, 1, 1, None]
    assert film.at(15)[1].reference.resolve() == (tmp_path / "dusk.jpg").resolve()
    bad = _write(tmp_path / "bad.json", BAD_FILMS[-1][0])
    with pytest.raises(hint_file.HintFileError, match=r"^hints file '.*bad.json': \[1\].frames: overlaps"):
        hint_file.FilmHints.load(bad)
    missing = _write(tmp_path / "missing.json", [{"frames": [0, 3], "version": 1, "reference": "no.jpg"}])
    with pytest.raises(hint_file.HintFileError, match=r"\[0\].reference: 'no.jpg' .* does not exist"):
        hint_file.FilmHints.load(missing)


def test_sidecar_paths():
    assert hint_file.sidecar_path("scans/a/x.jpg") == pathlib.Path("scans/a/x.jpg.hints.json")
    assert hint_file.sidecar_path("scans/a/x.jpg", "scans", "hints") == pathlib.Path("hints/a/x.jpg.hints.json")
    assert hint_file.is_sidecar("x.JPG.HINTS.JSON") and not hint_file.is_sidecar("x.json")


# ----------------------------------------------------------------------------
# Python API
# ----------------------------------------------------------------------------


def test_a_hint_lands_where_it_was_put_and_nowhere_else(oracle, tmp_path):
    """640 x 480 photo on a 64 grid (a grid pixel is 10 x 7.5 photo pixels); point (200, 150) -> grid (20, 20),
    size 3 -> grid pixels 19..21, whose centres span x 195..215, y 146.25..161.25 in the photo (photo pixel i has
    its centre at i + 0.5)."""
    photo = _gray_photo(tmp_path / "gray.png", (640, 480))
    assert oracle.guided
    out = np.asarray(oracle.colorize(photo, hints=_doc(_point(200, 150, list(ORANGE_AB), 3))))
    ab = _ab(out)
    np.testing.assert_allclose(ab[147:161, 195:215], np.broadcast_to(ORANGE_AB, (14, 20, 2)), atol=1.5)
    # beyond the centres of the neighbouring grid pixels (bilinear upsampling blends in between) it stays gray
    for outside in (ab[:139], ab[169:], ab[:, :185], ab[:, 225:]):
        assert np.abs(outside).max() < 1.0
    # L* is the photo's
    np.testing.assert_allclose(skcolor.rgb2lab(out / 255.0)[..., 0], skcolor.rgb2lab(np.full((1, 1, 3), 150) / 255.0)[
        0, 0, 0], atol=0.6)
    # no hints: gray everywhere (automatic mode of the oracle)
    assert np.abs(_ab(np.asarray(oracle.colorize(photo)))).max() < 1.0


def test_hints_come_as_hints_dicts_paths_and_fractions_alike(oracle, tmp_path):
    photo = _gray_photo(tmp_path / "gray.png", (200, 100))
    document = _doc(_point(50, 25, "#d2691e", 5), _point(150, 80, [-30.0, 20.0], 3))
    path = _write(tmp_path / "gray.png.hints.json", document)
    fractions = _doc(_point(0.25, 0.25, "#d2691e", 5), _point(0.75, 0.8, [-30.0, 20.0], 3), units="fraction")
    outputs = [np.asarray(oracle.colorize(photo, hints=h)) for h in
               (document, path, str(path), hint_file.Hints.load(path), fractions)]
    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])
    ab = _ab(outputs[0])
    np.testing.assert_allclose(ab[25, 50], hint_file.hex_to_ab("#d2691e"), atol=2.5)
    np.testing.assert_allclose(ab[80, 150], [-30, 20], atol=1.5)
    # colorize_batch: one hint file per image, or one for every image
    arrays = [np.full((100, 200), 150, np.uint8)] * 2
    per_image = oracle.colorize_batch(arrays, hints=[fractions, None])
    assert np.abs(_ab(per_image[0])[25, 50]).max() > 20 and np.abs(_ab(per_image[1])).max() < 1.0
    shared = oracle.colorize_batch(arrays, hints=fractions)
    np.testing.assert_array_equal(shared[0], shared[1])
    with pytest.raises(ValueError, match=r"one entry per picture \(2\), got list of 3"):
        oracle.colorize_batch(arrays, hints=[None] * 3)


def test_a_reference_shifts_the_whole_palette_and_the_hint_file_reference_wins(oracle, tmp_path):
    photo = np.full((60, 80), 150, np.uint8)
    blue = _solid(tmp_path / "blue.png", (40, 90, 200))
    orange = _solid(tmp_path / "orange.png", (230, 120, 40))
    blue_ab, orange_ab = _ab(Image.open(blue))[0, 0], _ab(Image.open(orange))[0, 0]
    got = _ab(oracle.colorize(photo, reference=blue))
    assert np.abs(got - blue_ab).max() < 6  # the mean of the blue photo's histogram bins, everywhere
    got = _ab(oracle.colorize(photo, hints=_doc(reference=str(orange)), reference=blue))
    assert np.abs(got - orange_ab).max() < 6
    got = _ab(oracle.colorize(photo, hints=_doc(_point(10, 10, "#808080", 1)), reference=Image.open(orange)))
    assert np.abs(got[40:, 40:] - orange_ab).max() < 6  # a file without a reference takes the given one


def test_bad_hints_raise_naming_the_field(oracle, tmp_path):
    photo = np.full((60, 80), 150, np.uint8)
    with pytest.raises(hint_file.HintFileError, match=r"points\[0\].x: 81 is outside the photo \(80 x 60"):
        oracle.colorize(photo, hints=_doc(_point(81, 3, "#000000")))
    with pytest.raises(hint_file.HintFileError, match=r"points\[0\].colour: unknown field"):
        oracle.colorize(photo, hints={"version": 1, "points": [{"x": 1, "y": 1, "colour": "#000000"}]})
    with pytest.raises(hint_file.HintFileError, match="does not exist"):
        oracle.colorize(photo, hints=tmp_path / "none.json")
    with pytest.raises(hint_file.HintFileError, match="hints must be a Hints, a dict"):
        oracle.colorize(photo, hints=42)


def test_unguided_models_refuse_hints_and_take_only_l(tiny_model_path, tiny_colorizer, tmp_path):
    colorizer = tiny_colorizer
    assert not colorizer.guided
    photo = np.full((60, 80), 150, np.uint8)
    for kwargs in ({"hints": _doc(_point(1, 1, "#ff0000"))}, {"reference": _solid(tmp_path / "r.png", (9, 9, 9))}):
        with pytest.raises(hint_file.NoHintInputsError, match=f"model {str(tiny_model_path)!r} has no hint inputs"):
            colorizer.colorize(photo, **kwargs)
    with pytest.raises(ValueError, match="has no hint inputs"):
        colorizer.predict_ab(np.zeros((1, SIZE, SIZE, 1), np.float32), hints=np.zeros((1, SIZE, SIZE, 3)))
    # a file with nothing for the model (saturation only) is fine, and so are no hints
    plain = colorizer.colorize(photo)
    np.testing.assert_array_equal(colorizer.colorize(photo, hints={"version": 1}), plain)
    assert np.abs(_ab(colorizer.colorize(photo, hints={"version": 1, "saturation": 0}))).max() < 1.0


def test_guided_tiny_model_gets_zeros_without_hints_and_the_hints_with_them(guided_tiny_path):
    colorizer = api.Colorizer(guided_tiny_path, batch_size=2)
    model = keras.saving.load_model(guided_tiny_path, compile=False)
    assert colorizer.guided
    rng = np.random.default_rng(0)
    l_small = rng.random((3, SIZE, SIZE, 1), np.float32)
    zeros = {"hints": np.zeros((3, SIZE, SIZE, 3), np.float32), "reference": np.zeros((3, spec.REFERENCE_SIZE),
                                                                                       np.float32)}
    want = np.asarray(model({"L": l_small, **zeros}, training=False)["ab"])
    np.testing.assert_allclose(colorizer.predict_ab(l_small), want, atol=1e-5)
    np.testing.assert_allclose(colorizer.predict_ab(l_small, **zeros), want, atol=1e-5)
    hints = np.stack([hint_ops.paint_hints([[20.5, 30.5]], [[60.0, 40.0]], [5], SIZE).numpy()] * 3)
    reference = np.stack([hint_ops.reference_vector(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).numpy()] * 3)
    hinted = np.asarray(model({"L": l_small, "hints": hints, "reference": reference}, training=False)["ab"])
    assert np.abs(hinted - want).max() > 1e-2  # the hand-set hint conv moves the output
    np.testing.assert_allclose(colorizer.predict_ab(l_small, hints=hints, reference=reference), hinted, atol=1e-5)
    with pytest.raises(ValueError, match=r"hints must have shape \(3, 64, 64, 3\)"):
        colorizer.predict_ab(l_small, hints=hints[:2])
    photo = (rng.random((48, 72)) * 255).astype(np.uint8)
    document = _doc(_point(30, 20, "#c04020", 7))
    assert np.abs(colorizer.colorize(photo, hints=document).astype(int) - colorizer.colorize(photo)).max() > 2


def test_guided_savedmodel_takes_hints_through_its_guided_signature(tmp_path):
    import tensorflow as tf  # noqa: PLC0415

    model = _oracle_model()
    archive = keras.export.ExportArchive()
    l_spec = tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32, name="L")
    zeros = lambda n, tail: tf.zeros(tf.concat([[n], tail], 0))  # noqa: E731
    archive.add_endpoint("colorize_l", lambda L: {"ab": model({  # noqa: N803
        "L": L, "hints": zeros(tf.shape(L)[0], [SIZE, SIZE, 3]), "reference": zeros(tf.shape(L)[0],
                                                                                    [spec.REFERENCE_SIZE])})["ab"]},
                         input_signature=[l_spec])
    archive.add_endpoint("colorize_l_guided", lambda L, hints, reference: {"ab": model(  # noqa: N803
        {"L": L, "hints": hints, "reference": reference})["ab"]}, input_signature=[
        l_spec, tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="hints"),
        tf.TensorSpec([None, spec.REFERENCE_SIZE], tf.float32, name="reference")])
    archive.write_out(str(tmp_path / "saved"), verbose=False)
    colorizer = api.Colorizer(tmp_path / "saved")
    assert colorizer.guided and colorizer._predictor.signature == "colorize_l_guided"  # noqa: SLF001
    photo = np.full((48, 64), 150, np.uint8)
    out = _ab(colorizer.colorize(photo, hints=_doc(_point(0.5, 0.5, list(ORANGE_AB), 5), units="fraction")))
    np.testing.assert_allclose(out[24, 32], ORANGE_AB, atol=1.5)
    assert np.abs(out[:, :10]).max() < 1.0


# ----------------------------------------------------------------------------
# kc-colorize
# ----------------------------------------------------------------------------


def _cli(module, *args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", module, "--noprogress", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _colorize(*args):
    return _cli("keras_colorize.colorize", *args)


def _error_line(result):
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[-1] if lines else ""


def test_cli_hints_for_one_real_photo(oracle_path, bw_dir, tmp_path):
    """A real scan, a hint file beside it under another name: the colour is at the point, the far side gray."""
    scan = min((p for p in bw_dir.iterdir() if p.suffix == ".jpg"), key=lambda p: p.stat().st_size)
    source = tmp_path / scan.name
    shutil.copy(scan, source)
    with Image.open(source) as image:
        width, height = image.size
    hints = _write(tmp_path / "my.hints.json", _doc(_point(width * 0.3, height * 0.4, "#d2691e", 9)))
    result = _colorize("--model", oracle_path, "--input", source, "--output", tmp_path / "out", "--hints", hints)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "with hints: 1" in result.stdout
    out = np.asarray(Image.open(tmp_path / "out" / scan.name).convert("RGB"))
    chroma = np.hypot(*np.moveaxis(_ab(out), -1, 0))
    near = chroma[int(height * 0.4) - 3:int(height * 0.4) + 3, int(width * 0.3) - 3:int(width * 0.3) + 3]
    lab = skcolor.rgb2lab(out / 255.0)
    mid = (lab[..., 0] > 25) & (lab[..., 0] < 85)  # where sRGB can show the colour at all
    assert near.mean() > 20, near.mean()
    assert np.median(chroma[:, int(width * 0.7):][mid[:, int(width * 0.7):]]) < 3.0


def test_cli_sidecars_in_a_folder_bad_ones_fail_their_photo_only(oracle_path, tmp_path):
    source = tmp_path / "scans"
    (source / "sub").mkdir(parents=True)
    for name in ("good.png", "sub/deep.png", "bad_field.png", "outside.png", "plain.png", "badref.png"):
        _gray_photo(source / name, (80, 60))
    _write(source / "good.png.hints.json", _doc(_point(20, 15, list(ORANGE_AB), 5)))
    _write(source / "sub" / "deep.png.hints.json", _doc(_point(0.5, 0.5, [-30, 20], 3), units="fraction"))
    _write(source / "bad_field.png.hints.json", {"version": 1, "points": [{"x": 1, "y": 1, "colour": "#ff0000"}]})
    _write(source / "outside.png.hints.json", _doc(_point(200, 10, "#ff0000")))
    _write(source / "badref.png.hints.json", _doc(reference="missing.jpg"))
    (source / "orphan.jpg.hints.json").write_text("{}")  # a sidecar without its photo is no input either
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    result = _colorize("--model", oracle_path, "--input", source, "--output", out)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "colorized 3, skipped 0 already done, failed 3, ignored 0 non-image files" in result.stdout
    assert "FAILED bad_field.png: hints file" in result.stdout and "points[0].colour: unknown field" in result.stdout
    assert "FAILED outside.png: hints file" in result.stdout and "points[0].x: 200 is outside the photo (80 x 60" \
        in result.stdout
    assert "FAILED badref.png: hints file" in result.stdout and "reference: 'missing.jpg'" in result.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["good.png", "plain.png",
                                                                                "sub/deep.png"]
    np.testing.assert_allclose(_ab(Image.open(out / "good.png"))[15, 20], ORANGE_AB, atol=1.5)
    np.testing.assert_allclose(_ab(Image.open(out / "sub" / "deep.png"))[30, 40], [-30, 20], atol=1.5)
    assert np.abs(_ab(Image.open(out / "plain.png"))).max() < 1.0
    report = json.loads((out / photos.REPORT_NAME).read_text())
    assert sorted(h["file"] for h in report["hints"]) == ["good.png", "sub/deep.png"]
    assert report["ignored_non_images"] == [] and report["config"]["sidecars"] is True
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before

    # Resuming: nothing to do; a sidecar edited after its output redoes that photo only.
    time.sleep(0.05)
    _write(source / "good.png.hints.json", _doc(_point(60, 45, list(ORANGE_AB), 5)))
    _write(source / "bad_field.png.hints.json", _doc())
    summary = photos.run(photos.ColorizeConfig(model=str(oracle_path), input=str(source), output=str(out)),
                         progress=False)  # in-process: the command's own path, without another TF start-up
    assert not summary.ok  # outside.png and badref.png still fail
    assert "colorized 2, skipped 2 already done, failed 2" in summary.text(), summary.text()
    redone = _ab(Image.open(out / "good.png"))
    assert np.abs(redone[15, 20]).max() < 1.0 and np.abs(redone[45, 60] - ORANGE_AB).max() < 1.5


def test_cli_hints_dir_holds_the_sidecars_and_the_reference_applies_where_they_name_none(oracle_path, tmp_path):
    source, hints_dir = tmp_path / "scans", tmp_path / "hints"
    (source / "a").mkdir(parents=True)
    (hints_dir / "a").mkdir(parents=True)
    for name in ("a/one.png", "two.png"):
        _gray_photo(source / name, (80, 60))
    blue = _solid(tmp_path / "blue.png", (40, 90, 200))
    orange = _solid(tmp_path / "orange.png", (230, 120, 40))
    _write(hints_dir / "a" / "one.png.hints.json", _doc(reference="../../orange.png"))
    _write(source / "two.png.hints.json", _doc(_point(5, 5, "#00ff00")))  # beside: not read with --hints_dir
    out = tmp_path / "out"
    result = _colorize("--model", oracle_path, "--input", source, "--output", out, "--hints_dir", hints_dir,
                       "--reference", blue)
    assert result.returncode == 0, result.stdout + result.stderr
    assert np.abs(_ab(Image.open(out / "a" / "one.png")) - _ab(Image.open(orange))[0, 0]).max() < 6
    assert np.abs(_ab(Image.open(out / "two.png")) - _ab(Image.open(blue))[0, 0]).max() < 6


def _in_parallel(*calls):
    """Runs the command-line calls (thunks) at once: each pays a TensorFlow start-up."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def _usage_error(run):
    """The one line ``cli.run`` would print for ``run()``'s ``ValueError`` (exit status 2), or None."""
    try:
        run()
    except ValueError as e:
        return " ".join(str(e).split())
    return None


def test_cli_bad_hints_reference_and_unguided_models_exit_2_writing_nothing(oracle_path, tiny_model_path,
                                                                           tiny_colorizer, tmp_path):
    source = tmp_path / "scans"
    source.mkdir()
    photo = _gray_photo(source / "a.png", (80, 60))
    good = _write(tmp_path / "good.json", _doc(_point(1, 1, "#ff0000")))
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    out = tmp_path / "out"
    with_sidecar = tmp_path / "with_sidecar"
    with_sidecar.mkdir()
    _gray_photo(with_sidecar / "a.png", (80, 60))
    _write(with_sidecar / "a.png.hints.json", _doc(_point(1, 1, "#ff0000")))
    plain_out = tmp_path / "plain_out"

    # Through the command: one line, exit status 2, nothing written.
    commands = [
        (["--model", oracle_path, "--input", photo, "--hints",
          _write(tmp_path / "bad.json", {"version": 1, "point": []})],
         f"hints file {str(tmp_path / 'bad.json')!r}: point: unknown field"),
        (["--model", tiny_model_path, "--input", photo, "--hints", good],
         f"model {str(tiny_model_path)!r} has no hint inputs (it was built without hints=True), so it cannot take "
         "--hints; use a guided model"),
    ]
    results = _in_parallel(*[lambda args=args: _colorize("--output", out, *args) for args, _ in commands])
    for (args, message), result in zip(commands, results):
        assert result.returncode == 2, (args, result.stdout + result.stderr)
        assert _error_line(result).startswith(f"kc-colorize: error: {message}"), (args, result.stderr)
        assert sum(line.startswith("kc-colorize") for line in result.stderr.splitlines()) == 1, result.stderr
        assert not out.exists(), args

    # The same check, in-process (photos.run raises the ValueError that kc-colorize prints with exit status 2).
    cases = [
        (oracle_path, dict(input=photo, hints=_write(tmp_path / "far.json", _doc(_point(99, 1, [10, 10])))),
         f"hints file {str(tmp_path / 'far.json')!r}: points[0].x: 99 is outside the photo (80 x 60 pixels"),
        (oracle_path, dict(input=photo, hints=tmp_path / "none.json"),
         f"hints file {str(tmp_path / 'none.json')!r} does not exist"),
        (oracle_path, dict(input=source, hints=good), f"hints file {str(good)!r} is for one photo"),
        (oracle_path, dict(input=source, reference=notes), f"reference: {str(notes)!r} is not an image"),
        (oracle_path, dict(input=photo, hints_dir=tmp_path / "nowhere"), "hints_dir"),
        (tiny_model_path, dict(input=source, reference=_solid(tmp_path / "r.png", (200, 30, 30))),
         f"model {str(tiny_model_path)!r} has no hint inputs (it was built without hints=True), so it cannot take "
         "--reference; use a guided model"),
    ]
    for model, fields, message in cases:
        config = photos.ColorizeConfig(model=str(model), output=str(out), **{k: str(v) for k, v in fields.items()})
        colorizer = tiny_colorizer if model == tiny_model_path else None
        error = _usage_error(lambda config=config, colorizer=colorizer: photos.run(config, progress=False,
                                                                                   colorizer=colorizer))
        assert error is not None and error.startswith(message), (fields, error)
        assert not out.exists(), fields

    # Sidecars with an unguided model: refused unless --nosidecars (sidecars=False); never taken as images.
    config = photos.ColorizeConfig(model=str(tiny_model_path), input=str(with_sidecar), output=str(out))
    error = _usage_error(lambda: photos.run(config, progress=False, colorizer=tiny_colorizer))
    assert "cannot take the hint sidecars of 1 photo (e.g. 'a.png.hints.json'; pass --nosidecars" in error, error
    assert not out.exists()
    summary = photos.run(photos.ColorizeConfig(model=str(tiny_model_path), input=str(with_sidecar),
                                               output=str(plain_out), sidecars=False), progress=False,
                         colorizer=tiny_colorizer)
    assert "colorized 1, skipped 0 already done, failed 0, ignored 0" in summary.text(), summary.text()
    assert sorted(p.name for p in plain_out.iterdir()) == ["a.png", photos.REPORT_NAME]


def test_help_says_when_outputs_are_redone():
    result = _colorize("--help")
    assert result.returncode == 0
    for text in ("--hints", "--hints_dir", "--reference", "--[no]sidecars", "<photo>.hints.json",
                 "older than its hint file"):
        assert text in result.stdout, text


# ----------------------------------------------------------------------------
# kc-colorize-video
# ----------------------------------------------------------------------------


def _gray_film(path, frames=12, size=(128, 96), level=150):
    av = pytest.importorskip("av", reason="kc-colorize-video needs the [video] extra")
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p"
        stream.options = {"crf": "0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


def _frames(path):
    import av  # noqa: PLC0415

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_film_hints_per_frame_range_and_one_reference(oracle, tmp_path):
    from keras_colorize.inference import film  # noqa: PLC0415

    clip = _gray_film(tmp_path / "gray.mp4")
    _solid(tmp_path / "orange.png", (230, 120, 40))
    blue = _solid(tmp_path / "blue.png", (40, 90, 200))
    hints = _write(tmp_path / "film.hints.json", [
        {"frames": [0, 3], "version": 1, "units": "fraction", "points": [_point(0.25, 0.5, [-40, 30], 9)]},
        {"frames": [8, 20], "version": 1, "reference": "orange.png"}])
    summary = film.run(film.FilmConfig(input=str(clip), output=str(tmp_path / "out.mp4"), hints=str(hints),
                                       reference=str(blue), crf=0), progress=False, colorizer=oracle)
    assert summary.ok and summary.frames == 12
    frames = [_ab(f) for f in _frames(tmp_path / "out.mp4")]
    blue_ab = _ab(Image.open(blue))[0, 0]
    orange_ab = _ab(Image.open(tmp_path / "orange.png"))[0, 0]
    for i, ab in enumerate(frames):
        if i <= 3:  # the range's point (no reference of its own: the film's) ...
            assert np.abs(ab[48, 32] - (np.array([-40, 30]) + blue_ab)).max() < 5, (i, ab[48, 32])
            assert np.abs(ab[48, 100] - blue_ab).max() < 5, i
        elif i <= 7:  # ... the film's reference between ranges ...
            assert np.abs(ab - blue_ab).max() < 5, i
        else:  # ... and the range's own reference wins
            assert np.abs(ab - orange_ab).max() < 5, i


def test_video_cli_refuses_bad_hints_and_unguided_models_writing_nothing(oracle_path, tiny_model_path, tiny_colorizer,
                                                                         tmp_path):
    from keras_colorize.inference import film  # noqa: PLC0415

    clip = _gray_film(tmp_path / "gray.mp4", frames=4)
    out = tmp_path / "out.mp4"
    overlap = _write(tmp_path / "overlap.json", BAD_FILMS[-1][0])
    far = _write(tmp_path / "far.json", [{"frames": [0, 1], "version": 1, "points": [_point(300, 1, "#ff0000")]}])
    reference = _solid(tmp_path / "r.png", (200, 30, 30))
    video_flags = {"hints": "--hints", "reference": "--reference"}
    before = sorted(os.listdir(tmp_path))
    # Through the command: one line, exit status 2, nothing written (no output, no report, no partial file).
    commands = [
        (oracle_path, ["--hints", overlap], f"hints file {str(overlap)!r}: [1].frames: overlaps [0].frames"),
        (tiny_model_path, ["--reference", reference],
         f"model {str(tiny_model_path)!r} has no hint inputs (it was built without hints=True), so it cannot take "
         "--reference; use a guided model"),
    ]
    results = _in_parallel(*[lambda model=model, args=args: _cli(
        "keras_colorize.colorize_video", "--model", model, "--input", clip, "--output", out, *args)
        for model, args, _ in commands])
    for (_, args, message), result in zip(commands, results):
        assert result.returncode == 2, (args, result.stdout + result.stderr)
        line = _error_line(result)
        assert line.startswith("kc-colorize-video: error: ") and message in line, (args, line)
        assert sorted(os.listdir(tmp_path)) == before, args
    # In-process, the ValueError the command prints with exit status 2.
    cases = [
        (oracle_path, dict(hints=far), f"hints file {str(far)!r}: [frames 0-1].points[0].x: 300 is outside the "
                                       "photo (128 x 96 pixels"),
        (oracle_path, dict(reference=tmp_path / "nope.jpg"), f"reference {str(tmp_path / 'nope.jpg')!r} does not"),
        (oracle_path, dict(reference=far), f"reference: {str(far)!r} is not an image"),
        (tiny_model_path, dict(hints=_write(tmp_path / "ok.json", [{"frames": [0, 1], "version": 1}])),
         f"model {str(tiny_model_path)!r} has no hint inputs (it was built without hints=True), so it cannot take "
         "--hints; use a guided model"),
    ]
    before = sorted(os.listdir(tmp_path))
    for model, fields, message in cases:
        config = film.FilmConfig(model=str(model), input=str(clip), output=str(out),
                                 **{k: str(v) for k, v in fields.items()})
        colorizer = tiny_colorizer if model == tiny_model_path else None
        error = _usage_error(lambda config=config, colorizer=colorizer: film.run(
            config, progress=False, colorizer=colorizer, names=video_flags))
        assert error is not None and error.startswith(message), (fields, error)
        assert sorted(os.listdir(tmp_path)) == before, fields
