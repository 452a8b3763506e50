"""Places365 (or any photo folder) -> TFRecord shards as an Apache Beam pipeline: the library of ``kc-beam-shards``.

The same shards as ``kc-make-shards`` (:mod:`keras_colorize.data.shards_lib`),
written by Beam workers instead of local processes, so a split of 1.8 million
photos runs on Dataflow, Flink or Spark (``docs/beam.md``). Nothing about the
output differs: the launcher lists and splits the source with the local
tool's :func:`shards_lib.list_split` and cuts the shuffled records into shards
with :func:`shard_writer.plan_shards`; each worker writes whole shards with
:func:`shard_writer.write_shard` (loading, cleaning, re-encoding and the
``tf.train.Example`` of the local tool); skipped files are counted by reason
in each shard's progress record, which the launcher merges into
``summary-<split>.json`` at the end. Same arguments, same shards, record for
record, whichever runner and however many workers.

One shard is one unit of work: no shuffle of image data between workers, and
a shard is published (its progress record first, then the shard, each whole,
:mod:`keras_colorize.beam.files`) only when complete. A rerun keeps the
shards whose progress record matches and writes the rest, whether the earlier
run was this pipeline or ``kc-make-shards``.

Where the files live:

* ``output`` may be any file system Beam writes (a local folder, ``gs://``, ``s3://``, ``hdfs://``).
* ``source`` is listed by the launcher, so it must be a folder the launcher
  sees (local, NFS, or a bucket mounted with gcsfuse / mountpoint-s3).
  Workers read each photo at the same path, or under ``source_url`` when they
  see the source elsewhere (``source=/mnt/places365``,
  ``source_url=gs://bucket/places365``).

Example::

    from keras_colorize.beam import options, shards
    from keras_colorize.data import shards_lib
    config = shards.BeamShardsConfig(shards_lib.MakeShardsConfig(
        source="photos/", output="shards/", split="val", shard_size=256))
    stats, summary = shards.run(config, options.pipeline_options(num_workers=2))
"""

import dataclasses
import io
import json
import logging
import os
import re
import tempfile
import time

import apache_beam as beam
from apache_beam.metrics import Metrics

from keras_colorize import fileio
from keras_colorize.beam import files
from keras_colorize.data import photo_repair
from keras_colorize.data import places365
from keras_colorize.data import shard_writer
from keras_colorize.data import shards_lib

_METRICS = "keras_colorize_shards"


@dataclasses.dataclass(frozen=True)
class BeamShardsConfig:
    """What the shards pipeline needs beyond the local tool's :class:`shards_lib.MakeShardsConfig`.

    Attributes:
      shards: the local tool's config (its ``num_workers`` is unused: the
        runner decides; ``kc-beam-shards`` passes it to the DirectRunner).
      source_url: where workers read ``shards.source`` when it is not at the
        same path for them (``gs://bucket/places365``); "" = the same path.
    """

    shards: shards_lib.MakeShardsConfig
    source_url: str = ""


# ---------------------------------------------------------------------------
# Reading a photo through Beam's file systems
# ---------------------------------------------------------------------------


def load_url(record, short_side=None):
    """:func:`photo_repair.load_file` for ``record.key`` on any Beam file system (``gs://...``).

    Same skip reasons: ``missing_file``, ``unreadable``, ``empty_file``, then
    whatever :func:`photo_repair.load_open_file` decides from the bytes.
    """
    try:
        data = files.read_bytes(record.key)
    except FileNotFoundError:
        raise photo_repair.SkipImage("missing_file") from None
    except Exception:  # noqa: BLE001 - BeamIOError, OSError, a cloud client's errors: one unreadable file
        raise photo_repair.SkipImage("missing_file" if not _exists(record.key) else "unreadable") from None
    if not data:
        raise photo_repair.SkipImage("empty_file")
    return photo_repair.load_open_file(io.BytesIO(data), short_side)


def _exists(path):
    try:
        return files.exists(path)
    except Exception:  # noqa: BLE001
        return True


