"""Keras callbacks of the trainer: paper metrics, image grid, throughput, checkpoints.

The trainer (:mod:`keras_colorize.training.trainer`) puts them in this order, because
each may add entries to the epoch ``logs`` the later ones read:

1. :class:`ThroughputMonitor`: step time, images/s and learning rate (console
   lines and TensorBoard scalars every N steps, epoch means into ``logs``).
2. :class:`PaperValidation`: the validation pass. Loss, a*b* MSE and class
   cross-entropy like training, plus the paper's Table 2 metrics computed by
   :func:`keras_colorize.evaluation.metrics.paper_metrics` (the evaluation code), written
   into ``logs`` as ``val_*``; and a TensorBoard grid of fixed validation
   images (gray input / prediction / ground truth).
3. :class:`DivergenceGuard`: stops the run (raises :class:`TrainingDiverged`)
   at the first non-finite batch loss or validation figure, before anything
   below can save the broken model.
4. :class:`BestModelSaver`: ``best.keras`` whenever ``val_mae`` improves.
5. :class:`ResumableCheckpoint`: weights + optimizer state + step every N steps
   and every epoch, which a restarted run resumes from (falling back past
   damaged checkpoints).
6. ``keras.callbacks.TensorBoard``: the epoch scalars in ``logs``.
"""

import datetime
import glob
import json
import math
import os
import re
import shutil
import time

import keras
import tensorflow as tf
from absl import logging

from keras_colorize import color
from keras_colorize import fileio
from keras_colorize.evaluation import metrics

#: The paper's Table 2 metrics, in the order they are printed.
PAPER_METRICS = ("mae", "mse_ab", "mse_lab")


# ---------------------------------------------------------------------------
# Validation with the paper's metrics
# ---------------------------------------------------------------------------


class ValidationEvaluator:
    """Runs a model over a finite validation dataset and averages per-image metrics.

    The forward pass runs outside any ``strategy.run`` (every worker evaluates
    the whole set locally, so no collective ops are needed and all workers get
    the same figures). The same object computes the "predict gray" baseline
    (a* = b* = 0) on the same images.

    Args:
      dataset: finite ``tf.data.Dataset`` of ``(L, {"ab", ["class"]})``.
      ab_loss, class_loss: the loss objects the model was compiled with
        (``class_loss`` None without fusion).
      class_loss_weight: lambda of the total loss.
      jit_compile: compile the forward pass with XLA.

    Example:
      >>> ev = ValidationEvaluator(val_ds, *losses, class_loss_weight=0.01)
      >>> ev.evaluate(model)["mae"], ev.gray_baseline()["mae"]
    """

    def __init__(self, dataset, ab_loss, class_loss=None, class_loss_weight=1.0, jit_compile=False):
        self.dataset = dataset
        self.ab_loss = ab_loss
        self.class_loss = class_loss
        self.class_loss_weight = float(class_loss_weight)
        self.jit_compile = jit_compile
        self._gray = None
        self._predict = None
        self._predict_model = None

    def predict_fn(self, model):
        """``model(L, training=False)`` as a (cached) tf.function."""
        if self._predict_model is not model:
            self._predict = tf.function(lambda l_input: model(l_input, training=False), jit_compile=self.jit_compile,
                                        reduce_retracing=True)
            self._predict_model = model
        return self._predict

    @tf.function
    def _batch_stats(self, l_input, targets, outputs):
        per_image = metrics.paper_metrics(l_input, targets["ab"], outputs["ab"])
        n = tf.cast(tf.shape(l_input)[0], tf.float32)
        sums = {name: tf.reduce_sum(value) for name, value in per_image.items()}
        # Losses are batch means: weight them by the batch size to average over images.
        sums["ab_loss"] = self.ab_loss(targets["ab"], outputs["ab"]) * n
        if self.class_loss is not None and "class" in outputs:
            labels = targets["class"]
            labelled = tf.reduce_sum(tf.cast(labels >= 0, tf.float32))
            sums["class_loss"] = self.class_loss(labels, outputs["class"]) * labelled
            sums["labelled"] = labelled
        sums["images"] = n
        return sums

    def evaluate(self, model):
        """Mean ``loss``, ``ab_loss``, ``class_loss`` and paper metrics over the dataset."""
        predict = self.predict_fn(model)
        totals = {}
        for inputs, targets in self.dataset:
            sums = self._batch_stats(lightness(inputs), targets, predict(inputs))
            for name, value in sums.items():
                totals[name] = totals.get(name, 0.0) + float(value)
        return self._means(totals)

    def gray_baseline(self):
        """Paper metrics of predicting a* = b* = 0 everywhere (computed once)."""
        if self._gray is None:
            totals = {}
            for inputs, targets in self.dataset:
                l_input = lightness(inputs)
                per_image = metrics.paper_metrics(l_input, targets["ab"], metrics.gray_prediction(l_input))
                for name, value in per_image.items():
                    totals[name] = totals.get(name, 0.0) + float(tf.reduce_sum(value))
                totals["images"] = totals.get("images", 0.0) + float(tf.shape(l_input)[0])
            self._gray = {name: totals[name] / totals["images"] for name in PAPER_METRICS}
        return dict(self._gray)

    def _means(self, totals):
        images = totals.get("images", 0.0)
        if images == 0:
            raise ValueError("the validation dataset yielded no images")
        result = {name: totals[name] / images for name in PAPER_METRICS}
        result["ab_loss"] = totals["ab_loss"] / images
        result["loss"] = result["ab_loss"]
        if "class_loss" in totals:
            labelled = totals["labelled"]
            result["class_loss"] = totals["class_loss"] / labelled if labelled else 0.0
            result["loss"] += self.class_loss_weight * result["class_loss"]
        result["images"] = int(images)
        return result


