"""Convert a trained colorizer to TFLite and report on it; from a checkout, same as ``kc-export-tflite``.

    python export/export_tflite.py --model=runs/p3/best.keras --output_dir=models/tflite \
        --calibration_shards='data/shards/val-*-of-*.tfrecord' --photos=photos/landscapes

The command lives in :mod:`keras_colorize.export.export_tflite` (flags, exit
status 0 or 2); this shell only lets a checkout run it without installing.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from keras_colorize.export import export_tflite  # noqa: E402

if __name__ == "__main__":
    export_tflite.run()
