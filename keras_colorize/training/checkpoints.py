"""What a training run writes to resume and to keep its best model.

:class:`BestModelSaver` writes ``best.keras`` (atomically, :func:`save_model_atomic`) whenever
``val_mae`` improves; :class:`ResumableCheckpoint` writes weights, optimizer state and step every
N steps and every epoch, which a restarted run resumes from, falling back past damaged checkpoints
(:class:`CheckpointError` when none loads).
"""

import datetime
import glob
import json
import math
import os
import re
import shutil

import keras
import tensorflow as tf
from absl import logging

from keras_colorize import fileio
from keras_colorize.training import monitors


# ---------------------------------------------------------------------------
# Best model and resumable checkpoints
# ---------------------------------------------------------------------------


class BestModelSaver(keras.callbacks.Callback):
    """Saves the model as ``.keras`` whenever ``logs[monitor]`` reaches a new minimum.

    The best value and epoch are kept in ``<path>.json`` beside the model, so
    a resumed run keeps comparing against the best of the whole run. Writes go
    to a temporary file first and are then renamed: a crash never leaves a
    half-written model.

    Args:
      path: ``.../best.keras``.
      counter: the run's :class:`StepCounter`.
      monitor: a key of the epoch logs (``val_mae``).
      enabled: False on non-chief workers (nothing is written).
    """

    def __init__(self, path, counter, monitor="val_mae", enabled=True):
        super().__init__()
        self.counter = counter
        self.path = path
        self.monitor = monitor
        self.enabled = enabled
        self.info_path = os.path.splitext(path)[0] + ".json"
        self.best = None
        if os.path.exists(self.info_path):
            with open(self.info_path) as f:
                self.best = json.load(f)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not self.enabled:
            return
        if not math.isfinite(float(value)):
            # A NaN compares False with everything: without this check it would replace the best model.
            logging.warning("%s is %s at epoch %d: best model not saved", self.monitor, value, epoch + 1)
            return
        if self.best is not None and value >= self.best[self.monitor]:
            return
        self.best = {self.monitor: float(value), "epoch": epoch + 1, "step": self.counter.value}
        save_model_atomic(self.model, self.path)
        fileio.atomic_write_text(self.info_path, json.dumps(self.best, indent=1))
        logging.info("new best %s %.6f at epoch %d: saved %s", self.monitor, value, epoch + 1, self.path)


