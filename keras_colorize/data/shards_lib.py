"""Images -> TFRecord shards: loading, cleaning, re-encoding, parallel atomic writing.

Library behind ``python -m keras_colorize.data.make_shards`` and the demo data
(:mod:`keras_colorize.data.demo`), so real and synthetic data share one writer
and one format (:mod:`keras_colorize.data.features`).

Guarantees:

* Each shard is written under a hidden temporary name
  (:func:`keras_colorize.fileio.atomic_path`, so no shard glob matches it)
  and renamed when complete, after its progress record (``_progress/<name>.json``: what went in, what was written
  and skipped). A killed run leaves no truncated shard under a final name; a
  rerun with the same arguments keeps the finished shards (their progress
  record matches) and rewrites the rest. Leftover temporary files and shards of
  the same split from a run with a different shard count are removed.
* Shards are written in parallel by ``num_workers`` processes (spawned, so
  TensorFlow state is never forked), which exit when the main process dies
  (even by SIGKILL), so a killed run leaves nothing running.
* Bad files never stop the run; each is counted by reason (:data:`SKIP_REASONS`)
  and each repair by kind (:data:`REPAIRS`) in the summary.

Shard names: ``<split>-<i:05d>-of-<n:05d>.tfrecord``; glob ``<split>-*-of-*.tfrecord``.
"""

import concurrent.futures
import ctypes
import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing
import os
import pathlib
import re
import signal
import sys
import threading
import time
import warnings

import numpy as np
from PIL import Image, ImageOps

from keras_colorize import fileio
from keras_colorize.data import features
from keras_colorize.data import places365

SKIP_REASONS = {
    "empty_file": "zero-byte file",
    "missing_file": "listed but not on disk (or a dangling symlink)",
    "unreadable": "cannot be read (permissions, I/O error, symlink loop)",
    "undecodable": "not an image Pillow can decode",
    "truncated": "image data ends early",
    "too_large": "over Pillow's decompression-bomb limit",
    "grayscale": "grayscale (mode L/1/I;16/LA): no colour target",
    "near_grayscale": "RGB but without colour (R=G=B up to noise): no colour target",
    "too_small": "short side below min_side",
}
REPAIRS = {
    "exif_rotated": "rotated upright from the EXIF Orientation tag",
    "cmyk": "CMYK converted to RGB",
    "palette": "palette (P) converted to RGB",
    "alpha": "alpha (RGBA/PA) composited on white",
    "16bit": "16 bits per channel reduced to 8",
    "other_mode": "other colour mode (YCbCr, LAB, HSV) converted to RGB",
}
_GRAY_MODES = {"L", "1", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "LA", "La"}
_SHARD_RE = r"^{split}-(\d{{5}})-of-(\d{{5}})\.tfrecord$"
PROGRESS_DIR = "_progress"


class SkipImage(Exception):
    """Raised by a loader for an image that must not be written; ``args[0]`` is the reason."""


@dataclasses.dataclass(frozen=True)
class EncodeConfig:
    """How images are stored."""

    short_side: int = 256  # larger images are shrunk to this short side (the paper's size); 0 = keep every size
    jpeg_quality: int = 95
    min_side: int = 32  # skip images whose short side is smaller
    gray_threshold: float = 6.0  # 99th percentile of max-min channel spread (0..255) below which RGB counts as gray

    def validate(self):
        if self.short_side != 0 and self.short_side < 8:
            raise ValueError(f"short_side must be 0 (keep each photo's own size) or >= 8, got {self.short_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {self.min_side}")


# ---------------------------------------------------------------------------
# Loading and cleaning one image
# ---------------------------------------------------------------------------


def load_file(record, short_side=None):
    """Opens an image file as upright 8-bit RGB.

    Args:
      record: :class:`places365.Record` whose ``key`` is the file path.
      short_side: if given, lets Pillow decode a large JPEG at a reduced scale
        (never below this short side).

    Returns:
      ``(PIL.Image in mode RGB, list of repair kinds applied)``.

    Raises:
      SkipImage: with a reason from :data:`SKIP_REASONS`.
    """
    path = record.key
    try:
        if os.path.getsize(path) == 0:
            raise SkipImage("empty_file")
        file = open(path, "rb")  # noqa: SIM115 - Pillow reads it lazily; closed below
    except FileNotFoundError:
        raise SkipImage("missing_file") from None
    except OSError:  # EACCES, EIO, ELOOP (a symlink loop), ...
        raise SkipImage("unreadable") from None
    with file:
        return load_open_file(file, short_side)


