r"""Evaluate models like the paper: ``kc-evaluate`` / ``python -m keras_colorize.evaluate``.

    python -m keras_colorize.evaluate --model P1=runs/p1/best.keras --model "P2 w/o fusion"=runs/p2/best.keras \
        --data=photos/landscapes --output=runs/eval

``--data`` is a folder of colour images (converted to gray for the input) or a
glob of TFRecord shards. Writes ``metrics.json``, ``metrics.md`` (the table,
one row per model plus the "predict gray" baseline) and ``grid.png``
(input, each model, ground truth) into ``--output``, and prints the table.

``--model`` is ``NAME=SPEC`` where SPEC is a bundled model name (``scenes``),
a ``.keras`` file or a SavedModel folder; a bare SPEC is named after itself
(``--model scenes`` means ``scenes=scenes``).

Exit status: 0 every image was evaluated; 1 some images could not be read
(listed; the metrics cover the rest); 2 bad arguments or configuration
(a missing flag, a model that is missing, not a Keras model or not a
colorizer, no data), printed as one line ``kc-evaluate: error: ...`` before
any image is read.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from keras_colorize import cli
from keras_colorize import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, f"NAME=SPEC, SPEC being {pretrained.MODEL_HELP} (.keras file or "
                          "SavedModel folder); a bare SPEC is named after itself; repeat for more models.")
flags.DEFINE_string("data", None, "Folder of colour images, or a glob of TFRecord shards.")
flags.DEFINE_string("output", None, "Folder for metrics.json, metrics.md and grid.png.")
flags.DEFINE_integer("image_size", None, "Evaluation resolution (default: the largest model input size).")
flags.DEFINE_integer("batch_size", 16, "Images per network call.")
flags.DEFINE_integer("max_images", None, "Evaluate at most this many images.")
flags.DEFINE_integer("grid_rows", 6, "Rows of the comparison grid (seeded random sample).")
flags.DEFINE_list("grid_images", [], "Images to show in the grid instead (relative paths, shard sources or indices).")
flags.DEFINE_integer("seed", 0, "Seed of the grid sample.")
flags.DEFINE_string("labels_csv", None, "CSV with columns 'file' (relative to --data) and --label_column, "
                    "for per-class figures on a folder (default: first sub-folder level is the class).")
flags.DEFINE_string("label_column", "class", "Class column of --labels_csv.")
flags.DEFINE_list("hint_points", ["0", "1", "2", "5", "10", "20", "50"],
                  "Guided models only: hint rows with this many points per image, drawn from the ground truth "
                  "with a fixed seed (0 = the model's own row); also psnr_vs_hints.png.")
flags.DEFINE_bool("reference_row", True, "Guided models only: a row with the ground truth's own reference histogram.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
    cli.check_args(argv, required=("model", "data", "output"))
    try:
        hint_points = tuple(int(n) for n in FLAGS.hint_points)
    except ValueError:
        raise ValueError(f"--hint_points={','.join(FLAGS.hint_points)!r}: must be integers >= 0") from None
    from keras_colorize.evaluation import evaluator  # noqa: PLC0415 - TensorFlow after flag parsing: --help is fast

    config = evaluator.EvalConfig(
        models=tuple(evaluator.parse_model_spec(m) for m in FLAGS.model), data=FLAGS.data,
        output=FLAGS.output, image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
        max_images=FLAGS.max_images, grid_rows=FLAGS.grid_rows, grid_images=tuple(FLAGS.grid_images),
        seed=FLAGS.seed, labels_csv=FLAGS.labels_csv, label_column=FLAGS.label_column, hint_points=hint_points,
        reference_row=FLAGS.reference_row)
    result = evaluator.run(config, progress=FLAGS.progress)  # ValueError: cli.run exits 2
    print(evaluator.markdown_table(result, config.models))
    for failure in result["failed"]:
        print(f"  FAILED {failure['file']}: {failure['reason']}")
    print(f"wrote {FLAGS.output}/metrics.json, metrics.md" + (", psnr_vs_hints.png" if result["hint_rows"] else "")
          + (", grid.png" if result["grid_names"] else ""))
    return 1 if result["failed"] else 0


def run():
    """Console-script entry point (``kc-evaluate``); exit status 0, 1 or 2 as above."""
    cli.run(main, "kc-evaluate")


if __name__ == "__main__":
    run()
