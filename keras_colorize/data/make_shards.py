r"""Writes TFRecord shards from Places365 (either layout) or any folder of images.

Places365, the paper's three splits (137 landscape classes, 256 px):

  for split in train val test; do
    python -m keras_colorize.data.make_shards --source=/data/places365 \
      --classes=experiments/landscape_classes.txt --output=/data/shards --split=$split
  done

A class-per-folder tree (labels from folder names; a dataset's own train/ and
test/ folders are kept as train/validation, other images split by seed), for
example the scenes training set:

  for split in train val; do
    python -m keras_colorize.data.make_shards --source=photos/scenes --layout=classes \
      --classes=experiments/scenes_classes.txt --short_side=0 --output=data/scenes_shards --split=$split
  done

Without --classes the sorted folder names are used; either way the list is
written to <output>/classes.txt.

A plain folder (recursive, unlabelled):

  python -m keras_colorize.data.make_shards --source=photos/ --output=shards/ --split=val

Reruns resume: finished shards are kept. See keras_colorize/data/shards_lib.py.
Installed as ``kc-make-shards``.

Exit status: 0 written (images that cannot be used are skipped and counted by
reason in the summary); 2 bad arguments or configuration (a missing flag, a
source that is not an existing folder, an output that is the source, a bad
size or split), as one line ``kc-make-shards: error: ...`` before any shard is
written.
"""

import os

from absl import flags

from keras_colorize import cli
from keras_colorize.data import places365

_SOURCE = flags.DEFINE_string(
    "source", None, "Folder to read: Places365 (easy-format or original layout) or any image folder."
)
_OUTPUT = flags.DEFINE_string("output", None, "Folder to write <split>-*-of-*.tfrecord shards to.")
_SPLIT = flags.DEFINE_enum("split", "train", list(places365.SPLITS), "Which split to write.")
_CLASSES = flags.DEFINE_string("classes", None, "Class list, one Places365 name per line (line order = label).")
_LAYOUT = flags.DEFINE_enum("layout", "auto", list(places365.LAYOUTS), "Source layout; auto detects it.")
_CATEGORIES = flags.DEFINE_string("categories", None, "categories_places365.txt, if not inside --source.")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 1024, "Images per shard.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Worker processes.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the test hold-out and of the order across shards.")
_TEST_PER_CLASS = flags.DEFINE_integer("test_per_class", 10, "Training images per class held out as the test split.")
_SHORT_SIDE = flags.DEFINE_integer("short_side", 256, "Stored images are resized to this short side.")
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the stored images.")
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", 0.1,
    "--layout=classes: share of the images outside any train/ val/ test/ folder sent to validation (by a hash of "
    "seed and path).")
_MIN_SIDE = flags.DEFINE_integer("min_side", 32, "Skip images whose short side is smaller.")


def config_from_flags():
    """The parsed flags as a :class:`shards_lib.MakeShardsConfig` (also read by ``kc-beam-shards``)."""
    from keras_colorize.data import photo_repair  # noqa: PLC0415 - imports TensorFlow: after flag parsing
    from keras_colorize.data import shards_lib  # noqa: PLC0415

    return shards_lib.MakeShardsConfig(
        source=_SOURCE.value,
        output=_OUTPUT.value,
        split=_SPLIT.value,
        classes=_CLASSES.value or "",
        layout=_LAYOUT.value,
        categories=_CATEGORIES.value or "",
        shard_size=_SHARD_SIZE.value,
        num_workers=_NUM_WORKERS.value,
        seed=_SEED.value,
        test_per_class=_TEST_PER_CLASS.value,
        val_fraction=_VAL_FRACTION.value,
        encode=photo_repair.EncodeConfig(
            short_side=_SHORT_SIDE.value, jpeg_quality=_JPEG_QUALITY.value, min_side=_MIN_SIDE.value
        ),
    )


def main(argv):
    cli.check_args(argv, required=("source", "output"))
    from keras_colorize.data import shard_writer  # noqa: PLC0415 - imports TensorFlow: after flag parsing
    from keras_colorize.data import shards_lib  # noqa: PLC0415

    config = config_from_flags()
    _, summary = shards_lib.make_shards(config)  # ValueError: cli.run exits 2, nothing written
    print(summary)
    print(f"shards: {shard_writer.file_pattern(config.output, config.split)}")
    return 0


def run():
    """Console-script entry point (``kc-make-shards``); exit status 0 or 2 as above."""
    cli.run(main, "kc-make-shards")


if __name__ == "__main__":
    run()
