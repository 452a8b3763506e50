"""Validation during training: the paper's metrics on the validation set, and an image grid.

:class:`ValidationEvaluator` runs a model over the validation set and averages the
paper's Table 2 metrics (computed by :func:`keras_colorize.evaluation.metrics.paper_metrics`,
the evaluation code); :class:`PaperValidation` is the callback that writes them into the
epoch ``logs`` as ``val_*`` and a TensorBoard grid of fixed validation images
(gray input / prediction / ground truth).
"""

import time

import keras
import tensorflow as tf
from absl import logging

from keras_colorize import color
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