def lightness(inputs):
    """The L input of a batch's model inputs (a guided model's are a dict with "L")."""
    return inputs["L"] if isinstance(inputs, dict) else inputs


def image_grid(l_input, ab_pred, ab_true):
    """uint8 ``(3H, N*W, 3)`` grid: gray inputs, predictions, ground truth (one row each)."""
    rows = [
        color.float_to_uint8(color.l_to_gray_rgb(color.input_to_l(l_input))),
        color.float_to_uint8(color.model_to_rgb(l_input, ab_pred)),
        color.float_to_uint8(color.model_to_rgb(l_input, ab_true)),
    ]
    return tf.concat([tf.concat(tf.unstack(row), axis=1) for row in rows], axis=0)


class PaperValidation(keras.callbacks.Callback):
    """Adds ``val_loss``, ``val_ab_loss``, ``val_class_loss``, ``val_mae``,
    ``val_mse_ab``, ``val_mse_lab`` and ``val_gray_mae`` to the epoch logs, and
    writes an image grid of fixed validation images to TensorBoard.

    Args:
      evaluator: a :class:`ValidationEvaluator`.
      grid_batch: ``(L, ab)`` of the grid images (fixed for the whole run).
      log_dir: TensorBoard validation directory; None on non-chief workers.
    """

    def __init__(self, evaluator, grid_batch=None, log_dir=None):
        super().__init__()
        self.evaluator = evaluator
        self.grid_batch = grid_batch
        self.log_dir = log_dir
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        start = time.time()
        result = self.evaluator.evaluate(self.model)
        gray = self.evaluator.gray_baseline()
        if logs is not None:
            for name in ("loss", "ab_loss", "class_loss", *PAPER_METRICS):
                if name in result:
                    logs[f"val_{name}"] = result[name]
            logs["val_gray_mae"] = gray["mae"]
        logging.info(
            "epoch %d validation (%d images, %.1f s): MAE %.6f (gray %.6f), MSE ab %.6f, MSE Lab %.6f, loss %.6f",
            epoch + 1, result["images"], time.time() - start, result["mae"], gray["mae"],
            result["mse_ab"], result["mse_lab"], result["loss"])
        if self._writer is not None and self.grid_batch is not None:
            inputs, ab_true = self.grid_batch
            ab_pred = self.evaluator.predict_fn(self.model)(inputs)["ab"]
            l_input = lightness(inputs)
            with self._writer.as_default():
                tf.summary.image(
                    "val_grid", image_grid(l_input, ab_pred, ab_true)[None], step=epoch,
                    description="Rows: gray input, prediction, ground truth (fixed validation images).")
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()


