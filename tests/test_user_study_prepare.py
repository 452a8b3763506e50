"""`user_study prepare`: the folders `serve` takes, written from photos by real models, in a real process."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_colorize.user_study import catalog as catalog_lib
from keras_colorize.user_study import prepare as prepare_lib


def _photos(folder, count=3):
    rng = np.random.default_rng(0)
    (folder / "coast").mkdir(parents=True)
    for i in range(count):
        sub = folder / ("coast" if i % 2 else "")
        pixels = rng.integers(0, 255, (90 + 10 * i, 700, 3), dtype=np.uint8)  # wider than long_side: shrunk
        Image.fromarray(pixels).save(sub / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_colorize.user_study", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_prepare_writes_the_folders_serve_reads_and_resumes(tmp_path, tiny_model_path):
    photos = _photos(tmp_path / "photos")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "study"
    args = ["prepare", f"--photos={photos}", f"--model=tiny={tiny_model_path}",
            f"--model=tiny_again={tiny_model_path}", f"--output={out}", "--long_side=256", "--noprogress"]
    proc = _run(*args)
    assert proc.returncode == 1, proc.stderr  # the broken photo: partial failure
    assert "FAILED broken.jpg" in proc.stdout
    assert "wrote real 3, tiny 3, tiny_again 3" in proc.stdout
    assert "--real=" in proc.stdout and "--model tiny=" in proc.stdout

    # The study server's own scan accepts the folders: the same 3 scenes in every source.
    catalog = catalog_lib.build_catalog(out / "real", [("tiny", out / "tiny"), ("tiny_again", out / "tiny_again")])
    assert catalog.sources == ("real", "tiny", "tiny_again")
    assert catalog.scene_count == 3 and all(catalog.count(s) == 3 for s in catalog.sources)
    real = Image.open(out / "real" / "coast" / "img1.jpg")
    fake = Image.open(out / "tiny" / "coast" / "img1.jpg")
    assert real.size == fake.size == (256, 37)  # 700 x 100 shrunk to a 256 px long side, both alike
    assert real.format == fake.format == "JPEG"
    assert oct(os.stat(out / "tiny" / "img0.jpg").st_mode & 0o777) == oct(0o666 & ~_umask())

    # Rerun: everything kept, nothing rewritten.
    before = os.stat(out / "tiny" / "img0.jpg").st_mtime_ns
    proc = _run(*args)
    assert proc.returncode == 1 and "wrote real 0, tiny 0, tiny_again 0 (9 kept" in proc.stdout, proc.stdout
    assert os.stat(out / "tiny" / "img0.jpg").st_mtime_ns == before


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("change, message", [
    ({"models": (("real", "scenes"),)}, "not 'real'"),
    ({"models": (("a b", "scenes"),)}, "model name 'a b'"),
    ({"models": (("x", "missing.keras"),)}, "does not exist"),
    ({"models": (("x", "scenes"), ("x", "scenes"))}, "more than once"),
    ({"output": "PHOTOS/inside"}, "lies inside photos"),
    ({"max_images": -1}, "max_images must be"),
])
def test_prepare_refuses_bad_arguments_before_writing(tmp_path, change, message):
    photos = _photos(tmp_path / "photos", count=1)
    fields = {"photos": str(photos), "models": (("scenes", "scenes"),), "output": str(tmp_path / "out")}
    fields.update({k: (v.replace("PHOTOS", str(photos)) if isinstance(v, str) else v) for k, v in change.items()})
    with pytest.raises(ValueError, match=message):
        prepare_lib.prepare(prepare_lib.PrepareConfig(**fields), progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    proc = _run("prepare", f"--photos={tmp_path}/nowhere", "--model=scenes", f"--output={tmp_path}/out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"kc-user-study prepare: error: photos='{tmp_path}/nowhere' is not a folder"]
