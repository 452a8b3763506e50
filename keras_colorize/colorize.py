r"""Colorize photographs at full resolution: ``kc-colorize`` / ``python -m keras_colorize.colorize``.

    python -m keras_colorize.colorize --model=runs/demo/model.keras \
        --input=scans/ --output=colorized/

``--input`` is one image or a folder (searched recursively; the output folder
mirrors its tree). Outputs keep each input's size, format and alpha. Re-running
the same command resumes: finished outputs are skipped. Exit status 0 when
every image was colorized, 1 if any failed (each is listed with its reason;
``colorize_report.json`` in the output folder has the details), 2 for bad
arguments.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags

from keras_colorize import cli
from keras_colorize import colorize_lib
from keras_colorize import images

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, ".keras model file or SavedModel folder.")
flags.DEFINE_string("input", None, "An image file or a folder of images (recursive).")
flags.DEFINE_string("output", None, "Output folder (created; must be outside the input folder).")
flags.DEFINE_integer("batch_size", 4, "Images per network call.")
flags.DEFINE_enum("output_format", "same", list(images.OUTPUT_FORMATS),
                  "Output file format; 'same' follows each input's format.")
flags.DEFINE_bool("overwrite", False, "Redo outputs that already exist (default: skip them and resume).")
flags.DEFINE_integer("quality", 95, "JPEG/WebP quality of the outputs.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
    cli.check_args(argv, required=("model", "input", "output"))
    config = colorize_lib.ColorizeConfig(
        model=FLAGS.model, input=FLAGS.input, output=FLAGS.output, batch_size=FLAGS.batch_size,
        output_format=FLAGS.output_format, overwrite=FLAGS.overwrite, quality=FLAGS.quality)
    try:
        summary = colorize_lib.run(config, progress=FLAGS.progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.text())
    return 0 if summary.ok else 1


def run():
    """Console-script entry point (``kc-colorize``)."""
    app.run(main)


if __name__ == "__main__":
    run()
