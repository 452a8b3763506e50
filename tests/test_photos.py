"""``python -m keras_colorize.colorize`` on folders: bad files, safety, resuming after a kill."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from keras_colorize.inference import photos

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cli(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_colorize.colorize", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _small_bw(bw_dir, count):
    """The smallest real B&W photos (fast to process)."""
    paths = sorted((p for p in bw_dir.iterdir() if p.suffix in (".jpg", ".png")), key=lambda p: p.stat().st_size)
    return paths[:count]


def test_folder_with_bad_files(tiny_model_path, bw_dir, tmp_path):
    """Corrupt, empty and non-image files are reported and skipped; the rest is done; exit 1."""
    source = tmp_path / "scans"
    (source / "nested" / "deeper").mkdir(parents=True)
    good = _small_bw(bw_dir, 3)
    shutil.copy(good[0], source / good[0].name)
    shutil.copy(good[1], source / "nested" / good[1].name)
    shutil.copy(good[2], source / "nested" / "deeper" / good[2].name)
    (source / "empty.jpg").write_bytes(b"")
    (source / "nested" / "truncated.jpg").write_bytes(good[0].read_bytes()[:3000])
    (source / "not_really.png").write_text("this is text, not a PNG")
    (source / "notes.txt").write_text("catalogue notes")
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}

    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(tmp_path / "out"),
                  "--noprogress")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "colorized 3, skipped 0 already done, failed 3, ignored 1" in result.stdout
    for name, reason in (("empty.jpg", "empty"), ("nested/truncated.jpg", "truncated"),
                         ("not_really.png", "not a recognised image")):
        assert f"FAILED {name}" in result.stdout and reason in result.stdout
    for path in (good[0].name, f"nested/{good[1].name}", f"nested/deeper/{good[2].name}"):
        out = tmp_path / "out" / path
        with Image.open(out) as image, Image.open(source / path) as original:
            assert image.size == original.size and image.mode == "RGB"
    report = json.loads((tmp_path / "out" / "colorize_report.json").read_text())
    assert sorted(f["file"] for f in report["failed"]) == ["empty.jpg", "nested/truncated.jpg", "not_really.png"]
    assert report["ignored_non_images"] == ["notes.txt"]
    assert not list((tmp_path / "out").rglob("*.partial"))
    assert not (tmp_path / "out" / "empty.jpg").exists()
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before  # input untouched


def test_png_outputs_keep_lightness_exactly(tiny_model_path, bw_dir, tmp_path):
    """Through the CLI with lossless output: same size, L* within 1 unit everywhere."""
    source = tmp_path / "in"
    source.mkdir()
    for path in _small_bw(bw_dir, 4):
        shutil.copy(path, source / path.name)
    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(tmp_path / "out"),
                  "--output_format", "png", "--noprogress")
    assert result.returncode == 0, result.stderr[-2000:]
    for path in source.iterdir():
        with Image.open(path) as original, Image.open((tmp_path / "out" / path.name).with_suffix(".png")) as out:
            assert out.size == original.size
            l_in = skcolor.rgb2lab(np.asarray(original.convert("RGB")) / 255.0)[..., 0]
            l_out = skcolor.rgb2lab(np.asarray(out.convert("RGB")) / 255.0)[..., 0]
            assert np.abs(l_in - l_out).max() <= 1.0, path.name


def test_refuses_unsafe_outputs(tiny_model_path, bw_dir, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(_small_bw(bw_dir, 1)[0], source / "a.jpg")
    with pytest.raises(ValueError, match="inside the input folder"):
        photos.plan(source, source / "colorized")
    with pytest.raises(ValueError, match="inside the input folder"):
        photos.plan(source, source)
    with pytest.raises(ValueError, match="would overwrite the input"):
        photos.plan(source / "a.jpg", source)
    with pytest.raises(ValueError, match="does not exist"):
        photos.plan(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ValueError, match="output_format"):
        photos.ColorizeConfig(model=str(tiny_model_path), input=str(source), output=str(tmp_path / "o"),
                                    output_format="gif").validate()
    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(source / "out"))
    assert result.returncode == 2 and "inside the input folder" in result.stderr
    assert sorted(p.name for p in source.iterdir()) == ["a.jpg"]


@pytest.mark.slow
def test_kill_and_rerun_resumes(tiny_model_path, bw_dir, tmp_path):
    """SIGKILL mid-run leaves only complete outputs; the rerun skips them and finishes the rest."""
    source = tmp_path / "in"
    source.mkdir()
    photos = _small_bw(bw_dir, 6)
    for copy in range(4):
        for path in photos:
            shutil.copy(path, source / f"{copy}_{path.name}")
    total = len(list(source.iterdir()))
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-m", "keras_colorize.colorize", "--model", str(tiny_model_path),
                                "--input", str(source), "--output", str(out), "--batch_size", "1", "--noprogress"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len([p for p in out.glob("*") if not p.name.startswith(".")]) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*") if not p.name.startswith(".")}
    assert 3 <= len(finished) < total, f"kill came too late to test resuming ({len(finished)}/{total} done)"
    for name in finished:  # every output under its final name is a complete image
        with Image.open(out / name) as image:
            image.load()

    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(out), "--noprogress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"skipped {len(finished)} already done" in result.stdout
    assert f"colorized {total - len(finished)}," in result.stdout
    for name, mtime in finished.items():
        assert (out / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    assert sorted(p.name for p in out.glob("*.jpg")) + sorted(p.name for p in out.glob("*.png")) == sorted(
        p.name for p in source.glob("*.jpg")) + sorted(p.name for p in source.glob("*.png"))
    assert not list(out.rglob("*.partial"))


def _photo(path, size=(48, 40), seed=0, mode="L"):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, (size[1], size[0]) + (() if mode == "L" else (3,)), dtype=np.uint8)
    Image.fromarray(array, mode).save(path)
    return path


def _last_line(result):
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def test_two_inputs_one_output_is_refused(tiny_model_path, tmp_path):
    """pic.jpg and pic.png both become pic.png with --output_format=png: exit 2 naming both, nothing written."""
    source = tmp_path / "in"
    source.mkdir()
    _photo(source / "pic.jpg")
    _photo(source / "pic.png", seed=1)
    _photo(source / "other.jpg", seed=2)
    out = tmp_path / "out"
    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(out),
                  "--output_format", "png", "--noprogress")
    assert result.returncode == 2, result.stdout + result.stderr
    line = _last_line(result)
    assert line.startswith("kc-colorize: error: inputs would be written to the same output file")
    assert "'pic.jpg' and 'pic.png'" in line and "pic.png'" in line and "Traceback" not in result.stderr
    assert not out.exists() or not list(out.rglob("*.png"))
    # the same folder with the inputs' own formats has no collision
    assert len(photos.plan(source, out).jobs) == 3
    # names differing only in case collide on a case-insensitive output file system
    (source / "pic.png").unlink()
    _photo(source / "PIC.JPG")
    assert len(photos.plan(source, out, ignore_case=False).jobs) == 3
    with pytest.raises(ValueError, match="case-insensitive.*'PIC.JPG' and 'pic.jpg'"):
        photos.plan(source, out, ignore_case=True)


def test_unwritable_output_is_refused_before_any_image(tiny_model_path, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    _photo(source / "a.png")
    blocker = tmp_path / "a_file"
    blocker.write_text("a regular file, not a folder")
    out = blocker / "colorized"
    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(out), "--noprogress")
    assert result.returncode == 2, result.stdout + result.stderr
    assert _last_line(result) == f"kc-colorize: error: output {str(out)!r} is not writable (Not a directory)"
    assert "colorized 0" not in result.stdout and "Traceback" not in result.stderr


@pytest.fixture()
def read_only_folder(tmp_path):
    """A read-only tmpfs (root ignores chmod); skipped where mounting is not permitted."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_output_is_refused(tiny_model_path, tmp_path, read_only_folder):
    source = tmp_path / "in"
    source.mkdir()
    _photo(source / "a.png")
    config = photos.ColorizeConfig(model=str(tiny_model_path), input=str(source), output=str(read_only_folder))
    with pytest.raises(ValueError, match=f"output {str(read_only_folder)!r} is not writable \\(Read-only file system"):
        photos.run(config, progress=False, colorizer=object())  # refused before the colorizer is used