def load_open_file(file, short_side=None):
    """The decoding half of :func:`load_file`: an open binary file (or ``io.BytesIO``) -> upright 8-bit RGB.

    Loaders that fetch the bytes themselves (the Beam pipeline reads ``gs://``
    and other file systems, :mod:`keras_colorize.beam.shards`) call it so that
    every loader cleans, repairs and skips alike.

    Returns:
      ``(PIL.Image in mode RGB, list of repair kinds applied)``.

    Raises:
      SkipImage: with a reason from :data:`SKIP_REASONS`.
    """
    repairs = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
            if short_side and image.format == "JPEG" and image.mode == "RGB":
                image.draft("RGB", (short_side, short_side))
            if any(";16" in str(getattr(t, "args", "")) for t in getattr(image, "tile", [])) and image.mode == "RGB":
                repairs.append("16bit")
            image.load()
    except SkipImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SkipImage("too_large") from None
    except OSError as e:
        raise SkipImage("truncated" if "truncated" in str(e) else "undecodable") from None
    except Exception:  # Pillow raises many types (SyntaxError, ValueError, struct.error) on junk
        raise SkipImage("undecodable") from None

    orientation = image.getexif().get(0x0112, 1)
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
        repairs.append("exif_rotated")
    return _to_rgb(image, repairs), repairs


def _to_rgb(image, repairs):
    mode = image.mode
    if mode == "P":
        repairs.append("palette")
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "PA":
        repairs.append("palette")
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in _GRAY_MODES:
        raise SkipImage("grayscale")
    if mode in ("RGBA", "RGBa"):
        repairs.append("alpha")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    if mode == "CMYK":
        repairs.append("cmyk")
        return image.convert("RGB")
    if mode != "RGB":
        repairs.append("other_mode")
        return image.convert("RGB")
    return image


def is_near_grayscale(image, threshold):
    """True if an RGB image has (almost) no colour: 99th percentile of max-min channel spread."""
    thumb = image.copy()
    thumb.thumbnail((64, 64))
    pixels = np.asarray(thumb, dtype=np.int16)
    spread = pixels.max(axis=-1) - pixels.min(axis=-1)
    return float(np.percentile(spread, 99)) < threshold


def resize_short_side(image, short_side):
    """Pillow resize so that min(width, height) == short_side (Lanczos, aspect kept).

    Never upscales: an image whose short side is already at most ``short_side``
    (or any image when ``short_side`` is 0) is returned as it is, so shards of
    150 px photos stay 150 px on disk.
    """
    width, height = image.size
    if not short_side or min(width, height) <= short_side:
        return image
    scale = short_side / min(width, height)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    if width <= height:
        size = (short_side, size[1])
    else:
        size = (size[0], short_side)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_image(image, config):
    """Cleaned RGB image -> (JPEG bytes, height, width) at the configured short side."""
    image = resize_short_side(image, config.short_side)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=config.jpeg_quality, subsampling=0 if config.jpeg_quality >= 90 else 2)
    return buffer.getvalue(), image.height, image.width


def prepare_example(record, loader, config):
    """Loads, checks and encodes one record. Returns ``(example bytes, repairs)``; raises SkipImage."""
    image, repairs = loader(record, config.short_side)
    if min(image.size) < config.min_side:
        raise SkipImage("too_small")
    if is_near_grayscale(image, config.gray_threshold):
        raise SkipImage("near_grayscale")
    encoded, height, width = encode_image(image, config)
    example = features.make_example(encoded, height, width, record.label, record.class_name, record.source)
    # deterministic: map keys in sorted order, so the same photo gives the same bytes in every process
    return example.SerializeToString(deterministic=True), repairs


