"""The contact-sheet tool: every photo beside its full-resolution colorization, written atomically."""

import numpy as np
import pytest
from PIL import Image

from keras_colorize.tools import contact_sheet


def test_contact_sheet_pairs_every_photo_at_full_resolution(tiny_model_path, tmp_path):
    src = tmp_path / "scans"
    src.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"a.jpg": (200, 130), "b.png": (90, 160)}
    for name, size in sizes.items():
        Image.fromarray(rng.integers(0, 255, (size[1], size[0]), np.uint8), "L").save(src / name)
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "sheet.png"
    n = contact_sheet.run(str(src), str(out), model=str(tiny_model_path), colorized_dir=str(tmp_path / "full"),
                          thumb=64, columns=2, progress=False)
    assert n == 2
    sheet = Image.open(out)
    assert sheet.mode == "RGB" and sheet.width > 2 * 64 and sheet.height > 64
    for name, size in sizes.items():
        assert Image.open(tmp_path / "full" / (name.rsplit(".", 1)[0] + ".png")).size == size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial files left


def test_contact_sheet_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="not an existing folder"):
        contact_sheet.run(str(tmp_path / "missing"), str(tmp_path / "s.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="must end in"):
        contact_sheet.run(str(tmp_path / "empty"), str(tmp_path / "s.gif"))
    with pytest.raises(ValueError, match="holds no images"):
        contact_sheet.run(str(tmp_path / "empty"), str(tmp_path / "s.jpg"))


def test_photos_with_a_hint_sidecar_get_a_third_thumbnail_colorized_with_those_hints(tiny_guided_model_path,
                                                                                      tiny_model_path, tmp_path):
    import json

    src, hints = tmp_path / "scans", tmp_path / "hints"
    src.mkdir()
    hints.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (80, 120), np.uint8), "L").save(src / name)
    (hints / "a.png.hints.json").write_text(json.dumps(
        {"version": 1, "units": "fraction", "points": [{"x": 0.5, "y": 0.5, "color": "#ff0000", "size": 9}]}))
    full = tmp_path / "full"
    n = contact_sheet.run(str(src), str(tmp_path / "sheet.png"), model=str(tiny_guided_model_path),
                          colorized_dir=str(full), thumb=64, columns=1, hints_dir=str(hints), progress=False)
    assert n == 2
    assert sorted(p.name for p in full.iterdir()) == ["a.hinted.png", "a.png", "b.png"]
    auto = np.asarray(Image.open(full / "a.png"), np.float32)
    hinted = np.asarray(Image.open(full / "a.hinted.png"), np.float32)
    assert np.abs(hinted - auto).mean() > 0.5  # the hint changed the colours (and the ring marks it)
    with Image.open(tmp_path / "sheet.png") as sheet:
        # Row 1: three thumbnails (96 px wide each) + two gaps; row 2: two thumbnails.
        assert sheet.width == 12 + 3 * 96 + 2 * 12 + 12
    with pytest.raises(ValueError, match="no hint inputs"):
        contact_sheet.run(str(src), str(tmp_path / "s2.png"), model=str(tiny_model_path), hints_dir=str(hints),
                          progress=False)
    assert not (tmp_path / "s2.png").exists()
