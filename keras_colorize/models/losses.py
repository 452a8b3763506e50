"""Two-head loss: MSE(ab) + lambda * cross-entropy(class), in float32.

The a*b* term is the paper's mean squared error by default; ``ab_loss="l1"``
(mean absolute error, whose minimizer is the conditional median rather than
the mean, so less grayish on ambiguous pixels and aimed at the paper's own
MAE metric) and ``"huber"`` (squared near 0, absolute beyond ``delta``) are
offered for from-scratch training on small budgets.

The paper trains with the a*b* mean squared error plus the scene-class
cross-entropy weighted by lambda: 1 in P1, P2 and P4, 0.01 in P3 ("divide the
classification loss by 100"), and no class loss without fusion. Images
without a scene label carry class -1 and add nothing to the class loss; the
class loss is averaged over the labelled images of the batch (0, not NaN,
when there are none).
"""

import keras

#: Label of images without a scene class.
UNLABELLED = -1


#: a*b* loss names: the paper's MSE first.
AB_LOSSES = ("mse", "l1", "huber")
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
    raise ValueError(f"ab_loss must be one of {AB_LOSSES}, got {kind!r}")


def class_loss():
    """Sparse cross-entropy on the softmax output, ignoring class -1."""
    return keras.losses.SparseCategoricalCrossentropy(
        ignore_class=UNLABELLED, name="class_ce", dtype="float32")


def colorizer_losses(config, class_weight=1.0, ab_kind="mse"):
    """Losses and loss weights for `model.compile`.

    Args:
      config: the model's `ModelConfig` (only `fusion` matters).
      class_weight: lambda, the weight of the class cross-entropy (paper: 1,
        or 0.01 for P3). Ignored without fusion.

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
    if not config.fusion:
        return {"ab": ab_loss(ab_kind)}, {"ab": 1.0}
    return ({"ab": ab_loss(ab_kind), "class": class_loss()},
            {"ab": 1.0, "class": class_weight})
