"""Two-head loss: MSE(ab) + lambda * cross-entropy(class), in float32.

The a*b* term is the paper's mean squared error by default; ``ab_loss="l1"``
(mean absolute error, whose minimizer is the conditional median rather than
the mean, so less grayish on ambiguous pixels and aimed at the paper's own
MAE metric) and ``"huber"`` (squared near 0, absolute beyond ``delta``) are
offered for from-scratch training on small budgets. ``"rebalanced_ce"`` is
Zhang, Isola and Efros's (ECCV 2016) class-rebalanced soft-encoded
cross-entropy over a*b* bins, for models with an "ab_bins" output (the
``zhang2016`` preset, and the U-Net with its bins head): it is the loss of
"ab_bins", and "ab" (the annealed mean) keeps an MSE of weight 0, logged for
comparison with the regression models.

The paper trains with the a*b* mean squared error plus the scene-class
cross-entropy weighted by lambda: 1 in P1, P2 and P4, 0.01 in P3 ("divide the
classification loss by 100"), and no class loss without fusion. Images
without a scene label carry class -1 and add nothing to the class loss; the
class loss is averaged over the labelled images of the batch (0, not NaN,
when there are none).
"""

import keras

from keras_colorize.models import ab_bins as bins_lib

#: Label of images without a scene class.
UNLABELLED = -1


#: a*b* loss names: the paper's MSE first.
AB_LOSSES = ("mse", "l1", "huber", "rebalanced_ce")
#: The one a*b* loss of models with an "ab_bins" output.
BINS_LOSS = "rebalanced_ce"
#: Huber's delta in model units ((ab + 128) / 255): about 5 a*b* units.
HUBER_DELTA = 0.02


def ab_loss(kind="mse"):
    """The a*b* loss on the sigmoid output (float32): ``mse`` (paper), ``l1`` or ``huber``."""
    if kind == "mse":
        return keras.losses.MeanSquaredError(name="ab_mse", dtype="float32")
    if kind == "l1":
        return keras.losses.MeanAbsoluteError(name="ab_l1", dtype="float32")
    if kind == "huber":
        return keras.losses.Huber(delta=HUBER_DELTA, name="ab_huber", dtype="float32")
    if kind == BINS_LOSS:
        raise ValueError(f"ab_loss={kind!r} is the loss of the 'ab_bins' output; use colorizer_losses")
    raise ValueError(f"ab_loss must be one of {AB_LOSSES}, got {kind!r}")


def has_bins_head(config):
    """True for model configs whose model has an "ab_bins" output (they carry an a*b* ``prior``)."""
    return hasattr(config, "prior")


def class_loss():
    """Sparse cross-entropy on the softmax output, ignoring class -1."""
    return keras.losses.SparseCategoricalCrossentropy(
        ignore_class=UNLABELLED, name="class_ce", dtype="float32")


def colorizer_losses(config, class_weight=1.0, ab_kind="mse"):
    """Losses and loss weights for `model.compile`.

    Args:
      config: the model's config (``fusion``; ``prior`` for bins models).
      class_weight: lambda, the weight of the class cross-entropy (paper: 1,
        or 0.01 for P3; Iizuka et al.: 1/300). Ignored without fusion.
      ab_kind: one of ``AB_LOSSES``; ``"rebalanced_ce"`` exactly for
        configs with a bins head (``zhang2016``, ``UNetBinsConfig``).

    Returns:
      (loss, loss_weights): dicts keyed like the model's outputs.

    Example:
      >>> loss, weights = colorizer_losses(config, class_weight=0.01)
      >>> model.compile(optimizer="adam", loss=loss, loss_weights=weights)
    """
    class_weight = float(class_weight)
    if not class_weight >= 0:
        raise ValueError(
            f"class_weight must be >= 0, got class_weight={class_weight!r}")
    if has_bins_head(config) != (ab_kind == BINS_LOSS):
        raise ValueError(
            f"ab_kind={ab_kind!r} does not fit a {type(config).__name__}: models with an 'ab_bins' output "
            f"train with {BINS_LOSS!r} only, the others with one of {AB_LOSSES[:-1]}")
    if ab_kind == BINS_LOSS:
        loss = {"ab": ab_loss("mse"),
                "ab_bins": bins_lib.RebalancedSoftCE(bins_lib.rebalance_weights(config.prior))}
        weights = {"ab": 0.0, "ab_bins": 1.0}
    else:
        loss, weights = {"ab": ab_loss(ab_kind)}, {"ab": 1.0}
    if getattr(config, "fusion", False):
        loss["class"], weights["class"] = class_loss(), class_weight
    return loss, weights
