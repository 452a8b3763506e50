"""Export a trained colorizer as a SavedModel that TF Serving serves as it is.

    python export/export_saved_model.py --model=runs/p3/model.keras --output=models/colorizer --version=1 \
        --class_names=experiments/landscape_classes.txt

writes ``models/colorizer/1/`` (``saved_model.pb``, ``variables/``) atomically;
``--output`` is TF Serving's ``base_path``. Signatures: see
``keras_colorize/export/saved_model.py`` and the README's Export section.
Library: :func:`keras_colorize.export.export_lib.export_saved_model`.
"""

import pathlib
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from keras_colorize import cli  # noqa: E402
from keras_colorize import pretrained  # noqa: E402
from keras_colorize.export import export_lib  # noqa: E402
from keras_colorize.export import image_ops  # noqa: E402

_MODEL = flags.DEFINE_string("model", "", f"Model: {pretrained.MODEL_HELP} (.keras). "
                             "Empty: the --preset's untrained network.")
_PRESET = flags.DEFINE_enum("preset", "paper", ["paper", "tiny"], "Preset used when --model is empty.")
_OUTPUT = flags.DEFINE_string("output", None, "Model base folder, <base>/<model_name> (TF Serving's base_path).")
_VERSION = flags.DEFINE_integer("version", None, "Version number: the folder <output>/<version> TF Serving loads.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing <output>/<version>.")
_FORMAT = flags.DEFINE_enum("output_format", "jpeg", list(image_ops.OUTPUT_FORMATS), "Encoding of colorized_bytes.")
_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of colorized_bytes (1-100).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", image_ops.DEFAULT_MAX_PIXELS,
                                   "Largest accepted image (height*width); larger requests get INVALID_ARGUMENT.")
_CLASSES = flags.DEFINE_string("class_names", "",
                               "Class-list file in class-index order (e.g. experiments/landscape_classes.txt); "
                               "adds a class_name output. Default for a bundled --model: its own class list.")
flags.mark_flags_as_required(["output", "version"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = export_lib.SavedModelExportConfig(
        output=_OUTPUT.value, version=_VERSION.value, model_path=_MODEL.value, preset=_PRESET.value,
        overwrite=_OVERWRITE.value, output_format=_FORMAT.value, jpeg_quality=_QUALITY.value,
        max_pixels=_MAX_PIXELS.value, class_names_file=_CLASSES.value)
    try:
        path = export_lib.export_saved_model(config)
    except (ValueError, FileExistsError) as e:  # bad arguments or configuration: exit status 2, one line
        cli.fail("export_saved_model", e)
    print(f"SavedModel written to {path}")
    print(f"inspect: saved_model_cli show --all --dir {path}")


if __name__ == "__main__":
    cli.run(main, "export_saved_model")  # unparsable or missing flags: one line, exit status 2
