"""Apache Beam pipelines (``keras_colorize.beam``) on the DirectRunner with 2 worker processes
(``direct_running_mode=multi_processing``): the shards of ``kc-make-shards`` record for record, the outputs of
``kc-colorize`` byte for byte, and a rerun after a SIGKILL that finishes the rest without redoing anything; hint
sidecars used as ``kc-colorize`` uses them (in-process DirectRunner, a tiny guided model).

Real photos from ../shared/data (skipped with the reason when it is absent); the bundled model for the
archive outputs, since they are what users compare. About 2 minutes on a 2-core CPU shared with a training
run (each pipeline starts two worker processes that import TensorFlow and load the model).
"""

import dataclasses
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
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions
from PIL import Image

from keras_colorize.beam import archive
from keras_colorize.beam import options
from keras_colorize.beam import shards
from keras_colorize.data import places365
from keras_colorize.data import shards_lib
from keras_colorize.data import photo_repair
from keras_colorize.inference import photos

REPO = pathlib.Path(__file__).resolve().parents[1]


def _direct_two_workers():
    pipeline_options = options.pipeline_options(num_workers=2)
    direct = pipeline_options.view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (2, "multi_processing")
    return pipeline_options


# ---------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------


def _plant_bad_files(folder, good):
    """One file of each kind the shard writer skips or repairs, made from a real photo."""
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good.read_bytes()[:2000])
    (folder / "not_a_photo.jpg").write_text("catalogue notes, not a JPEG")
    with Image.open(good) as image:
        image.convert("L").save(folder / "gray.jpg")
        image.resize((16, 16)).save(folder / "tiny.jpg")
        image.convert("RGBA").save(folder / "alpha.png")  # repaired: composited on white
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")


@pytest.fixture(scope="module")
def shard_source(tmp_path_factory, scenes_dir):
    """3 classes x 8 real photos (../shared/data/scenes/daydusknight) and 7 planted bad or odd files."""
    source = tmp_path_factory.mktemp("beam_shards") / "photos"
    for name in ("day", "dusk", "night"):
        (source / name).mkdir(parents=True)
        for path in sorted((scenes_dir / "daydusknight" / name).glob("*.jpg"))[:8]:
            shutil.copy(path, source / name / path.name)
    _plant_bad_files(source / "dusk", sorted((source / "day").iterdir())[0])
    return source


def _records(path):
    return [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]


@pytest.mark.slow
def test_shards_equal_the_local_tool_record_for_record(shard_source, tmp_path):
    config = shards_lib.MakeShardsConfig(source=str(shard_source), output=str(tmp_path / "local"), split="train",
                                         layout="classes", shard_size=6, test_per_class=1, num_workers=1)
    local_stats, _ = shards_lib.make_shards(config, progress=False)
    beam_config = shards.BeamShardsConfig(dataclasses.replace(config, output=str(tmp_path / "beam")))
    beam_stats, summary = shards.run(beam_config, _direct_two_workers())

    local_files = sorted(p.name for p in (tmp_path / "local").glob("train-*.tfrecord"))
    assert local_files == sorted(p.name for p in (tmp_path / "beam").glob("train-*.tfrecord"))
    assert len(local_files) >= 4, local_files  # several shards, so both workers wrote some
    for name in local_files:
        local, beam = _records(tmp_path / "local" / name), _records(tmp_path / "beam" / name)
        assert len(local) == len(beam) and local == beam, name
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "beam" / name).read_bytes(), name
        assert ((tmp_path / "local" / "_progress" / f"{name}.json").read_text()
                == (tmp_path / "beam" / "_progress" / f"{name}.json").read_text())
    # Bad files counted, never fatal, by the same reasons.
    assert beam_stats.skipped == local_stats.skipped == {
        "empty_file": 1, "truncated": 1, "undecodable": 1, "grayscale": 1, "too_small": 1, "missing_file": 1}
    assert beam_stats.written == local_stats.written and beam_stats.repaired == local_stats.repaired == {"alpha": 1}
    assert sorted(beam_stats.skipped_files) == sorted(local_stats.skipped_files)
    assert "missing_file" in summary and "written: " in summary
    assert (tmp_path / "beam" / "classes.txt").read_text() == (tmp_path / "local" / "classes.txt").read_text()
    local_summary = json.loads((tmp_path / "local" / "summary-train.json").read_text())
    beam_summary = json.loads((tmp_path / "beam" / "summary-train.json").read_text())
    for key in ("split", "class_names", "layout", "source", "written", "skipped", "repaired"):
        assert beam_summary[key] == local_summary[key], key

    # A rerun with everything finished writes nothing (no pipeline starts).
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "beam").glob("train-*.tfrecord")}
    again, _ = shards.run(beam_config, _direct_two_workers())
    assert again.written == beam_stats.written
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "beam").glob("train-*.tfrecord")} == stamps


