r"""Trains the colorizer: ``python -m keras_colorize.train --flagfile=experiments/p3.flags``.

Thin binary: parses the flags of :mod:`keras_colorize.training.flags` into a
:class:`keras_colorize.training.trainer.TrainConfig` and calls
:func:`keras_colorize.training.trainer.train`. Rerunning the same command resumes
from the work directory's last checkpoint that loads.

Exit status: 0 done; 1 the run failed (it diverged: NaN or infinite loss,
nothing saved after that; or an unexpected error, with its traceback); 2 bad
flags, data or work directory (including one in use by another run), found
before training, as one line ``kc-train: error: ...``. Examples::

    python -m keras_colorize.train --flagfile=experiments/demo.flags   # CPU demo, ~5 min
    python -m keras_colorize.train --flagfile=experiments/p3.flags \
        --train_data=/data/places365/train-*-of-*.tfrecord --val_data=/data/places365/val-*-of-*.tfrecord
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_colorize import cli  # pylint: disable=wrong-import-position
from keras_colorize.training import monitors  # pylint: disable=wrong-import-position
from keras_colorize.training import flags as kc_flags  # pylint: disable=wrong-import-position
from keras_colorize.training import trainer  # pylint: disable=wrong-import-position

COMMAND = "kc-train"


def main(argv):
    cli.check_args(argv)
    try:
        trainer.train(kc_flags.train_config())  # ConfigError (bad flags, data, work directory): cli.run exits 2
    except monitors.TrainingDiverged as e:
        # The run failed: NaN/Inf loss or weights. Nothing broken was saved; the message names the step.
        print(f"{COMMAND}: error: {e}", file=sys.stderr)
        return 1
    return 0


def run():
    """Console-script entry point (``kc-train``); exit status 0, 1 or 2 as above."""
    # Only ConfigError is a usage error: a ValueError raised during training is a bug and keeps its traceback.
    cli.run(main, COMMAND, usage_errors=(trainer.ConfigError,))


if __name__ == "__main__":
    run()