# ---------------------------------------------------------------------------
# Throughput and console progress
# ---------------------------------------------------------------------------


class StepCounter(keras.callbacks.Callback):
    """The run's global train step (batches trained), across ``fit`` calls and restarts.

    Not ``optimizer.iterations``: under float16 loss scaling the optimizer
    skips (and does not count) steps whose gradients overflowed. Put it first
    in the callback list; the others read ``value`` in their batch hooks.
    :class:`ResumableCheckpoint` saves and restores it.
    """

    def __init__(self, value=0):
        super().__init__()
        self.value = value
        self._epoch_start = value

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.value

    def on_train_batch_end(self, batch, logs=None):
        self.value = self._epoch_start + batch + 1


def current_learning_rate(optimizer):
    """The optimizer's learning rate now (through a LossScaleOptimizer wrapper)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class ThroughputMonitor(keras.callbacks.Callback):
    """Step time, images/s and learning rate, on the console and in TensorBoard.

    Every ``log_every_steps`` optimizer steps it logs one console line and
    writes the scalars ``step_time_s``, ``images_per_second``,
    ``learning_rate`` and ``batch_loss`` at the global step. At the end of an
    epoch it adds the epoch means ``step_time_s`` and ``images_per_second`` to
    the logs. The first call of each ``fit`` (tracing and compilation) is left
    out of the means.

    Args:
      counter: the run's :class:`StepCounter`.
      global_batch_size: images per optimizer step over all replicas.
      steps_per_execution: steps per train-function call.
      total_steps: the run's last step, for the console.
      log_every_steps: interval of console lines and step scalars.
      log_dir: TensorBoard train directory; None on non-chief workers.
    """

    def __init__(self, counter, global_batch_size, steps_per_execution, total_steps, log_every_steps, log_dir=None):
        super().__init__()
        self.counter = counter
        self.global_batch_size = global_batch_size
        self.steps_per_execution = steps_per_execution
        self.total_steps = total_steps
        self.log_every_steps = max(1, log_every_steps)
        self.log_dir = log_dir
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._first_call = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_busy, self._epoch_steps = 0.0, 0
        self._window_start, self._window_busy, self._window_steps = time.time(), 0.0, 0
        self._last_logged_step = self.counter.value

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        busy = time.time() - self._batch_start
        steps = self.steps_per_execution
        if self._first_call:
            self._first_call = False
            logging.info("first train step (tracing%s) took %.1f s", " and compilation", busy)
            self._window_start = time.time()
        else:
            self._epoch_busy += busy
            self._epoch_steps += steps
            self._window_busy += busy
            self._window_steps += steps
        step = self.counter.value
        if step - self._last_logged_step >= self.log_every_steps and self._window_steps:
            self._log_window(step, (logs or {}).get("loss"))

    def _log_window(self, step, loss):
        elapsed = time.time() - self._window_start
        step_time = self._window_busy / self._window_steps
        images_per_second = self._window_steps * self.global_batch_size / max(elapsed, 1e-9)
        lr = current_learning_rate(self.model.optimizer)
        logging.info(
            "step %d/%d  loss %s  %.3f s/step  %.1f images/s  lr %.3g", step, self.total_steps,
            "n/a" if loss is None else f"{float(loss):.5f}", step_time, images_per_second, lr)
        if self._writer is not None:
            with self._writer.as_default():
                tf.summary.scalar("step_time_s", step_time, step=step)
                tf.summary.scalar("images_per_second", images_per_second, step=step)
                tf.summary.scalar("learning_rate", lr, step=step)
                if loss is not None:
                    tf.summary.scalar("batch_loss", float(loss), step=step)
        self._window_start, self._window_busy, self._window_steps = time.time(), 0.0, 0
        self._last_logged_step = step

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._epoch_steps:
            step_time = self._epoch_busy / self._epoch_steps
            logs["step_time_s"] = step_time
            logs["images_per_second"] = self.global_batch_size / step_time

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()


class EpochConsoleLogger(keras.callbacks.Callback):
    """One console line per epoch with the train and validation figures."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = ", ".join(f"{k} {v:.5g}" for k, v in sorted(logs.items()) if isinstance(v, (int, float)))
        logging.info("epoch %d/%d done in %.0f s: %s", epoch + 1, self.epochs, time.time() - self._start, shown)