def test_load_url_skips_for_the_same_reasons_as_load_file(shard_source):
    """The loader that reads through Beam's file systems (gs://, ...) decides like the local one."""
    paths = sorted((shard_source / "dusk").iterdir()) + [shard_source / "dusk" / "never_existed.jpg"]
    for path in paths:
        record = places365.Record(str(path), 0, "dusk", path.name)
        outcomes = []
        for loader in (photo_repair.load_file, shards.load_url):
            try:
                image, repairs = loader(record, 256)
                outcomes.append((image.size, repairs, image.tobytes()[:4096]))
            except photo_repair.SkipImage as skip:
                outcomes.append(skip.args[0])
        assert outcomes[0] == outcomes[1], (path.name, outcomes)


# ---------------------------------------------------------------------------
# Archive colorization
# ---------------------------------------------------------------------------

BATCH = 1  # bytes equal kc-colorize's when batches match (test_batching_moves_pixels_by_one_level_at_most)
MAX_MEGAPIXELS = 0.7  # the 1100 x 739 scan is over it


@pytest.fixture(scope="module")
def scans(tmp_path_factory, bw_dir):
    """The 4 smallest real B&W scans, twice each in a folder tree, and bad, hidden and non-image files."""
    source = tmp_path_factory.mktemp("beam_archive") / "scans"
    (source / "box1" / "folder").mkdir(parents=True)
    smallest = sorted((p for p in bw_dir.iterdir() if p.suffix in (".jpg", ".png")), key=lambda p: p.stat().st_size)
    for copy, folder in ((0, source), (1, source / "box1" / "folder")):
        for path in smallest[:4]:
            shutil.copy(path, folder / f"{copy}_{path.name}")
    (source / "empty.jpg").write_bytes(b"")
    (source / "box1" / "truncated.jpg").write_bytes(smallest[0].read_bytes()[:3000])
    (source / "notes.txt").write_text("catalogue notes")
    shutil.copy(smallest[0], source / ".hidden.jpg")
    return source


def _outputs(folder):
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
            if p.is_file() and p.suffix in (".jpg", ".png") and not p.name.startswith(".")}


def _oversize(path):
    with Image.open(path) as image:
        return image.width * image.height > MAX_MEGAPIXELS * 1e6


