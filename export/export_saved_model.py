"""Export a trained colorizer as a SavedModel for TF Serving; from a checkout, same as ``kc-export-saved-model``.

    python export/export_saved_model.py --model=runs/p3/best.keras --output=models/colorizer --version=1 \
        --class_names=experiments/landscape_classes.txt

The command lives in :mod:`keras_colorize.export.export_saved_model` (flags,
exit status 0 or 2); this shell only lets a checkout run it without installing.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from keras_colorize.export import export_saved_model  # noqa: E402

if __name__ == "__main__":
    export_saved_model.run()
