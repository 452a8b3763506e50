r"""Export a trained colorizer as a SavedModel that TF Serving serves as it is: ``kc-export-saved-model``.

    kc-export-saved-model --model=runs/p3/best.keras --output=models/colorizer --version=1 \
        --class_names=experiments/landscape_classes.txt

(also ``python -m keras_colorize.export.export_saved_model`` or, from a
checkout, ``python export/export_saved_model.py``) writes
``models/colorizer/1/`` (``saved_model.pb``, ``variables/``, TF Serving warmup
request) atomically; ``--output`` is TF Serving's ``base_path``. The warmup
request needs the ``[serving]`` extra (``tensorflow-serving-api``); ``--nowarmup``
exports without it, with the core install.
Signatures: see :mod:`keras_colorize.export.saved_model` and docs/deployment.md,
"SavedModel for TF Serving". Library: :func:`keras_colorize.export.export_lib.export_saved_model`.

Exit status: 0 written; 2 bad arguments or configuration (a missing or
unparsable flag, a model that is missing or not a colorizer, an existing
version without ``--overwrite``, the ``[serving]`` extra not installed), as one
line ``kc-export-saved-model: error: ...``; nothing is written then.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from keras_colorize import cli  # noqa: E402
from keras_colorize import pretrained  # noqa: E402
from keras_colorize.export import settings  # noqa: E402 - TensorFlow only once the flags are parsed

COMMAND = "kc-export-saved-model"

_MODEL = flags.DEFINE_string("model", "", f"Model: {pretrained.MODEL_HELP} (.keras). "
                             "Empty: the --preset's untrained network.")
_PRESET = flags.DEFINE_enum("preset", "paper", ["paper", "tiny"], "Preset used when --model is empty.")
_OUTPUT = flags.DEFINE_string("output", None, "Model base folder, <base>/<model_name> (TF Serving's base_path).")
_VERSION = flags.DEFINE_integer("version", None, "Version number: the folder <output>/<version> TF Serving loads.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing <output>/<version>.")
_FORMAT = flags.DEFINE_enum("output_format", "jpeg", list(settings.OUTPUT_FORMATS), "Encoding of colorized_bytes.")
_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of colorized_bytes (1-100).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", settings.DEFAULT_MAX_PIXELS,
                                   "Largest accepted image (height*width); larger requests get INVALID_ARGUMENT.")
_CLASSES = flags.DEFINE_string("class_names", "",
                               "Class-list file in class-index order (e.g. experiments/landscape_classes.txt); "
                               "adds a class_name output. Default for a bundled --model: its own class list.")
_WARMUP = flags.DEFINE_bool("warmup", True, "Write TF Serving's warm-up request into assets.extra/ (needs the "
                             "[serving] extra); --nowarmup exports without it, with the core install.")
flags.mark_flags_as_required(["output", "version"])


def main(argv):
    cli.check_args(argv)
    if _WARMUP.value:  # before any work
        cli.require_extra("tensorflow_serving.apis.predict_pb2", "serving",
                          hint="for the TF Serving warm-up request; or pass --nowarmup")
    from keras_colorize.export import export_lib  # noqa: PLC0415
    config = export_lib.SavedModelExportConfig(
        output=_OUTPUT.value, version=_VERSION.value, model_path=_MODEL.value, preset=_PRESET.value,
        overwrite=_OVERWRITE.value, output_format=_FORMAT.value, jpeg_quality=_QUALITY.value,
        max_pixels=_MAX_PIXELS.value, class_names_file=_CLASSES.value, warmup=_WARMUP.value)
    path = export_lib.export_saved_model(config)  # ValueError, FileExistsError: cli.run exits 2
    print(f"SavedModel written to {path}")
    print(f"inspect: saved_model_cli show --all --dir {path}")
    return 0


def run():
    """Console-script entry point (``kc-export-saved-model``); exit status 0 or 2 as above."""
    cli.run(main, COMMAND)


if __name__ == "__main__":
    run()
