"""The shard tool over real photos plus planted bad files; atomic, resumable writing; the CLI."""

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize.data import features
from keras_colorize.data import pipeline
from keras_colorize.data import places365
from keras_colorize.data import shards_lib
from keras_colorize.data import shard_writer
from keras_colorize.data import photo_repair

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_PHOTOS = 40


def _png16(path, array):
    """16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# name -> (what the tool must do, reason/repair)
BAD_FILES = {
    "empty.jpg": ("skip", "empty_file"),
    "garbage.jpg": ("skip", "undecodable"),
    "text.png": ("skip", "undecodable"),
    "truncated.jpg": ("skip", "truncated"),
    "gray.jpg": ("skip", "grayscale"),
    "gray16.png": ("skip", "grayscale"),
    "gray_as_rgb.jpg": ("skip", "near_grayscale"),
    "tiny.jpg": ("skip", "too_small"),
    "cmyk.jpg": ("repair", "cmyk"),
    "rgb16.png": ("repair", "16bit"),
    "palette.png": ("repair", "palette"),
    "rgba.png": ("repair", "alpha"),
    "rotated.jpg": ("repair", "exif_rotated"),
}


def _plant_bad_files(folder, photo_path):
    os.makedirs(folder, exist_ok=True)
    photo = Image.open(photo_path).convert("RGB")
    array = np.asarray(photo)
    open(os.path.join(folder, "empty.jpg"), "wb").close()
    with open(os.path.join(folder, "garbage.jpg"), "wb") as f:
        f.write(np.random.default_rng(0).bytes(5000))
    with open(os.path.join(folder, "text.png"), "w") as f:
        f.write("not an image\n")
    data = open(photo_path, "rb").read()
    with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    photo.convert("L").save(os.path.join(folder, "gray.jpg"))
    Image.fromarray((np.asarray(photo.convert("L")).astype(np.uint16) * 257)).save(os.path.join(folder, "gray16.png"))
    photo.convert("L").convert("RGB").save(os.path.join(folder, "gray_as_rgb.jpg"), quality=90)
    photo.resize((12, 12)).save(os.path.join(folder, "tiny.jpg"))
    photo.convert("CMYK").save(os.path.join(folder, "cmyk.jpg"), quality=95)
    _png16(os.path.join(folder, "rgb16.png"), array[:300, :200].astype(np.uint16) * 257)
    photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(os.path.join(folder, "palette.png"))
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(os.path.join(folder, "rgba.png"))
    # A 400x300 (landscape) file whose EXIF says "rotate 90 degrees": upright it is portrait.
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.crop((0, 0, 400, 300)).save(os.path.join(folder, "rotated.jpg"), exif=exif.tobytes())


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory, landscapes_dir):
    """40 real landscape photos (in two subfolders, to exercise recursion) plus the planted bad files."""
    root = tmp_path_factory.mktemp("messy")
    photos = sorted(p for p in os.listdir(landscapes_dir) if p.lower().endswith(".jpg"))[:: 382 // NUM_PHOTOS][:NUM_PHOTOS]
    assert len(photos) == NUM_PHOTOS
    for i, name in enumerate(photos):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        shutil.copy(os.path.join(landscapes_dir, name), sub / name)
    _plant_bad_files(root / "bad", os.path.join(landscapes_dir, photos[0]))
    return root


def _read_examples(pattern):
    out = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        for raw in tf.data.TFRecordDataset(path):
            ex = features.parse_example(raw)
            out.append({k: v.numpy() for k, v in ex.items()})
    return out


def test_real_photos_and_bad_files(messy_folder, tmp_path):
    config = shards_lib.MakeShardsConfig(
        source=str(messy_folder), output=str(tmp_path / "out"), split="val", shard_size=16,
        encode=photo_repair.EncodeConfig(short_side=128),
    )
    stats, summary = shards_lib.make_shards(config, progress=False)

    expected_skips = {}
    expected_repairs = {}
    for _, (action, reason) in BAD_FILES.items():
        target = expected_skips if action == "skip" else expected_repairs
        target[reason] = target.get(reason, 0) + 1
    assert stats.skipped == expected_skips
    assert stats.repaired == expected_repairs
    num_written = NUM_PHOTOS + len(expected_repairs)
    assert stats.written == {"": num_written}
    skipped_by_file = {os.path.basename(src): reason for src, reason in stats.skipped_files}
    assert skipped_by_file == {n: r for n, (a, r) in BAD_FILES.items() if a == "skip"}
    for reason, n in expected_skips.items():
        assert f"{reason}" in summary and f"{n}" in summary

    on_disk = json.load(open(tmp_path / "out" / "summary-val.json"))
    assert on_disk["skipped"] == expected_skips and on_disk["layout"] == "folder"

    examples = _read_examples(shard_writer.file_pattern(str(tmp_path / "out"), "val"))
    assert len(examples) == num_written
    sources = {e[features.SOURCE].decode() for e in examples}
    assert {s for s in sources if s.startswith("bad/")} == {f"bad/{n}" for n, (a, _) in BAD_FILES.items() if a == "repair"}
    for e in examples:
        image = tf.io.decode_jpeg(e[features.IMAGE]).numpy()
        assert image.shape == (e[features.HEIGHT], e[features.WIDTH], 3)
        assert min(image.shape[:2]) == 128  # re-encoded at the short side
        assert e[features.LABEL] == -1 and e[features.CLASS_NAME] == b""
        if e[features.SOURCE] == b"bad/rotated.jpg":
            assert image.shape[:2] == (171, 128)  # 400x300 rotated upright -> portrait
        if e[features.SOURCE] == b"bad/rgba.png":
            assert image.shape[:2] == (128, 128)

    # ... and the pipeline reads them back.
    batches = list(pipeline.make_dataset(config.output + "/val-*", "val", 64, 10))
    assert sum(b[0].shape[0] for b in batches) == num_written
    assert all(b[1]["class"].numpy().tolist() == [-1] * b[0].shape[0] for b in batches)


def test_cmyk_colours_survive(messy_folder, tmp_path):
    """CMYK is converted, not mangled: the stored image looks like the RGB original."""
    original = np.asarray(Image.open(messy_folder / "bad" / "cmyk.jpg").convert("RGB").resize((128, 128)), np.float32)
    record = places365.Record(str(messy_folder / "bad" / "cmyk.jpg"), -1, "", "cmyk.jpg")
    image, repairs = photo_repair.load_file(record)
    assert repairs == ["cmyk"] and image.mode == "RGB"
    assert np.abs(np.asarray(image.resize((128, 128)), np.float32) - original).mean() < 4


def _shard_mtimes(out):
    return {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out) if n.endswith(".tfrecord")}


def test_rerun_resumes_and_rebuilds_cleanly(messy_folder, tmp_path):
    out = str(tmp_path / "out")
    config = shards_lib.MakeShardsConfig(source=str(messy_folder / "a"), output=out, split="train", shard_size=6,
                                         encode=photo_repair.EncodeConfig(short_side=64))
    first, _ = shards_lib.make_shards(config, progress=False)
    before = _shard_mtimes(out)
    assert len(before) == 4  # 20 photos / 6 per shard

    # Same arguments: nothing is rewritten and the summary is the same.
    again, _ = shards_lib.make_shards(config, progress=False)
    assert _shard_mtimes(out) == before and again.written == first.written

    # A lost shard and a leftover temporary file from a killed run: only that shard is rewritten.
    lost = sorted(before)[1]
    os.remove(os.path.join(out, lost))
    open(os.path.join(out, f".{sorted(before)[2]}.tmp-99999"), "wb").write(b"half a shard")
    again, _ = shards_lib.make_shards(config, progress=False)
    after = _shard_mtimes(out)
    assert set(after) == set(before)
    assert [n for n in before if after[n] != before[n]] == [lost]
    assert not [n for n in os.listdir(out) if ".tmp-" in n]
    assert again.written == first.written

    # Different shard size: the old shards are replaced, the glob sees only the new set.
    config = shards_lib.MakeShardsConfig(**{**config.__dict__, "shard_size": 8})
    shards_lib.make_shards(config, progress=False)
    names = sorted(_shard_mtimes(out))
    assert names == [f"train-{i:05d}-of-00003.tfrecord" for i in range(3)]
    assert len(_read_examples(shard_writer.file_pattern(out, "train"))) == 20


CRASHY_LOADER = '''
import os
from keras_colorize.data import photo_repair

calls = 0

def load(record, short_side):
    global calls
    calls += 1
    if os.environ.get("CRASH_AT") and calls == int(os.environ["CRASH_AT"]):
        os._exit(3)  # like SIGKILL: no cleanup, no finally
    return photo_repair.load_file(record, short_side)
'''

CRASH_RUN = '''
import sys
sys.path.insert(0, sys.argv[1])
import crashy
from keras_colorize.data import photo_repair, places365, shard_writer
_, records = places365.list_records(sys.argv[2], "train")
shard_writer.write_shards(records, sys.argv[3], "train", loader=crashy.load,
                          config=photo_repair.EncodeConfig(short_side=64), shard_size=5, progress=False)
'''


def test_killed_run_leaves_no_partial_shard(messy_folder, tmp_path):
    helper = tmp_path / "helper"
    helper.mkdir()
    (helper / "crashy.py").write_text(CRASHY_LOADER)
    out = tmp_path / "out"
    source = str(messy_folder / "b")  # 20 photos -> 4 shards of 5
    env = {**os.environ, "CRASH_AT": "8", "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", CRASH_RUN, str(helper), source, str(out)], env=env, capture_output=True, cwd=REPO)
    assert proc.returncode == 3, proc.stderr.decode()[-2000:]
    finished = _shard_mtimes(out)
    assert list(finished) == ["train-00000-of-00004.tfrecord"]  # the shard in progress never got its final name
    assert any(".partial" in n for n in os.listdir(out))
    assert len(_read_examples(str(out / "train-*"))) == 5

    # Rerun with the same arguments: the finished shard is kept, the rest written, the debris removed.
    sys.path.insert(0, str(helper))
    try:
        import crashy

        _, records = places365.list_records(source, "train")
        stats = shard_writer.write_shards(records, str(out), "train", loader=crashy.load,
                                        config=photo_repair.EncodeConfig(short_side=64), shard_size=5, progress=False)
    finally:
        sys.path.remove(str(helper))
    assert _shard_mtimes(out)["train-00000-of-00004.tfrecord"] == finished["train-00000-of-00004.tfrecord"]
    assert stats.num_written == 20 and len(_read_examples(str(out / "train-*"))) == 20
    assert not [n for n in os.listdir(out) if ".partial" in n]


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "keras_colorize.data.make_shards", *args], env=env, capture_output=True, text=True, cwd=REPO)


@pytest.mark.slow  # three TensorFlow start-ups (the CLI and two spawned workers)
def test_cli_parallel_workers(messy_folder, tmp_path):
    out = tmp_path / "out"
    proc = _cli(f"--source={messy_folder}", f"--output={out}", "--split=test", "--shard_size=10", "--num_workers=2", "--short_side=96")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"written: {NUM_PHOTOS + 5} images, skipped: 8" in proc.stdout
    for reason in ("empty_file", "undecodable", "truncated", "grayscale", "near_grayscale", "too_small"):
        assert reason in proc.stdout
    assert sorted(os.listdir(out / "_progress")) == [f"test-{i:05d}-of-00006.tfrecord.json" for i in range(6)]
    assert len(_read_examples(str(out / "test-*-of-*.tfrecord"))) == NUM_PHOTOS + 5


def test_cli_errors_before_work(tmp_path):
    proc = _cli(f"--output={tmp_path / 'out'}")
    assert proc.returncode != 0 and "source is required" in proc.stderr
    proc = _cli(f"--source={tmp_path / 'nowhere'}", f"--output={tmp_path / 'out'}")
    assert proc.returncode != 0 and "nowhere" in proc.stderr and "not an existing folder" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_arguments_raise_value_error(tmp_path):
    (tmp_path / "src").mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "src" / "red.jpg")
    base = dict(source=str(tmp_path / "src"), output=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="short_side"):
        shards_lib.make_shards(shards_lib.MakeShardsConfig(**base, encode=photo_repair.EncodeConfig(short_side=4)), progress=False)
    with pytest.raises(ValueError, match="shard_size"):
        shards_lib.make_shards(shards_lib.MakeShardsConfig(**base, shard_size=0), progress=False)
    with pytest.raises(ValueError, match="split"):
        shards_lib.make_shards(shards_lib.MakeShardsConfig(**base, split="training"), progress=False)
    with pytest.raises(ValueError, match="must not be the source"):
        shards_lib.make_shards(shards_lib.MakeShardsConfig(source=base["source"], output=base["source"]), progress=False)


# ----------------------------------------------------------------------------
# Reliability: symlinks in the source, the classes layout on linked folders,
# workers that die with their parent.
# ----------------------------------------------------------------------------


def _colour_jpeg(path, seed, size=(64, 48)):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (4, 5, 3)).astype(np.uint8)
    Image.fromarray(small).resize(size, Image.BICUBIC).save(path, quality=95)


def test_symlink_loop_and_dangling_link_are_skipped_not_fatal(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(3):
        _colour_jpeg(src / ("sub" if i else ".") / f"photo{i}.jpg", seed=i)
    os.symlink(".", src / "loop")  # a folder loop: src/loop/loop/... is src again
    os.symlink("..", src / "sub" / "up")
    os.symlink("self.jpg", src / "self.jpg")  # a file link loop: ELOOP ("Too many levels of symbolic links")
    os.symlink("gone.jpg", src / "dangling.jpg")
    config = shards_lib.MakeShardsConfig(source=str(src), output=str(tmp_path / "out"), split="val",
                                         encode=photo_repair.EncodeConfig(short_side=32))
    stats, summary = shards_lib.make_shards(config, progress=False)
    assert stats.written == {"": 3}
    assert stats.skipped == {"missing_file": 1, "unreadable": 1}
    assert sorted(stats.skipped_files) == [["dangling.jpg", "missing_file"], ["self.jpg", "unreadable"]]
    assert "unreadable" in summary and "missing_file" in summary
    sources = sorted(e[features.SOURCE].decode() for e in _read_examples(str(tmp_path / "out" / "val-*")))
    assert sources == ["photo0.jpg", "sub/photo1.jpg", "sub/photo2.jpg"]  # each real file once, links not repeated


def test_classes_layout_on_symlinked_class_folders(tmp_path):
    # Real class folders elsewhere; the source tree links them in under the dataset's own train/ and test/.
    store = tmp_path / "store"
    counts = {"forest": 4, "sea": 3, "forest_test": 2, "sea_test": 2}
    for folder, n in counts.items():
        (store / folder).mkdir(parents=True)
        for i in range(n):
            _colour_jpeg(store / folder / f"{folder}{i}.jpg", seed=hash(folder) % 1000 + i)
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "test").mkdir()
    for name in ("forest", "sea"):
        os.symlink(store / name, src / "train" / name)
        os.symlink(store / f"{name}_test", src / "test" / name)
    out = tmp_path / "out"
    base = dict(source=str(src), output=str(out), layout="classes", test_per_class=1,
                encode=photo_repair.EncodeConfig(short_side=32))
    train, _ = shards_lib.make_shards(shards_lib.MakeShardsConfig(**base, split="train"), progress=False)
    assert train.written == {"forest": 3, "sea": 2}  # one per class held out as test
    classes_txt = out / shards_lib.CLASS_LIST
    assert places365.read_class_list(str(classes_txt)) == ["forest", "sea"]
    # The written list is accepted back; the dataset's test/ folder is the validation split.
    val, _ = shards_lib.make_shards(shards_lib.MakeShardsConfig(**base, split="val", classes=str(classes_txt)),
                                    progress=False)
    assert val.written == {"forest": 2, "sea": 2}
    labels = {(e[features.CLASS_NAME].decode(), int(e[features.LABEL]), e[features.SOURCE].decode().split("/")[0])
              for e in _read_examples(shard_writer.file_pattern(str(out), "val"))}
    assert labels == {("forest", 0, "test"), ("sea", 1, "test")}
    # A different class order would mislabel the shards already written: refused.
    (tmp_path / "reversed.txt").write_text("sea\nforest\n")
    with pytest.raises(ValueError, match="differs from this run"):
        shards_lib.make_shards(shards_lib.MakeShardsConfig(**base, split="test", classes=str(tmp_path / "reversed.txt")),
                               progress=False)


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.slow  # TensorFlow start-ups of the CLI, its workers and the rerun
def test_killed_parent_takes_its_workers_down(messy_folder, tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    # One photo per shard (20 shards): the kill lands mid-run however fast or loaded the machine is.
    args = [f"--source={messy_folder / 'a'}", f"--output={out}", "--split=train", "--shard_size=1",
            "--num_workers=2", "--short_side=64"]
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    parent = subprocess.Popen([sys.executable, "-m", "keras_colorize.data.make_shards", *args], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    workers = []
    while time.time() < deadline and parent.poll() is None:
        # Workers exist for the whole run; wait until one has started a shard (partial or finished).
        if out.is_dir() and any(".partial" in n or n.endswith(".tfrecord") for n in os.listdir(out)):
            workers = _children(parent.pid)
            if workers:
                break
        time.sleep(0.01)
    assert workers, f"no worker started writing (make_shards exited with {parent.poll()})"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    # A worker still starting up (importing TensorFlow, which takes seconds on a loaded machine) has not
    # armed PR_SET_PDEATHSIG yet; it sees the new parent pid when its initializer runs and exits then.
    gone_by = time.time() + 90
    while time.time() < gone_by and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "worker processes outlived their killed parent"
    assert len(_shard_mtimes(out)) < 20  # killed mid-run: not every shard was there

    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    reference = tmp_path / "reference"
    shards_lib.make_shards(shards_lib.MakeShardsConfig(
        source=str(messy_folder / "a"), output=str(reference), split="train", shard_size=1,
        encode=photo_repair.EncodeConfig(short_side=64)), progress=False)
    names = sorted(_shard_mtimes(out))
    assert names == sorted(_shard_mtimes(reference)) == [f"train-{i:05d}-of-00020.tfrecord" for i in range(20)]
    for name in names:  # same examples in the same shards (not bytes: protobuf map order varies by process)
        ours, theirs = _read_examples(str(out / name)), _read_examples(str(reference / name))
        assert [sorted(e) for e in ours] == [sorted(e) for e in theirs], name
        assert all(np.array_equal(a[k], b[k]) for a, b in zip(ours, theirs) for k in a), name
    assert not [n for n in os.listdir(out) if ".partial" in n]