@pytest.mark.slow
def test_colorized_archive_equals_kc_colorize_and_resumes_after_a_kill(scans, tmp_path):
    reference = photos.run(photos.ColorizeConfig(model="scenes", input=str(scans), output=str(tmp_path / "cli"),
                                                 batch_size=BATCH), progress=False)
    expected = sorted(name for name in reference.done if not _oversize(scans / name))
    assert len(expected) == 6 and len(reference.failed) == 2

    # 1. Killed (SIGKILL to the launcher and its worker processes) once the first outputs appear.
    out = tmp_path / "beam"
    command = [sys.executable, "-m", "keras_colorize.beam.colorize", f"--input={scans}", f"--output={out}",
               f"--batch_size={BATCH}", f"--max_megapixels={MAX_MEGAPIXELS}", "--num_workers=2"]
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not _outputs(out) and process.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = {name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in _outputs(out).items()}
    assert 1 <= len(finished) < len(expected), f"kill came too early or too late ({len(finished)} done)"
    for path in _outputs(out).values():  # only complete images under final names
        with Image.open(path) as image:
            image.load()

    # 2. The rerun does the rest and leaves the finished outputs alone.
    config = archive.ArchiveConfig(model="scenes", input=str(scans), output=str(out), batch_size=BATCH,
                                   max_megapixels=MAX_MEGAPIXELS)
    summary = archive.run(config, _direct_two_workers())
    assert summary.skipped == sorted(finished)
    assert summary.done == sorted(set(expected) - set(finished))
    for name, stamp in finished.items():
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{name} was redone"
    assert not [p for p in out.rglob("*") if ".partial" in p.name]
    assert summary.ignored == ["notes.txt"]

    # 3. Same outputs as kc-colorize, byte for byte; oversize and unreadable scans in the failures.
    assert sorted(_outputs(out)) == expected
    for name in expected:
        assert (out / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    reasons = dict(summary.failed)
    assert {name: reasons[name] for name, _ in reference.failed} == dict(reference.failed)
    oversize = sorted(set(reasons) - set(dict(reference.failed)))
    assert len(oversize) == 2 and all("oversize" in reasons[name] and "max_megapixels=0.7" in reasons[name]
                                      for name in oversize)
    failures = [json.loads(line) for line in (out / archive.FAILURES_NAME).read_text().splitlines()]
    assert sorted((f["file"], f["reason"]) for f in failures) == sorted(summary.failed)
    report = json.loads((out / photos.REPORT_NAME).read_text())
    assert report["colorized"] == summary.done and report["skipped_already_done"] == summary.skipped
    assert report["ignored_non_images"] == ["notes.txt"]


def test_batching_moves_pixels_by_one_level_at_most(bw_dir):
    """The handler's batches, against kc-colorize's colorizer on each photo alone.

    Alone (batch 1, no filling) the result is the same array; in a batch of 2, in either place, next to any
    other photo, every value is within one level, and only a few in a million differ (the float bits of a
    convolution depend on the batch size and the place in it; filling short batches removes the first).
    """
    from keras_colorize.beam import model_handler
    from keras_colorize.inference import images
    from keras_colorize.inference.api import Colorizer

    smallest = sorted((p for p in bw_dir.iterdir() if p.suffix in (".jpg", ".png")), key=lambda p: p.stat().st_size)
    items = {}
    for path in smallest[:4]:
        picture = images.read_image(path)
        items[path.name] = (photos.Job(source=str(path), destination="unused", relative=path.name), picture,
                            [picture], "JPEG")
    alone = Colorizer.from_path("scenes", batch_size=1)
    handler = model_handler.ColorizerModelHandler("scenes", batch_size=2)
    assert handler.get_num_bytes(list(items.values())) == sum(i[1].pixels.nbytes for i in items.values())
    in_batches = handler.load_model()
    one_at_a_time = model_handler.ColorizerModelHandler("scenes", batch_size=1)
    differing = []
    for name, item in items.items():
        reference = alone.colorize_pictures([item[1]])[0][0]
        (result,) = one_at_a_time.run_inference([item], alone)
        np.testing.assert_array_equal(result.inference[0][0], reference)
        for other in items:
            for batch in ([name, other], [other, name]) if other != name else ([name],):
                results = {r.example[0].relative: r.inference[0][0]
                           for r in handler.run_inference([items[n] for n in batch], in_batches)}
                difference = np.abs(results[name].astype(int) - reference.astype(int))
                assert difference.max() <= 1, (name, batch)
                differing.append((difference > 0).mean())
    assert max(differing) < 1e-5, max(differing)


def test_refused_before_the_pipeline_starts(scans, tmp_path):
    with pytest.raises(ValueError, match="not recognised"):
        options.pipeline_options(["--no_such_beam_option=1"])
    with pytest.raises(ValueError, match="invalid choice"):  # argparse would exit with its usage text
        options.pipeline_options(["--flink_version=0.1"])
    with pytest.raises(ValueError, match="runner must be one of"):
        options.pipeline_options(runner="LaptopRunner")
    cases = [
        (dict(input=str(tmp_path / "missing")), "does not exist"),
        (dict(input=str(scans / "*.tif")), "matches no files"),
        (dict(input=str(scans), output=str(scans / "colorized")), "inside the input folder"),
        (dict(input=str(scans), input_list=str(tmp_path / "list.txt")), "give one of input"),
        (dict(input=str(scans), max_megapixels=0), "max_megapixels"),
        (dict(input=str(scans), model=str(tmp_path / "nope.keras")), "does not exist"),
    ]
    for overrides, message in cases:
        config = archive.ArchiveConfig(**{"model": "scenes", "output": str(tmp_path / "out"), **overrides})
        with pytest.raises(ValueError, match=message):
            archive.run(config, _direct_two_workers())
    assert not (tmp_path / "out").exists()
    assert not (scans / "colorized").exists()


@pytest.fixture(scope="module")
def guided_model_path(tmp_path_factory):
    """A seeded, untrained tiny guided colorizer (64 px; hints and reference inputs) saved as ``.keras``."""
    import keras

    from keras_colorize.models import build_colorizer, get_preset

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("guided") / "guided.keras"
    build_colorizer(get_preset("tiny", hints=True)).save(path)
    return path


@pytest.mark.slow
def test_hint_sidecars_are_used_as_kc_colorize_uses_them(guided_model_path, tiny_model_path, bw_dir, tmp_path):
    """Sidecars (good, bad, absent) give kc-colorize's bytes, failures and hint list; a newer sidecar redoes.

    The DirectRunner in this process (one worker) keeps this check short; the two-process runs are above.
    """
    source = tmp_path / "scans"
    source.mkdir()
    smallest = sorted((p for p in bw_dir.iterdir() if p.suffix == ".jpg"), key=lambda p: p.stat().st_size)[:3]
    for path in smallest:
        shutil.copy(path, source / path.name)
    hinted, bad, plain = (p.name for p in smallest)
    (source / f"{hinted}.hints.json").write_text(json.dumps({"version": 1, "points": [
        {"x": 10, "y": 12, "color": "#d2691e", "size": 5}, {"x": 0.5, "y": 0.5, "color": [20, -30]}]}))
    (source / f"{bad}.hints.json").write_text(json.dumps({"version": 1, "points": [
        {"x": 100000, "y": 5, "color": "#00ff00"}]}))  # outside the photo: this photo fails, the others go on
    reference = photos.run(photos.ColorizeConfig(model=str(guided_model_path), input=str(source),
                                                 output=str(tmp_path / "cli"), batch_size=1), progress=False)
    assert reference.done == sorted([hinted, plain]) and [f for f, _ in reference.failed] == [bad]

    config = archive.ArchiveConfig(model=str(guided_model_path), input=str(source), output=str(tmp_path / "beam"),
                                   batch_size=1)
    in_process = options.pipeline_options(num_workers=1)
    summary = archive.run(config, in_process)
    assert summary.done == reference.done and summary.failed == reference.failed
    assert summary.hinted == reference.hinted == [(hinted, str(source / f"{hinted}.hints.json"))]
    assert summary.ignored == []  # sidecars are neither photos nor ignored files
    for name in reference.done:
        assert (tmp_path / "beam" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert json.loads((tmp_path / "beam" / photos.REPORT_NAME).read_text())["hints"] == [
        {"file": hinted, "hints": str(source / f"{hinted}.hints.json")}]

    # A sidecar newer than its output redoes that photo only; the rerun reads a list file (relative paths
    # under --input_root, a comment, a blank line, a sidecar listed too) and finds the same sidecars.
    stamps = {n: (tmp_path / "beam" / n).stat().st_mtime_ns for n in reference.done}
    later = time.time() + 5
    os.utime(source / f"{hinted}.hints.json", (later, later))
    listed = tmp_path / "photos.txt"
    listed.write_text(f"# the box\n{hinted}\n\n{bad}\n{plain}\n{hinted}.hints.json\n")
    again = archive.run(dataclasses.replace(config, input="", input_list=str(listed), input_root=str(source)),
                        in_process)
    assert again.done == [hinted] and again.skipped == [plain] and again.failed == reference.failed
    assert again.hinted == reference.hinted and again.ignored == []
    assert (tmp_path / "beam" / plain).stat().st_mtime_ns == stamps[plain]

    # A model without hint inputs: a photo with a sidecar fails with kc-colorize's reason, --reference is refused.
    from keras_colorize.beam import model_handler
    from keras_colorize.inference import images

    handler = model_handler.ColorizerModelHandler(str(tiny_model_path), batch_size=1)
    picture = images.read_image(source / hinted)
    job = photos.Job(source=str(source / hinted), destination=str(tmp_path / "unused.jpg"), relative=hinted,
                     hints=str(source / f"{hinted}.hints.json"))
    (result,) = handler.run_inference([(job, picture, [picture], "JPEG")], handler.load_model())
    assert isinstance(result.inference, model_handler.GuidanceError)
    assert "has no hint inputs" in str(result.inference)
    with pytest.raises(ValueError, match="has no hint inputs"):
        archive.run(dataclasses.replace(config, model=str(tiny_model_path), output=str(tmp_path / "refused"),
                                        reference=str(source / plain)), in_process)
    assert not (tmp_path / "refused" / plain).exists()
