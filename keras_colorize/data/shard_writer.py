"""Writing TFRecord shards: atomically, in parallel worker processes that die with their parent, resumably.

Each shard is written under a hidden temporary name (:func:`keras_colorize.fileio.atomic_path`,
so no shard glob matches it) and renamed when complete, after its progress record
(``_progress/<name>.json``: what went in, what was written and skipped). A rerun with
the same arguments keeps the finished shards and rewrites the rest. Workers are
spawned (TensorFlow state is never forked) and exit when the main process dies,
even by SIGKILL.

Shard names: ``<split>-<i:05d>-of-<n:05d>.tfrecord``; glob ``<split>-*-of-*.tfrecord``.
"""

import concurrent.futures
import ctypes
import dataclasses
import hashlib
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

import numpy as np

from keras_colorize import fileio
from keras_colorize.data import photo_repair


_SHARD_RE = r"^{split}-(\d{{5}})-of-(\d{{5}})\.tfrecord$"
PROGRESS_DIR = "_progress"




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
                    serialized, repairs = photo_repair.prepare_example(record, loader, config)
                except (photo_repair.SkipImage, OSError) as skip:  # OSError: a custom loader's unreadable file
                    reason = skip.args[0] if isinstance(skip, photo_repair.SkipImage) else "unreadable"
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
    loader=photo_repair.load_file,
    config=photo_repair.EncodeConfig(),
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
        :class:`photo_repair.SkipImage`; a module-level function (it is sent to worker processes).
      config: :class:`photo_repair.EncodeConfig`.
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