def _tiff_pages(path):
    with Image.open(path) as image:
        pages = []
        for index in range(image.n_frames):
            image.seek(index)
            pages.append(image.convert("RGB").copy())
        return pages


def test_multi_page_tiff_keeps_every_page_and_animated_webp_is_noted(tiny_model_path, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    rng = np.random.default_rng(0)
    pages = [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 64), dtype=np.uint8), "L") for i in range(3)]
    pages[0].save(source / "scan.tif", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    frames = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(source / "anim.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)

    out = tmp_path / "out"
    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(out), "--noprogress")
    assert result.returncode == 0, result.stderr[-2000:]
    written = _tiff_pages(out / "scan.tif")
    assert [p.size for p in written] == [p.size for p in pages]  # every page, each at its own size
    for original, colorized in zip(pages, written):  # each page colorized from its own L*
        l_in = skcolor.rgb2lab(np.asarray(original.convert("RGB")) / 255.0)[..., 0]
        l_out = skcolor.rgb2lab(np.asarray(colorized) / 255.0)[..., 0]
        assert np.abs(l_in - l_out).max() <= 1.0
    assert "NOTE anim.webp: animated WEBP: kept frame 1 of 3, dropped 2" in result.stdout
    assert "scan.tif" not in "".join(line for line in result.stdout.splitlines() if "NOTE" in line)

    out_png = tmp_path / "out_png"
    result = _cli("--model", str(tiny_model_path), "--input", str(source), "--output", str(out_png),
                  "--output_format", "png", "--noprogress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "NOTE scan.tif: multi-page TIFF: kept page 1 of 3, dropped 2" in result.stdout
    report = json.loads((out_png / "colorize_report.json").read_text())
    assert {n["file"] for n in report["notes"]} == {"scan.tif", "anim.webp"}
    with Image.open(out_png / "scan.png") as image:
        assert image.size == pages[0].size


# Output permissions under umask 022: tests/test_fileio.py::test_every_writer_leaves_0644_files_and_no_temporaries.


def test_exit_codes_and_one_line_errors(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    _photo(source / "a.png")
    cases = [
        (["--input", str(source)], "kc-colorize: error: --output is required"),
        (["--input", str(source), "--output", str(tmp_path / "o"), "--batch_size", "abc"],
         "kc-colorize: error: flag --batch_size=abc: invalid literal for int() with base 10: 'abc'"),
        (["--input", str(source), "--output", str(tmp_path / "o"), "--no_such_flag"],
         "kc-colorize: error: Unknown command line flag 'no_such_flag'"),
        (["--model", str(tmp_path / "nope.keras"), "--input", str(source), "--output", str(tmp_path / "o")],
         f"kc-colorize: error: model {str(tmp_path / 'nope.keras')!r} does not exist"),
        (["--model", "/x.keras", "--input", str(source), "--output", str(tmp_path / "o"), "stray"],
         "kc-colorize: error: unexpected arguments: ['stray']"),
    ]
    for args, expected in cases:
        result = _cli(*args, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip().splitlines() == [
            result.stderr.strip().splitlines()[-1]], (args, result.stderr)
        assert _last_line(result).startswith(expected), (args, result.stderr)
