"""What the training tests share: a tiny run's config, flagfile parsing, a preflight failure check.

The small demo shards they train on are the ``shards`` fixture of conftest.py."""

import os

import pytest
from absl import flags as absl_flags

from keras_colorize.training import flags as kc_flags
from keras_colorize.training import trainer


def tiny_config(shards, work_dir, **overrides):
    values = dict(
        work_dir=str(work_dir), train_data=shards["train"], val_data=shards["val"], model_preset="tiny",
        num_classes=5, batch_size=4, epochs=2, steps_per_epoch=3, val_steps=2, val_batch_size=4,
        checkpoint_every_steps=2, log_every_steps=1, grid_images=3, learning_rate=0.003,
    )
    values.update(overrides)
    return trainer.TrainConfig(**values)


def parse_flagfile(path):
    """Parses a flagfile with the binary's flags (from the repository root, like the README)."""
    flag_values = absl_flags.FLAGS
    flag_values.unparse_flags()
    flag_values(["train", f"--flagfile={path}"])
    try:
        return kc_flags.train_config(flag_values)
    finally:
        flag_values.unparse_flags()


def assert_fails_before_training(config, message):
    """``trainer.train(config)`` raises ConfigError matching ``message`` and writes no checkpoint."""
    with pytest.raises(trainer.ConfigError, match=message):
        trainer.train(config)
    assert not os.path.exists(os.path.join(config.work_dir, "checkpoints"))
