"""Callbacks that watch a training run: the step counter, throughput, console lines, divergence.

:class:`StepCounter` is the run's global step; :class:`ThroughputMonitor` logs step time,
images/s and learning rate (console and TensorBoard); :class:`EpochConsoleLogger` one
line an epoch; :class:`DivergenceGuard` stops the run (:class:`TrainingDiverged`) at the
first non-finite loss, validation figure or weight, before anything can save the broken model.
"""

import math
import time

import keras
import tensorflow as tf
from absl import logging



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
