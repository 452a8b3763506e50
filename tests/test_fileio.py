"""Atomic writers: permissions follow the umask, suffix-keeping temporary names, probes."""

import os
import pathlib
import stat

import pytest

from keras_colorize import fileio


@pytest.fixture()
def umask():
    def set_umask(value):
        previous.append(os.umask(value))

    previous = []
    yield set_umask
    if previous:
        os.umask(previous[0])


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    text = fileio.atomic_write_text(tmp_path / "report.json", "{}")
    data = fileio.atomic_write_bytes(tmp_path / "sub" / "photo.png", b"\x89PNG")
    with fileio.atomic_path(tmp_path / "model.keras", keep_suffix=True) as tmp:
        tmp.write_bytes(b"zip")
    for path in (text, data, tmp_path / "model.keras"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_keep_suffix_and_partials(tmp_path):
    with fileio.atomic_path(tmp_path / "clip.mp4", keep_suffix=True) as tmp:
        assert tmp.suffix == ".mp4" and tmp.name.startswith(".clip.") and tmp.parent == tmp_path
        assert fileio.is_partial(tmp)
        tmp.write_bytes(b"x")
    with fileio.atomic_path(tmp_path / "grid.png") as tmp:
        assert tmp.name.endswith(".partial") and fileio.is_partial(tmp)
        tmp.write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "grid.png"]
    with pytest.raises(RuntimeError), fileio.atomic_path(tmp_path / "half.keras", keep_suffix=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "grid.png"]
    for name in (".a.jpg.1f2e3d4c.partial", ".model.1f2e3d4c.partial.keras"):
        (tmp_path / "nested").mkdir(exist_ok=True)
        (tmp_path / "nested" / name).write_bytes(b"stale")
    (tmp_path / "nested" / ".keep.partially").write_bytes(b"not ours")
    assert not fileio.is_partial("photo.partial.jpg") and not fileio.is_partial(".keep.partially")
    assert fileio.remove_partials(tmp_path) == 2
    assert [p.name for p in (tmp_path / "nested").iterdir()] == [".keep.partially"]


def test_check_writable_dir(tmp_path):
    assert fileio.check_writable_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert list((tmp_path / "new" / "deep").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"output '.*file/out' is not writable \(Not a directory\)"):
        fileio.check_writable_dir(tmp_path / "file" / "out")
    assert fileio.is_case_insensitive(tmp_path) is False  # Linux file systems keep case
    assert list(pathlib.Path(tmp_path / "new" / "deep").iterdir()) == []
