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
