r"""Convert a trained colorizer to TFLite (float32, float16, dynamic-range int8, full int8): ``kc-export-tflite``.

    kc-export-tflite --model=runs/p3/best.keras --output_dir=models/tflite \
        --calibration_shards='data/shards/val-*-of-*.tfrecord' --photos=photos/landscapes

(also ``python -m keras_colorize.export.export_tflite`` or, from a checkout,
``python export/export_tflite.py``) writes
``models/tflite/colorizer_<variant>.tflite`` and, with ``--photos``, prints the
report table (size, LiteRT latency, quality against Keras and ground truth)
and writes it to ``models/tflite/report.json``. The int8 variant with range
clipping (the default) and the report run models in LiteRT: they need the
``[litert]`` extra (``ai-edge-litert``).
Run one with ``kc-litert``. Library: :func:`keras_colorize.export.export_lib.export_tflite`.

A guided model (trained with ``--hints``) converts to the guided variant of
each file (inputs ``L``, ``hints``, ``reference``; ``kc-litert --hints``): full-int8
calibration feeds hints simulated from the calibration photos' ground truth,
and the report measures every variant against Keras without and with hints.

Exit status: 0 written; 2 bad arguments or configuration (a missing or
unparsable flag, an unknown variant, int8 without calibration data, existing
files without ``--overwrite``, the ``[litert]`` extra not installed), as one
line ``kc-export-tflite: error: ...``, before any conversion.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from keras_colorize import cli  # noqa: E402
from keras_colorize import pretrained  # noqa: E402
from keras_colorize.export import settings  # noqa: E402 - TensorFlow only once the flags are parsed

COMMAND = "kc-export-tflite"

_MODEL = flags.DEFINE_string("model", "", f"Model: {pretrained.MODEL_HELP} (.keras). Empty: the --preset's "
                             "untrained network (BatchNormalization statistics re-estimated on the calibration "
                             "shards or photos).")
_PRESET = flags.DEFINE_enum("preset", "paper", ["paper", "tiny"], "Preset used when --model is empty.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for <name>_<variant>.tflite and report.json.")
_VARIANTS = flags.DEFINE_list("variants", list(settings.VARIANTS),
                              f"Subset of {list(settings.ALL_VARIANTS)}; default {list(settings.VARIANTS)} (int16x8 is "
                              "accurate but runs on slow reference kernels).")
_CALIBRATION = flags.DEFINE_string("calibration_shards", "",
                                   "Glob of TFRecord shards (make_shards) for full-integer calibration; "
                                   "this or --calibration_photos is required for the int8 and int16x8 variants.")
_CALIBRATION_PHOTOS = flags.DEFINE_string(
    "calibration_photos", "", "Folder of real colour photos for full-integer calibration (instead of shards). "
    "Never the photos you report on.")
_CLIP = flags.DEFINE_float(
    "clip_percentile", settings.DEFAULT_CLIP_PERCENTILE,
    "int8: each activation range is the central this-percent of the calibration values (outliers clipped); "
    "0 = plain min/max ranges.")
_CALIBRATION_STEPS = flags.DEFINE_integer("calibration_steps", settings.DEFAULT_CALIBRATION_STEPS,
                                          "Calibration images (one per step).")
_PHOTOS = flags.DEFINE_string("photos", "", "Folder of real colour photos for the report; no report if empty.")
_NUM_PHOTOS = flags.DEFINE_integer("num_photos", 32, "Photos used for the report's quality columns.")
_REPORT = flags.DEFINE_string("report", "", "Report JSON path (default <output_dir>/report.json).")
_THREADS = flags.DEFINE_integer("num_threads", 2, "LiteRT interpreter threads for the latency measurements.")
_RUNS = flags.DEFINE_integer("timed_runs", 30, "Timed runs per variant (median and minimum reported).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing .tflite files.")
_NAME = flags.DEFINE_string("name", "colorizer", "File-name prefix.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    cli.check_args(argv)
    settings.check_variants(_VARIANTS.value)  # ValueError: cli.run exits 2
    if _PHOTOS.value or ("int8" in _VARIANTS.value and _CLIP.value):  # LiteRT runs: check before any conversion
        cli.require_extra("ai_edge_litert.interpreter", "litert")
    from keras_colorize.export import export_lib  # noqa: PLC0415
    config = export_lib.TfliteExportConfig(
        output_dir=_OUTPUT_DIR.value, model_path=_MODEL.value, preset=_PRESET.value, variants=tuple(_VARIANTS.value),
        calibration_shards=_CALIBRATION.value, calibration_photos=_CALIBRATION_PHOTOS.value,
        calibration_steps=_CALIBRATION_STEPS.value, clip_percentile=_CLIP.value or None, photos_dir=_PHOTOS.value,
        num_photos=_NUM_PHOTOS.value, report=_REPORT.value, num_threads=_THREADS.value, timed_runs=_RUNS.value,
        overwrite=_OVERWRITE.value, name=_NAME.value)
    result = export_lib.export_tflite(config)  # ValueError, FileExistsError: cli.run exits 2
    for variant, path in result.paths.items():
        print(f"{variant}: {path}")
    return 0


def run():
    """Console-script entry point (``kc-export-tflite``); exit status 0 or 2 as above."""
    cli.run(main, COMMAND)


if __name__ == "__main__":
    run()
