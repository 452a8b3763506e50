"""Atomic writers: permissions follow the umask, suffix-keeping temporary names, probes; every package writer."""

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


def test_keep_suffix_may_be_a_double_suffix_and_partials_of_finds_one_files_temporaries(tmp_path):
    target = tmp_path / "enc.weights.h5"
    with fileio.atomic_path(target, keep_suffix=".weights.h5") as tmp:
        assert tmp.name.startswith(".enc.") and tmp.name.endswith(".partial.weights.h5") and fileio.is_partial(tmp)
        tmp.write_bytes(b"h5")
    assert [p.name for p in tmp_path.iterdir()] == ["enc.weights.h5"]
    with pytest.raises(ValueError, match=r"keep_suffix must be True or an ending of the file name 'enc.weights.h5'"
                                         r".*got '\.keras'"):
        with fileio.atomic_path(target, keep_suffix=".keras"):
            pass
    stale = [tmp_path / ".film.1f2e3d4c.partial.mp4", tmp_path / ".film.mp4.0a0b0c0d.partial"]
    others = [tmp_path / ".other.1f2e3d4c.partial.mp4", tmp_path / ".film.mp4.json.0a0b0c0d.partial"]
    for path in stale + others:
        path.write_bytes(b"stale")
    assert fileio.partials_of(tmp_path / "film.mp4") == sorted(stale)
    assert fileio.partials_of(tmp_path / "film.mp4.json") == [others[1]]
    assert fileio.partials_of(tmp_path / "absent" / "film.mp4") == []


def _gray_clip(path, frames=5, size=(64, 48)):
    import av
    import numpy as np

    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(frames):
            luma = np.full((size[1], size[0], 3), 40 + 30 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(luma, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


def test_every_writer_leaves_0644_files_and_no_temporaries(tmp_path, umask, tiny_model_path):
    """One pass over the package's writers on tiny inputs, under umask 022."""
    import json

    import keras
    import numpy as np
    from PIL import Image

    from keras_colorize.data import shards_lib

    from keras_colorize.data import photo_repair
    from keras_colorize.evaluation import evaluator
    from keras_colorize.inference import api, film, photos
    from keras_colorize.tools import release_model
    from keras_colorize.training import checkpoints, monitors

    umask(0o022)
    source = tmp_path / "in"
    source.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):  # 3 photos, batch 2: one full batch and a tail
        pixels = np.clip(rng.normal(128, 60, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(source / f"{name}.jpg", quality=95)
    out = tmp_path / "out"
    colorizer = api.Colorizer.from_path(tiny_model_path, batch_size=2)

    summary = photos.run(photos.ColorizeConfig(model=str(tiny_model_path), input=str(source),
                                               output=str(out / "photos"), batch_size=2),
                         progress=False, colorizer=colorizer)
    assert sorted(summary.done) == ["a.jpg", "b.jpg", "c.jpg"] and not summary.failed
    result = evaluator.run(evaluator.EvalConfig(models=(("tiny", str(tiny_model_path)),), data=str(source),
                                                output=str(out / "eval"), batch_size=2, grid_rows=2),
                           progress=False)
    assert result["num_images"] == 3
    clip = _gray_clip(tmp_path / "clip.mp4")
    assert film.run(film.FilmConfig(input=str(clip), output=str(out / "film" / "clip.mp4"), batch_size=2),
                    progress=False, colorizer=colorizer).frames == 5
    stats, _ = shards_lib.make_shards(shards_lib.MakeShardsConfig(
        source=str(source), output=str(out / "shards"), split="val", shard_size=2,
        encode=photo_repair.EncodeConfig(short_side=32)), progress=False)
    assert stats.num_written == 3
    saver = checkpoints.BestModelSaver(str(out / "run" / "best.keras"), monitors.StepCounter(7))
    saver.set_model(keras.saving.load_model(tiny_model_path, compile=False))
    saver.on_epoch_end(0, {"val_mae": 0.1})

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = {"photos/a.jpg", "photos/colorize_report.json", "eval/metrics.json", "eval/metrics.md",
                "eval/grid.png", "film/clip.mp4", "film/clip.mp4.json", "shards/val-00000-of-00002.tfrecord",
                "shards/_progress/val-00001-of-00002.tfrecord.json", "shards/summary-val.json",
                "run/best.keras", "run/best.json"}
    assert expected <= set(written), sorted(expected - set(written))
    assert not [name for name in written if pathlib.Path(name).name.startswith(".")]  # no temporary left
    modes = {name: oct(stat.S_IMODE((out / name).stat().st_mode)) for name in written}
    assert set(modes.values()) == {oct(0o644)}, modes
    assert json.loads((out / "run" / "best.json").read_text())["step"] == 7

    umask(0o027)  # the release tool used to chmod 0644 whatever the umask
    release_model.release(str(tiny_model_path), str(out / "release" / "private.keras"))
    assert os.listdir(out / "release") == ["private.keras"]
    assert stat.S_IMODE((out / "release" / "private.keras").stat().st_mode) == 0o640