def save_model_atomic(model, path):
    """Saves architecture and weights as ``.keras`` through :func:`keras_colorize.fileio.atomic_path`.

    ``path`` is replaced only by a complete file; if the save fails (a full
    disk, a killed process) the previous file stays and the temporary file
    is removed. A fresh copy of the model is saved rather than the training model itself:
    no optimizer state (Adam's two slots per weight would triple the file;
    resuming uses the checkpoints), no training-only settings such as
    synchronized BatchNorm, and the default dtype policy of the loading process.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    with fileio.atomic_path(path, keep_suffix=True) as tmp:
        clone.save(tmp)


class ResumableCheckpoint(keras.callbacks.Callback):
    """TF checkpoints of weights, optimizer state and step; restores the latest.

    A ``tf.train.Checkpoint`` of the model, its optimizer (loss scale
    included) and the global step of a :class:`StepCounter` is saved every
    ``every_steps`` steps and at the end of every epoch. TF writes the data
    files before the ``checkpoint`` index file, so a crash during a save leaves
    the previous checkpoint usable. On multi-worker runs every worker saves
    (saving may need collective ops), but only the chief into ``directory``;
    the others into a temporary directory that is removed afterwards.

    This plays the role of ``keras.callbacks.BackupAndRestore(save_freq=N)``
    but is atomic, multi-worker safe and keeps the exact step, so the trainer
    can resume in the middle of an epoch.

    Damage: :meth:`restore` tries the ``ckpt-<step>`` files newest first (found
    by name, so an empty or garbled ``checkpoint`` state file does not hide
    them) and resumes from the newest that loads with finite weights. Each one
    skipped gets a log line with the reason; the chief then moves it into
    ``damaged/<name>-<time>/`` (nothing is deleted) and rewrites the state
    file. If checkpoints exist but none loads, it raises
    :class:`CheckpointError` and moves nothing: the cause may be shared by all
    of them (a changed model), and starting over at step 0 is the user's call.
    Before every save the weights are checked: a non-finite one raises
    :class:`monitors.TrainingDiverged` instead of overwriting good checkpoints.

    Args:
      directory: ``<work_dir>/checkpoints``.
      counter: the run's :class:`StepCounter`.
      every_steps: save interval in steps (0 = only every epoch).
      keep: checkpoints kept.
      is_chief: whether this worker owns ``directory``.
      worker_dir: where a non-chief worker writes its throw-away copies.
    """

    def __init__(self, directory, counter, every_steps, keep=3, is_chief=True, worker_dir=None):
        super().__init__()
        self.directory = directory
        self.counter = counter
        self.every_steps = every_steps
        self.keep = keep
        self.is_chief = is_chief
        self.worker_dir = worker_dir
        self._manager = None
        self._last_saved = None
        self._last_path = None

    def attach(self, model):
        """Binds to a compiled model whose optimizer variables exist."""
        self.set_model(model)
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=self._step)
        return self

    def _make_manager(self):
        # Made after restore: the manager reads the state file, and fails on an empty one.
        target = self.directory if self.is_chief else self.worker_dir
        return tf.train.CheckpointManager(self._checkpoint, target, max_to_keep=self.keep, checkpoint_name="ckpt")

    def last_good(self):
        """``(path, step)`` of the checkpoint restored or last saved by this run, or None."""
        return (self._last_path, self._last_saved) if self._last_path else None

    def restore(self):
        """Restores the newest checkpoint of ``directory`` that loads; returns its step (0 if none).

        Raises:
          CheckpointError: there are checkpoints, but none of them loads.
        """
        candidates = checkpoint_files(self.directory)
        state_damage = self._state_file_damage() if self.is_chief else None
        skipped = []
        for step, prefix in candidates:
            reason = self._try_restore(prefix)
            if reason is None:
                break
            logging.warning("checkpoint %s skipped: %s", prefix, reason)
            skipped.append((prefix, reason))
        else:
            if candidates:
                raise CheckpointError(
                    f"no checkpoint in {self.directory} loads ("
                    + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped)
                    + "); nothing was moved. To start this run over from step 0, move or delete that directory "
                    "and rerun (best.keras is kept); or use another --work_dir")
            if state_damage and self.is_chief:
                self._move_aside([os.path.join(self.directory, "checkpoint")], "checkpoint", state_damage)
            self._manager = self._make_manager()
            return 0
        if self.is_chief:
            for bad, reason in skipped:
                self._move_aside(glob.glob(glob.escape(bad) + ".*"), os.path.basename(bad), reason)
            if state_damage:
                self._move_aside([os.path.join(self.directory, "checkpoint")], "checkpoint", state_damage)
            state = None if state_damage else tf.train.get_checkpoint_state(self.directory)
            named = os.path.basename(state.model_checkpoint_path) if state is not None else None
            if skipped or named != os.path.basename(prefix):
                # The state file lists what is left, newest last, so rotation goes on from here.
                kept = [os.path.basename(p) for s_, p in sorted(candidates) if s_ <= step]
                tf.compat.v1.train.update_checkpoint_state(self.directory, kept[-1], kept)
        restored = int(self._step.numpy())
        self._manager = self._make_manager()
        self.counter.value = restored
        self._last_saved, self._last_path = restored, prefix
        logging.info("restored %s (step %d)", prefix, restored)
        return restored

    def _try_restore(self, prefix):
        """None if ``prefix`` restored with finite weights, else the reason (one line)."""
        try:
            self._checkpoint.restore(prefix).assert_existing_objects_matched()
        except Exception as e:  # pylint: disable=broad-except
            # TF raises OpError subclasses, IndexError, ValueError or AssertionError for the damage seen here.
            return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        bad = monitors.non_finite_variables(self.model.weights)
        if bad:
            return f"{len(bad)} weights hold NaN or infinite values (e.g. {bad[0]}): saved after the run diverged"
        return None

    def _state_file_damage(self):
        """Why the ``checkpoint`` state file cannot be read, or None (also if there is none)."""
        path = os.path.join(self.directory, "checkpoint")
        if not os.path.exists(path):
            return None
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except Exception as e:  # pylint: disable=broad-except
            return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
        if state is None or not state.model_checkpoint_path:
            return "it names no checkpoint (empty or not a CheckpointState)"
        return None

    def _move_aside(self, paths, name, reason):
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        target = os.path.join(self.directory, "damaged", f"{name}-{stamp}")
        os.makedirs(target, exist_ok=True)
        for path in paths:
            if os.path.exists(path):
                os.replace(path, os.path.join(target, os.path.basename(path)))
        fileio.atomic_write_text(os.path.join(target, "REASON.txt"), reason + "\n")
        logging.warning("moved %s aside into %s (%s)", name, target, reason)

    def on_train_batch_end(self, batch, logs=None):
        if not self.every_steps:
            return
        step = self.counter.value
        last = self._last_saved or 0
        if step // self.every_steps > last // self.every_steps:
            self.save(step)

    def on_epoch_end(self, epoch, logs=None):
        self.save(self.counter.value)

    def save(self, step):
        if step == self._last_saved:
            return
        bad = monitors.non_finite_variables(self.model.weights)
        if bad:
            last = self.last_good()
            raise monitors.TrainingDiverged(
                f"training diverged: {len(bad)} weights hold NaN or infinite values at step {step} "
                f"(e.g. {bad[0]}); stopped without saving; "
                + (f"the last checkpoint (saved with finite weights) is {last[0]} (step {last[1]})" if last
                   else "no checkpoint was saved")
                + ". Lower --learning_rate before rerunning")
        if self._manager is None:
            self._manager = self._make_manager()
        self._step.assign(step)
        path = self._manager.save(checkpoint_number=step)
        self._last_saved = step
        if self.is_chief:
            self._last_path = path
            logging.info("checkpoint %s", path)
        elif self.worker_dir:
            shutil.rmtree(self.worker_dir, ignore_errors=True)


class CheckpointError(ValueError):
    """A work directory's checkpoints exist but none of them can be restored."""


def checkpoint_files(directory):
    """``[(step, prefix)]`` of the ``ckpt-<step>`` checkpoints in ``directory``, newest first."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return sorted(found, reverse=True)
