"""Convert a trained colorizer to TFLite (float32, float16, dynamic-range int8, full int8) and report on them.

    python export/export_tflite.py --model=runs/p3/model.keras --output_dir=models/tflite \
        --calibration_shards='data/shards/val-*-of-*.tfrecord' --photos=../shared/data/landscapes

writes ``models/tflite/colorizer_<variant>.tflite`` and, with ``--photos``,
prints the report table (size, LiteRT latency, quality against Keras and
ground truth) and writes it to ``models/tflite/report.json``.
Run one with ``python -m keras_colorize.export.litert_runner``.
Library: :func:`keras_colorize.export.export_lib.export_tflite`.
"""

import pathlib
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from keras_colorize import cli  # noqa: E402
from keras_colorize import pretrained  # noqa: E402
from keras_colorize.export import export_lib  # noqa: E402
from keras_colorize.export import tflite  # noqa: E402

_MODEL = flags.DEFINE_string("model", "", f"Model: {pretrained.MODEL_HELP} (.keras). Empty: the --preset's "
                             "untrained network (BatchNormalization statistics re-estimated on the calibration "
                             "shards or photos).")
_PRESET = flags.DEFINE_enum("preset", "paper", ["paper", "tiny"], "Preset used when --model is empty.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for <name>_<variant>.tflite and report.json.")
_VARIANTS = flags.DEFINE_list("variants", list(tflite.VARIANTS),
                              f"Subset of {list(tflite.ALL_VARIANTS)}; default {list(tflite.VARIANTS)} (int16x8 is "
                              "accurate but runs on slow reference kernels).")
_CALIBRATION = flags.DEFINE_string("calibration_shards", "",
                                   "Glob of TFRecord shards (make_shards) for full-integer calibration; "
                                   "this or --calibration_photos is required for the int8 and int16x8 variants.")
_CALIBRATION_PHOTOS = flags.DEFINE_string(
    "calibration_photos", "", "Folder of real colour photos for full-integer calibration (instead of shards). "
    "Never the photos you report on.")
_CLIP = flags.DEFINE_float(
    "clip_percentile", tflite.DEFAULT_CLIP_PERCENTILE,
    "int8: each activation range is the central this-percent of the calibration values (outliers clipped); "
    "0 = plain min/max ranges.")
_CALIBRATION_STEPS = flags.DEFINE_integer("calibration_steps", tflite.DEFAULT_CALIBRATION_STEPS,
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
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = export_lib.TfliteExportConfig(
        output_dir=_OUTPUT_DIR.value, model_path=_MODEL.value, preset=_PRESET.value, variants=tuple(_VARIANTS.value),
        calibration_shards=_CALIBRATION.value, calibration_photos=_CALIBRATION_PHOTOS.value,
        calibration_steps=_CALIBRATION_STEPS.value, clip_percentile=_CLIP.value or None, photos_dir=_PHOTOS.value,
        num_photos=_NUM_PHOTOS.value, report=_REPORT.value, num_threads=_THREADS.value, timed_runs=_RUNS.value,
        overwrite=_OVERWRITE.value, name=_NAME.value)
    try:
        result = export_lib.export_tflite(config)
    except (ValueError, FileExistsError) as e:  # bad arguments or configuration: exit status 2, one line
        cli.fail("export_tflite", e)
    for variant, path in result.paths.items():
        print(f"{variant}: {path}")


if __name__ == "__main__":
    cli.run(main, "export_tflite")  # unparsable or missing flags: one line, exit status 2
