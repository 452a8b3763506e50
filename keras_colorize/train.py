r"""Trains the colorizer: ``python -m keras_colorize.train --flagfile=experiments/p3.flags``.

Thin binary: parses the flags of :mod:`keras_colorize.training.flags` into a
:class:`keras_colorize.training.trainer.TrainConfig` and calls
:func:`keras_colorize.training.trainer.train`. Rerunning the same command resumes
from the work directory's last checkpoint that loads.

Exit status: 0 done; 1 the run failed (it diverged: NaN or infinite loss,
nothing saved after that; or an unexpected error, with its traceback); 2 bad
flags, data or work directory (including one in use by another run), found
before training. Examples::

    python -m keras_colorize.train --flagfile=experiments/demo.flags   # CPU demo, ~5 min
    python -m keras_colorize.train --flagfile=experiments/p3.flags \
        --train_data=/data/places365/train-*-of-*.tfrecord --val_data=/data/places365/val-*-of-*.tfrecord
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=wrong-import-position

from keras_colorize.training import callbacks  # pylint: disable=wrong-import-position
from keras_colorize.training import flags as kc_flags  # pylint: disable=wrong-import-position
from keras_colorize.training import trainer  # pylint: disable=wrong-import-position


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = kc_flags.train_config()
        trainer.train(config)
    except trainer.ConfigError as e:
        # Bad flags, data or work directory, found before training: the message names the problem.
        print(f"keras_colorize.train: error: {e}", file=sys.stderr)
        sys.exit(2)
    except callbacks.TrainingDiverged as e:
        # The run failed: NaN/Inf loss or weights. Nothing broken was saved; the message names the step.
        print(f"keras_colorize.train: error: {e}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console-script entry point (``kc-train``)."""
    app.run(main)


if __name__ == "__main__":
    run()
