r"""Colorize photographs at full resolution: ``kc-colorize`` / ``python -m keras_colorize.colorize``.

    python -m keras_colorize.colorize --input=scans/ --output=colorized/
    python -m keras_colorize.colorize --model=runs/demo/best.keras --input=scans/ --output=colorized/
    kc-colorize --input=scan.jpg --output=out/ --hints=scan.jpg.hints.json
    kc-colorize --input=scans/ --output=colorized/ --reference=sunset.jpg

``--model`` defaults to the bundled ``scenes`` model, or to the bundled guided
``scenes_guided`` when hints, a reference or hint sidecars are given (both
research and non-commercial use only; see ``keras_colorize.pretrained``). ``--input`` is
one image or a folder (searched recursively; the output folder mirrors its
tree). Outputs keep each input's size, format and alpha; a multi-page TIFF
stays a multi-page TIFF. Re-running the same command resumes: finished
outputs are skipped, except those older than their hint file (a sidecar or
``--hints`` edited since is redone).

Hints (a guided model, one trained with ``hints=True``): ``--hints=FILE`` is the
hint file of the one ``--input`` photo (JSON: colour points, an optional
reference photo; format in ``keras_colorize/guidance/hint_file.py``, schema
``keras_colorize/guidance/hints.schema.json``). For a folder, each photo's
sidecar ``<photo>.hints.json`` (``scan.jpg`` -> ``scan.jpg.hints.json``) beside
it, or under ``--hints_dir`` at the same relative path, is used where present;
sidecars are never taken as images. ``--reference=PHOTO`` gives every photo the
palette of PHOTO (a hint file's own reference wins). A guided model without
hints colorizes automatically.

Exit status: 0 every image was colorized; 1 some images failed (each is
listed with its reason, a bad sidecar among them; ``colorize_report.json`` in
the output folder has the details); 2 bad arguments or configuration, found
before any image is read and before anything is written (a missing flag, a
model that is missing, not a Keras model or not a colorizer, an unwritable
output folder, two inputs with the same output name, a bad ``--hints`` or
``--reference``, ``--hints`` with a folder, hints or sidecars for a model
without hint inputs), printed as one line ``kc-colorize: error: ...``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib

from absl import flags

from keras_colorize import cli
from keras_colorize.inference import photos
from keras_colorize.inference import images
from keras_colorize import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_string("model", pretrained.DEFAULT,
                    f"Model: {pretrained.MODEL_HELP} (.keras file or SavedModel folder).")
flags.DEFINE_string("input", None, "An image file or a folder of images (recursive).")
flags.DEFINE_string("output", None, "Output folder (created; must be outside the input folder).")
flags.DEFINE_integer("batch_size", 4, "Images per network call.")
flags.DEFINE_enum("output_format", "same", list(images.OUTPUT_FORMATS),
                  "Output file format; 'same' follows each input's format.")
flags.DEFINE_bool("overwrite", False, "Redo outputs that already exist (default: skip them and resume; an output "
                  "older than its hint file is redone).")
flags.DEFINE_string("hints", None, "Hint file (JSON: colour points, optional reference photo) for the one --input "
                    "photo; needs a guided model.")
flags.DEFINE_string("hints_dir", None, "Folder of the hint sidecars (<relative path of the photo>.hints.json), "
                    "read instead of sidecars beside the photos.")
flags.DEFINE_string("reference", None, "Reference photo whose palette steers every photo (a hint file's own "
                    "reference wins); needs a guided model.")
flags.DEFINE_bool("sidecars", True, "Use each photo's hint sidecar <photo>.hints.json where present.")
flags.DEFINE_integer("quality", 95, "JPEG/WebP quality of the outputs.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def _wants_hints():
    """Hints given (a file, a reference, or sidecars in the folder): then no --model means the guided model."""
    if FLAGS.hints or FLAGS.hints_dir or FLAGS.reference:
        return True
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    root = pathlib.Path(FLAGS.input or "").expanduser()
    return FLAGS.sidecars and root.is_dir() and any(root.rglob("*" + hint_file.SIDECAR_SUFFIX))


def main(argv):
    cli.check_args(argv, required=("model", "input", "output"))
    config = photos.ColorizeConfig(
        model=FLAGS.model if FLAGS["model"].present else pretrained.default_model(_wants_hints()), input=FLAGS.input, output=FLAGS.output, batch_size=FLAGS.batch_size,
        output_format=FLAGS.output_format, overwrite=FLAGS.overwrite, quality=FLAGS.quality, hints=FLAGS.hints,
        hints_dir=FLAGS.hints_dir, reference=FLAGS.reference, sidecars=FLAGS.sidecars)
    summary = photos.run(config, progress=FLAGS.progress)  # ValueError: cli.run exits 2
    print(summary.text())
    return 0 if summary.ok else 1


def run():
    """Console-script entry point (``kc-colorize``); exit status 0, 1 or 2 as above."""
    cli.run(main, "kc-colorize")


if __name__ == "__main__":
    run()