# ---------------------------------------------------------------------------
# Divergence
# ---------------------------------------------------------------------------


class TrainingDiverged(RuntimeError):
    """The loss, a validation figure or the weights became NaN or infinite; nothing was saved after that."""


def non_finite_variables(variables):
    """Paths (names) of the floating-point ``variables`` holding a NaN or an infinity."""
    bad = []
    for variable in variables:
        value = getattr(variable, "value", variable)
        if not tf.as_dtype(value.dtype).is_floating:
            continue
        if not bool(tf.reduce_all(tf.math.is_finite(value))):
            bad.append(getattr(variable, "path", None) or variable.name)
    return bad


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, like ``keras.callbacks.TerminateOnNaN(raise_error=True)``.

    After every train step it checks the step's ``loss`` (the epoch's running
    mean in Keras 3, which turns non-finite at the first non-finite batch
    loss), and at the end of an epoch the epoch loss and the validation
    figures. It raises :class:`TrainingDiverged` naming the step and the last
    good checkpoint. Raising, rather than setting ``stop_training``, ends
    ``fit`` at once: the callbacks after this one (best model, checkpoint)
    and the trainer's ``final.keras`` never see the broken weights. Every
    worker of a multi-worker run sees the same (all-reduced) loss and the same
    validation figures, so all of them stop at the same step.

    Args:
      counter: the run's :class:`StepCounter`.
      checkpoint: the run's :class:`ResumableCheckpoint` (for the message), or None.
      monitors: epoch-log keys checked at the end of every epoch.
    """

    def __init__(self, counter, checkpoint=None, monitors=("loss", "val_loss", "val_mae")):
        super().__init__()
        self.counter = counter
        self.checkpoint = checkpoint
        self.monitors = tuple(monitors)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(f"the training loss is {float(loss)} at step {self.counter.value}")

    def on_epoch_end(self, epoch, logs=None):
        for name in self.monitors:
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(float(value)):
                self._stop(f"{name} is {float(value)} at the end of epoch {epoch + 1} (step {self.counter.value})")

    def _stop(self, what):
        last = self.checkpoint.last_good() if self.checkpoint is not None else None
        kept = (f"the last checkpoint (saved with finite weights) is {last[0]} (step {last[1]}), where a rerun "
                "resumes" if last else "no checkpoint was saved before, so a rerun starts from step 0")
        lr = current_learning_rate(self.model.optimizer) if self.model is not None else float("nan")
        raise TrainingDiverged(
            f"training diverged: {what} (learning rate {lr:.3g}); stopped without saving the model; {kept}. "
            "Lower --learning_rate (or add --warmup_steps) before rerunning")


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
    :class:`TrainingDiverged` instead of overwriting good checkpoints.

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
        bad = non_finite_variables(self.model.weights)
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
        bad = non_finite_variables(self.model.weights)
        if bad:
            last = self.last_good()
            raise TrainingDiverged(
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
