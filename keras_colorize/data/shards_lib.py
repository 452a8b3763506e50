"""Images -> TFRecord shards: the job (list a split, write it, summarize it) and the summaries it leaves.

One photo: :mod:`keras_colorize.data.photo_repair`; writing: :mod:`keras_colorize.data.shard_writer`.

Library behind ``python -m keras_colorize.data.make_shards`` and the demo data
(:mod:`keras_colorize.data.demo`), so real and synthetic data share one writer
and one format (:mod:`keras_colorize.data.features`).

Guarantees (details in those modules): a killed run leaves no truncated shard under a final name and
nothing running; a rerun keeps the finished shards; bad files never stop the run, each is counted by
reason and each repair by kind in the summary (``summary-<split>.json``, read back by
:func:`summary_counts`).

Shard names: ``<split>-<i:05d>-of-<n:05d>.tfrecord``; glob ``<split>-*-of-*.tfrecord``.
"""

import dataclasses
import glob
import json
import logging
import os


from keras_colorize import fileio
from keras_colorize.data import places365
from keras_colorize.data import photo_repair
from keras_colorize.data import shard_writer


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
    encode: photo_repair.EncodeConfig = photo_repair.EncodeConfig()


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
        lines.append(f"  {reason:<{width}}  {n:>8}  ({photo_repair.SKIP_REASONS.get(reason, '')})")
    lines.append("repaired and written:" + ("" if stats.repaired else " none"))
    for kind, n in sorted(stats.repaired.items()):
        lines.append(f"  {kind:<{width}}  {n:>8}  ({photo_repair.REPAIRS.get(kind, '')})")
    return "\n".join(lines)


def make_shards(config, progress=True):
    """Lists, splits and writes one split of a source folder; returns ``(stats, summary text)``.

    All arguments are checked and all files listed before any image is read,
    so a missing source or an unknown class name fails in seconds. The summary
    is also written to ``<output>/summary-<split>.json``.
    """
    layout, records, class_names = list_split(config)
    stats = shard_writer.write_shards(
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
        "file_pattern": os.path.abspath(shard_writer.file_pattern(output, split)),
        "class_names": list(class_names or []),
        **extra,
        **dataclasses.asdict(stats),
    }
    path = os.path.join(output, f"summary-{split}.json")
    fileio.atomic_write_text(path, json.dumps(summary, indent=1))
    return path


def summary_counts(files):
    """(examples, max label) from the ``summary-<split>.json`` make_shards writes.

    None unless the summaries cover exactly ``files`` (then the records must be scanned).
    """
    covered, examples, max_label = set(), 0, -1
    for summary_path in sorted({p for f in files for p in glob.glob(os.path.join(os.path.dirname(f), "summary-*.json"))}):
        try:
            with open(summary_path) as f:
                summary = json.load(f)
            summarized = set(glob.glob(summary["file_pattern"]))
            written = summary["written"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not summarized & set(files):
            continue
        if not summarized <= set(files):  # its counts include shards this run does not read
            return None
        covered |= summarized
        examples += sum(written.values())
        names = summary.get("class_names") or []
        if any(name for name, count in written.items() if name and count):
            max_label = max(max_label, len(names) - 1)
    return (examples, max_label) if covered == set(files) else None
