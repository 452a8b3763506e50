"""Two-head loss: MSE(ab) + lambda * cross-entropy(class), in float32.

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


def ab_loss():
    """Mean squared error on the sigmoid a*b* output (float32)."""
    return keras.losses.MeanSquaredError(name="ab_mse", dtype="float32")


def class_loss():
    """Sparse cross-entropy on the softmax output, ignoring class -1."""
    return keras.losses.SparseCategoricalCrossentropy(
        ignore_class=UNLABELLED, name="class_ce", dtype="float32")


def colorizer_losses(config, class_weight=1.0):
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
        return {"ab": ab_loss()}, {"ab": 1.0}
    return ({"ab": ab_loss(), "class": class_loss()},
            {"ab": 1.0, "class": class_weight})
