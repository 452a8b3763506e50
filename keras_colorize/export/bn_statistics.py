"""Re-estimate BatchNormalization moving statistics from data (a quick initialization).

An untrained network's BatchNormalization layers hold mean 0 / variance 1, so
in inference mode its activations grow layer after layer (He-initialized
convolutions, 40+ of them) to values no trained network has; quantization
error and float rounding then look far worse than they are on a real model.
Setting every BN layer's moving statistics to the statistics of a batch of real
inputs (one forward pass in training mode with momentum 0, as in the "BN
recalibration" step of post-training workflows) gives activations of trained
magnitude without training. The export reports and tests use it when no
trained model is given, and say so.
"""

import keras
import numpy as np


def _batch_norm_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization):
            yield layer


def reestimate_batch_norm(model, l_input):
    """Sets every BN layer's moving mean/variance to the statistics of ``l_input``.

    Args:
      model: the colorizer (modified in place: BN moving statistics only). A
        guided model gets zero hints and no reference (its automatic case).
      l_input: ``(N, S, S, 1)`` float32 L/100 of real images; N >= 8 is sensible.

    Returns:
      The number of BN layers updated.
    """
    l_input = np.asarray(l_input, np.float32)
    if l_input.ndim != 4 or len(l_input) < 2:
        raise ValueError(f"l_input must be a batch (N >= 2, S, S, 1), got shape {l_input.shape}")
    layers = list(_batch_norm_layers(model))
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(_model_inputs(model, l_input), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


def _model_inputs(model, l_input):
    if not isinstance(model.input, dict):
        return l_input
    from keras_colorize.guidance import spec  # noqa: PLC0415

    n, size = len(l_input), l_input.shape[1]
    return {spec.L_INPUT: l_input,
            spec.HINTS_INPUT: np.zeros((n, size, size, spec.HINT_CHANNELS), np.float32),
            spec.REFERENCE_INPUT: np.zeros((n, spec.REFERENCE_SIZE), np.float32)}