# ---------------------------------------------------------------------------
# Shards and their progress records on any file system
# ---------------------------------------------------------------------------


def progress_path(shard_path):
    """``<output>/_progress/<shard name>.json``, the record of what a finished shard holds."""
    return files.join(files.dirname(shard_path), shard_writer.PROGRESS_DIR, files.basename(shard_path) + ".json")


def finished_stats(shard_path, records, encode, loader):
    """The :class:`shard_writer.ShardStats` of a shard finished with these inputs, else None."""
    record_path = progress_path(shard_path)
    try:
        if not (files.exists(shard_path) and files.exists(record_path)):
            return None
        progress = json.loads(files.read_text(record_path))
    except (OSError, ValueError):
        return None
    if progress.get("fingerprint") != shard_writer.fingerprint(records, encode, loader):
        return None
    return shard_writer.ShardStats(**progress["stats"])


def _clean_output(output, split, num_shards):
    """Removes this split's temporary files and its shards of another shard count (as the local tool does)."""
    shard_name = re.compile(shard_writer._SHARD_RE.format(split=re.escape(split)))  # noqa: SLF001 - one definition
    stale = files.match(files.join(output, shard_writer.PROGRESS_DIR, f"beam-plan-{split}-*.jsonl"))  # killed runs'
    for path in files.match(files.join(output, f".{split}-*")):
        if fileio.is_partial(files.basename(path)):
            stale.append(path)
    for path in files.match(files.join(output, f"{split}-*-of-*.tfrecord")):
        found = shard_name.match(files.basename(path))
        if found and int(found.group(2)) != num_shards:
            logging.warning("removing %s: from an earlier run with %s shards", path, found.group(2))
            stale += [path, progress_path(path)]
    files.delete(stale)


class WriteShardFn(beam.DoFn):
    """Writes one planned shard (a JSON line ``{"path", "records"}``) and yields its path.

    The shard is written with :func:`shard_writer.write_shard` into a local
    temporary folder, then its progress record and the shard are published
    to the output, in that order. A shard already finished with the same
    inputs (a retried bundle) is not written again.
    """

    def __init__(self, loader, encode):
        self._loader = loader
        self._encode = encode
        self._written = Metrics.counter(_METRICS, "images_written")
        self._skipped = Metrics.counter(_METRICS, "images_skipped")
        self._shards = Metrics.counter(_METRICS, "shards_written")

    def process(self, line):
        planned = json.loads(line)
        path = planned["path"]
        records = [places365.Record(*record) for record in planned["records"]]
        if finished_stats(path, records, self._encode, self._loader) is not None:
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="kc-shard-") as tmp:
            local = os.path.join(tmp, files.basename(path))
            stats = shard_writer.write_shard(records, local, self._loader, self._encode)
            files.publish_file(os.path.join(tmp, shard_writer.PROGRESS_DIR, files.basename(path) + ".json"),
                               progress_path(path))
            files.publish_file(local, path)
        self._written.inc(stats.num_written)
        self._skipped.inc(stats.num_skipped)
        for reason, count in stats.skipped.items():
            Metrics.counter(_METRICS, f"skipped_{reason}").inc(count)
        self._shards.inc()
        yield path


# ---------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------


def _check_class_list(output, class_names):
    """:func:`shards_lib.check_class_list` for an output on any file system."""
    if files.is_local(output):
        shards_lib.check_class_list(output, class_names)
        return
    path = files.join(output, shards_lib.CLASS_LIST)
    if files.exists(path):
        with tempfile.TemporaryDirectory() as tmp:
            files.download(path, os.path.join(tmp, shards_lib.CLASS_LIST))
            existing = places365.read_class_list(os.path.join(tmp, shards_lib.CLASS_LIST))
        if existing != list(class_names):
            raise ValueError(f"output={output!r} already holds shards labelled by {path} ({len(existing)} classes), "
                             f"which differs from this run's {len(class_names)} classes; pass --classes={path} "
                             "or write to another output folder")