# ---------------------------------------------------------------------------
# Writing shards
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ShardStats:
    """What one shard (or a whole run, after :meth:`merge`) wrote and skipped."""

    written: dict = dataclasses.field(default_factory=dict)  # class name ("" = unlabelled) -> count
    skipped: dict = dataclasses.field(default_factory=dict)  # reason -> count
    repaired: dict = dataclasses.field(default_factory=dict)  # repair kind -> count
    skipped_files: list = dataclasses.field(default_factory=list)  # [source, reason]

    def merge(self, other):
        for field in ("written", "skipped", "repaired"):
            mine = getattr(self, field)
            for k, v in getattr(other, field).items():
                mine[k] = mine.get(k, 0) + v
        self.skipped_files.extend(other.skipped_files)
        return self

    @property
    def num_written(self):
        return sum(self.written.values())

    @property
    def num_skipped(self):
        return sum(self.skipped.values())


def fingerprint(records, config, loader):
    """What a shard's progress record pins: the encoding config, the loader and the records, in order."""
    h = hashlib.sha1()
    h.update(json.dumps([dataclasses.asdict(config), f"{loader.__module__}.{loader.__qualname__}"]).encode())
    for r in records:
        h.update(f"{r.key}\0{r.label}\0{r.class_name}\0{r.source}\n".encode())
    return h.hexdigest()


_REPORT_EVERY = 16  # images between progress reports from a worker


def write_shard(records, path, loader, config, progress_queue=None):
    """Writes one shard atomically; returns its :class:`ShardStats`.

    Runs in a worker process. The progress record is written (atomically)
    before the shard is renamed, so a final shard name always has one.
    ``progress_queue.put(n)`` is called as images are done (for the bar).
    """
    import tensorflow as tf  # imported here: the parent may never need it

    stats = ShardStats()
    with fileio.atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for i, record in enumerate(records):
                if progress_queue is not None and i and i % _REPORT_EVERY == 0:
                    progress_queue.put(_REPORT_EVERY)
                try:
                    serialized, repairs = prepare_example(record, loader, config)
                except (SkipImage, OSError) as skip:  # OSError: a custom loader's unreadable file
                    reason = skip.args[0] if isinstance(skip, SkipImage) else "unreadable"
                    stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
                    stats.skipped_files.append([record.source, reason])
                    continue
                writer.write(serialized)
                stats.written[record.class_name] = stats.written.get(record.class_name, 0) + 1
                for kind in repairs:
                    stats.repaired[kind] = stats.repaired.get(kind, 0) + 1
        progress = {"fingerprint": fingerprint(records, config, loader), "stats": dataclasses.asdict(stats)}
        fileio.atomic_write_text(_progress_path(path), json.dumps(progress))
    if progress_queue is not None and records:
        progress_queue.put((len(records) - 1) % _REPORT_EVERY + 1)
    return stats


# ---------------------------------------------------------------------------
# Worker processes die with their parent
# ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_WATCH_PARENT_EVERY = 0.5  # seconds
_worker_queue = None  # the progress queue, handed to each worker at start-up


def _exit_with_parent(parent_pid):
    """Makes this (worker) process exit as soon as ``parent_pid`` dies.

    On Linux the kernel sends SIGKILL at the parent's death (``prctl(PR_SET_PDEATHSIG)``);
    everywhere a daemon thread also polls ``os.getppid()``, which changes when
    the worker is re-parented. Without either, a SIGKILLed ``make_shards``
    left its workers (~580 MB each) writing shards for minutes.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)  # no cleanup: the rerun removes the temporary shard
            time.sleep(_WATCH_PARENT_EVERY)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _worker_init(parent_pid, queue):
    global _worker_queue
    _exit_with_parent(parent_pid)
    _worker_queue = queue


def _write_shard_in_worker(records, path, loader, config):
    return write_shard(records, path, loader, config, _worker_queue)


class _BarQueue:
    """In-process stand-in for the progress queue: updates the bar directly."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, n):
        self.bar.update(n)


def _drain(queue, bar):
    while True:
        try:
            bar.update(queue.get_nowait())
        except Exception:  # queue.Empty (or a closed manager at the very end)
            return


def _progress_path(shard_path):
    shard_path = pathlib.Path(shard_path)
    return shard_path.parent / PROGRESS_DIR / (shard_path.name + ".json")


def _finished_stats(path, records, config, loader):
    """Stats of a shard finished by an earlier run with the same inputs, else None."""
    progress_path = _progress_path(path)
    if not (os.path.exists(path) and progress_path.exists()):
        return None
    try:
        progress = json.loads(progress_path.read_text())
    except (OSError, ValueError):
        return None
    if progress.get("fingerprint") != fingerprint(records, config, loader):
        return None
    return ShardStats(**progress["stats"])


def shard_paths(output, split, num_shards):
    return [os.path.join(output, f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord") for i in range(num_shards)]


def file_pattern(output, split):
    """Glob of the shards of one split in ``output``."""
    return os.path.join(output, f"{split}-*-of-*.tfrecord")


def _clean_output(output, split, num_shards):
    """Removes this split's leftovers: temporary files and shards from a different shard count."""
    pattern = re.compile(_SHARD_RE.format(split=re.escape(split)))
    for name in sorted(os.listdir(output)):
        match = pattern.match(name)
        if name.startswith(f".{split}-") and (fileio.is_partial(name) or ".tfrecord.tmp-" in name):
            os.remove(os.path.join(output, name))  # ".tmp-<pid>": the temporary name of earlier versions
        elif match and int(match.group(2)) != num_shards:
            logging.warning("removing %s: from an earlier run with %s shards", name, match.group(2))
            os.remove(os.path.join(output, name))
            progress = _progress_path(os.path.join(output, name))
            if progress.exists():
                progress.unlink()


def plan_shards(records, output, split, shard_size, seed):
    """Which records go into which shard: ``[(shard path, [record, ...]), ...]`` in shard order.

    The records are shuffled by ``seed`` (so every shard mixes all classes)
    and cut into ``shard_size`` pieces; the same arguments give the same plan,
    which is what makes reruns resume and the Beam pipeline
    (:mod:`keras_colorize.beam.shards`) write the same shards as
    :func:`write_shards`.
    """
    order = np.random.default_rng(seed).permutation(len(records))
    records = [records[i] for i in order]
    num_shards = max(1, -(-len(records) // shard_size))
    paths = shard_paths(output, split, num_shards)
    return [(path, records[i * shard_size : (i + 1) * shard_size]) for i, path in enumerate(paths)]


def write_shards(
    records,
    output,
    split,
    loader=load_file,
    config=EncodeConfig(),
    shard_size=1024,
    num_workers=1,
    seed=0,
    progress=True,
):
    """Writes records into ``<output>/<split>-*-of-*.tfrecord`` shards.

    Args:
      records: list of :class:`places365.Record`.
      output: output folder (created).
      split: split name used in the file names.
      loader: ``loader(record, short_side) -> (PIL RGB image, repairs)``, raising
        :class:`SkipImage`; a module-level function (it is sent to worker processes).
      config: :class:`EncodeConfig`.
      shard_size: records per shard.
      num_workers: processes; 1 writes in this process.
      seed: shuffles records across shards (so every shard mixes all classes).
      progress: show a tqdm progress bar.

    Returns:
      :class:`ShardStats` of the whole split (finished shards from an earlier
      run included).
    """
    config.validate()
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    os.makedirs(os.path.join(output, PROGRESS_DIR), exist_ok=True)
    shards = plan_shards(records, output, split, shard_size, seed)
    records = [record for _, chunk in shards for record in chunk]
    _clean_output(output, split, len(shards))

    from tqdm import tqdm

    total = ShardStats()
    todo = []
    for path, chunk in shards:
        done = _finished_stats(path, chunk, config, loader)
        if done is None:
            todo.append((path, chunk))
        else:
            total.merge(done)
    already_done = len(records) - sum(len(chunk) for _, chunk in todo)
    bar = tqdm(total=len(records), initial=already_done, unit="img", desc=f"{split} shards", disable=not progress)
    failures = []
    with bar:
        if num_workers == 1 or len(todo) <= 1:
            for path, chunk in todo:
                total.merge(write_shard(chunk, path, loader, config, _BarQueue(bar)))
        else:
            context = multiprocessing.get_context("spawn")
            # A plain queue handed over at start-up (no Manager: one process fewer that could outlive us).
            queue = context.Queue()
            with concurrent.futures.ProcessPoolExecutor(
                min(num_workers, len(todo)), mp_context=context, initializer=_worker_init,
                initargs=(os.getpid(), queue)
            ) as pool:
                futures = {pool.submit(_write_shard_in_worker, chunk, path, loader, config): path
                           for path, chunk in todo}
                pending = set(futures)
                while pending:
                    done, pending = concurrent.futures.wait(
                        pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                    _drain(queue, bar)
                    for future in done:
                        try:
                            total.merge(future.result())
                        except Exception as e:  # a worker bug: keep the finished shards, report at the end
                            failures.append((futures[future], repr(e)))
                _drain(queue, bar)
            queue.close()
            queue.join_thread()
    if failures:
        raise RuntimeError(
            f"{len(failures)} shard(s) failed (finished shards are kept; rerun to retry): {failures[:3]}"
        )
    return total


# ---------------------------------------------------------------------------
# The make_shards job
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MakeShardsConfig:
    """Everything ``make_shards`` needs; the CLI fills it from flags."""

    source: str
    output: str
    split: str = "train"
    classes: str = ""  # class list file; required for the Places365 layouts
    layout: str = "auto"
    categories: str = ""  # categories_places365.txt if not inside source
    shard_size: int = 1024
    num_workers: int = 1
    seed: int = 0
    test_per_class: int = 10
    val_fraction: float = 0.1  # classes layout: images outside train/val/test folders sent to val
    encode: EncodeConfig = EncodeConfig()


def format_summary(stats, class_names=None):
    """Human-readable summary: images per class, skipped by reason, repairs."""
    lines = [f"written: {stats.num_written} images, skipped: {stats.num_skipped}"]
    names = list(class_names) if class_names else sorted(stats.written)
    width = max([len(n) for n in names] + [len(k) for k in (*stats.skipped, *stats.repaired)] + [12])
    lines.append("images per class:")
    for name in names:
        lines.append(f"  {name or '(unlabelled)':<{width}}  {stats.written.get(name, 0):>8}")
    for name in sorted(set(stats.written) - set(names)):
        lines.append(f"  {name or '(unlabelled)':<{width}}  {stats.written[name]:>8}")
    lines.append("skipped by reason:" + ("" if stats.skipped else " none"))
    for reason, n in sorted(stats.skipped.items()):
        lines.append(f"  {reason:<{width}}  {n:>8}  ({SKIP_REASONS.get(reason, '')})")
    lines.append("repaired and written:" + ("" if stats.repaired else " none"))
    for kind, n in sorted(stats.repaired.items()):
        lines.append(f"  {kind:<{width}}  {n:>8}  ({REPAIRS.get(kind, '')})")
    return "\n".join(lines)


def make_shards(config, progress=True):
    """Lists, splits and writes one split of a source folder; returns ``(stats, summary text)``.

    All arguments are checked and all files listed before any image is read,
    so a missing source or an unknown class name fails in seconds. The summary
    is also written to ``<output>/summary-<split>.json``.
    """
    layout, records, class_names = list_split(config)
    stats = write_shards(
        records,
        config.output,
        config.split,
        config=config.encode,
        shard_size=config.shard_size,
        num_workers=config.num_workers,
        seed=config.seed,
        progress=progress,
    )
    if layout == "classes":
        write_class_list(config.output, class_names)
    write_summary(config.output, config.split, stats, class_names, layout=layout,
                  source=os.path.abspath(config.source), config=dataclasses.asdict(config))
    return stats, f"layout: {layout}, split: {config.split}\n" + format_summary(stats, class_names)


def list_split(config, check_output=True):
    """Checks ``config`` and lists one split: ``(layout, records, class names or None)``; reads no image.

    Shared by :func:`make_shards` and the Beam pipeline
    (:mod:`keras_colorize.beam.shards`), so both write the same split.

    Args:
      config: :class:`MakeShardsConfig`.
      check_output: for the class-per-folder layout, refuse an output folder
        whose ``classes.txt`` lists other classes (:func:`check_class_list`;
        a local output only, the Beam pipeline checks its own).

    Raises:
      ValueError: a missing source, an output that is the source, bad sizes,
        unknown class names, no images.
    """
    if not config.source:
        raise ValueError("source is required (the folder of images to read)")
    if not os.path.isdir(config.source):
        raise ValueError(f"source={config.source!r} is not an existing folder")
    if not config.output:
        raise ValueError("output is required (the folder to write shards to)")
    if os.path.abspath(config.output) == os.path.abspath(config.source):
        raise ValueError(f"output={config.output!r} must not be the source folder")
    config.encode.validate()
    class_names = places365.read_class_list(config.classes) if config.classes else None
    class_folders = places365.read_class_folders(config.classes) if config.classes else None
    layout, records = places365.list_records(
        config.source,
        config.split,
        layout=config.layout,
        class_names=class_names,
        test_per_class=config.test_per_class,
        seed=config.seed,
        categories_file=config.categories or None,
        val_fraction=config.val_fraction,
        class_folders=class_folders,
    )
    if layout == "classes":
        class_names = class_names or places365.class_folder_names(config.source)
        used = {f for fs in (class_folders or {n: (n,) for n in class_names}).values() for f in fs}
        ignored = sorted(set(places365.class_folder_names(config.source)) - used)
        if ignored:
            logging.warning("class folders not in classes=%r are not written: %s", config.classes, ignored)
        if check_output:
            check_class_list(config.output, class_names)
    if layout == "folder" and class_names:
        raise ValueError(
            f"source={config.source!r} is read as a plain folder (layout={config.layout!r}: no places365_standard/, "
            "train/, val/, data_256/, val_256/ or Places365 file lists found), whose images are unlabelled; "
            "point source at the Places365 root, or drop classes to write unlabelled shards"
        )
    if not records:
        raise ValueError(f"source={config.source!r} has no images for split={config.split!r} (layout {layout})")
    logging.info("%s layout, %d images for split %s", layout, len(records), config.split)
    return layout, records, class_names


CLASS_LIST = "classes.txt"


def check_class_list(output, class_names):
    """Refuses to mix label orders: ``<output>/classes.txt`` (if any) must list ``class_names``.

    The class-per-folder layout numbers classes by the list it writes next to
    the shards; every split written into one folder must use the same list
    (pass it back with ``--classes=<output>/classes.txt``).
    """
    path = os.path.join(output, CLASS_LIST)
    if os.path.isfile(path):
        existing = places365.read_class_list(path)
        if existing != list(class_names):
            raise ValueError(
                f"output={output!r} already holds shards labelled by {path} ({len(existing)} classes: "
                f"{', '.join(existing[:6])}{' ...' if len(existing) > 6 else ''}), which differs from this "
                f"run's {len(class_names)} classes; pass --classes={path} or write to another output folder")


def write_class_list(output, class_names):
    """Writes ``<output>/classes.txt``: one class per line, line order = label (read back by ``--classes``)."""
    path = os.path.join(output, CLASS_LIST)
    os.makedirs(output, exist_ok=True)
    header = "# Class list of these shards: line order = label. Pass it back with --classes.\n"
    fileio.atomic_write_text(path, header + "".join(f"{n}\n" for n in class_names))
    return path


def write_summary(output, split, stats, class_names=None, **extra):
    """Writes ``<output>/summary-<split>.json``: pattern, class names, counts (readers use it to skip a scan)."""
    summary = {
        "split": split,
        "file_pattern": os.path.abspath(file_pattern(output, split)),
        "class_names": list(class_names or []),
        **extra,
        **dataclasses.asdict(stats),
    }
    path = os.path.join(output, f"summary-{split}.json")
    fileio.atomic_write_text(path, json.dumps(summary, indent=1))
    return path