def _worker_records(records, source, source_url):
    """Records whose keys are where workers read them (``source_url`` in place of ``source``)."""
    if not source_url:
        return records
    root = os.path.abspath(source)
    return [r._replace(key=files.join(source_url, os.path.relpath(r.key, root).replace(os.sep, "/")))
            for r in records]


def _publish_summary(output, split, stats, class_names, layout, source, config):
    summary = {  # the keys of shards_lib.write_summary, which writes local files only
        "split": split,
        "file_pattern": files.absolute(files.join(output, f"{split}-*-of-*.tfrecord")),
        "class_names": list(class_names or []),
        "layout": layout,
        "source": source,
        "config": config,
        **dataclasses.asdict(stats),
    }
    files.write_text(files.join(output, f"summary-{split}.json"), json.dumps(summary, indent=1))
    if layout == "classes":
        with tempfile.TemporaryDirectory() as tmp:
            files.publish_file(shards_lib.write_class_list(tmp, class_names),
                               files.join(output, shards_lib.CLASS_LIST))


def run(config, pipeline_options):
    """Lists, splits and writes one split through Beam; returns ``(stats, summary text)`` like ``make_shards``.

    Everything is checked and listed before the pipeline starts (a missing
    source or a misspelt class fails in seconds, nothing written). Shards
    finished by an earlier run (of this pipeline or of ``kc-make-shards``)
    are kept; the pipeline writes the rest.

    Args:
      config: :class:`BeamShardsConfig`.
      pipeline_options: ``apache_beam`` ``PipelineOptions``
        (:func:`keras_colorize.beam.options.pipeline_options`).

    Raises:
      ValueError: bad configuration (before any image is read).
      RuntimeError: the pipeline finished without writing every shard.
    """
    local = config.shards
    output = files.absolute(local.output)
    if local.shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {local.shard_size}")
    layout, records, class_names = shards_lib.list_split(
        dataclasses.replace(local, output=output), check_output=False)
    if layout == "classes":
        _check_class_list(output, class_names)
    source = os.path.abspath(local.source)
    records = _worker_records(
        [r._replace(key=os.path.abspath(r.key)) for r in records], source, config.source_url)
    loader = load_url if config.source_url else photo_repair.load_file
    planned = shard_writer.plan_shards(records, output, local.split, local.shard_size, local.seed)
    _clean_output(output, local.split, len(planned))

    todo = [(path, chunk) for path, chunk in planned if finished_stats(path, chunk, local.encode, loader) is None]
    logging.info("%s layout, %d images in %d shards for split %s; %d shards to write", layout, len(records),
                 len(planned), local.split, len(todo))
    if todo:
        plan_file = files.join(output, shard_writer.PROGRESS_DIR, f"beam-plan-{local.split}-{int(time.time())}.jsonl")
        files.write_text(plan_file, "".join(
            json.dumps({"path": path, "records": [list(r) for r in chunk]}) + "\n" for path, chunk in todo))
        try:
            with beam.Pipeline(options=pipeline_options) as pipeline:
                _ = (pipeline
                     | "ReadPlan" >> beam.io.ReadFromText(plan_file)
                     | "Spread" >> beam.Reshuffle()
                     | "WriteShards" >> beam.ParDo(WriteShardFn(loader, local.encode)))
        finally:
            files.delete([plan_file])

    total = shard_writer.ShardStats()
    missing = []
    for path, chunk in planned:  # merged in shard order, so the summary does not depend on the workers
        stats = finished_stats(path, chunk, local.encode, loader)
        if stats is None:
            missing.append(path)
        else:
            total.merge(stats)
    if missing:
        raise RuntimeError(f"{len(missing)} shard(s) were not written (finished shards are kept; rerun to "
                           f"retry): {missing[:3]}")
    _publish_summary(output, local.split, total, class_names, layout, source,
                     {**dataclasses.asdict(local), "output": output, "source_url": config.source_url})
    text = f"layout: {layout}, split: {local.split}\n" + shards_lib.format_summary(total, class_names)
    return total, text
