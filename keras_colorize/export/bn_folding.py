"""Fold inference-mode BatchNormalization into the preceding convolution or Dense layer.

For inference, ``BN(x) = gamma * (x - mean) / sqrt(var + eps) + beta`` is an
affine map per channel, so after a linear layer ``x = W * u + b`` it can be
absorbed into that layer:

    W' = W * s,   b' = (b - mean) * s + beta,   s = gamma / sqrt(var + eps)

(Ioffe and Szegedy 2015, section 3.2; the same rewrite TFLite and TensorRT
apply to conv + BN patterns). Folding here, on the Keras graph, before TFLite
conversion matters for this network: the converter fails with
``ERROR_NEEDS_FLEX_OPS`` on the BatchNormalization after the global branch's
32768-to-1024 Dense when it has to fold that pair itself
(BUILD_NOTES.md, "Export"), and every folded pair is a multiply and an add
fewer per pixel at inference.

Only exact rewrites are made: a pair is folded when the producer is a
Conv1D/2D/3D, Conv2DTranspose, DepthwiseConv2D or Dense with a linear
activation, called once, whose output feeds nothing but the BatchNormalization
(normalizing the last axis). Nested Functional/Sequential models are folded
recursively. The original model is not modified.

``compute_dtype="float32"`` also rebuilds every layer under the float32
policy. A model trained under ``mixed_bfloat16`` keeps that policy in its
saved layer configs; its graph then holds bfloat16 convolutions and matmuls,
which the TFLite converter cannot translate (``'tf.ConcatV2' op is neither a
custom op nor a flex op``), and folded kernels stored as bfloat16 would be
off by up to 0.19 in a*b* on the trained scenes model. Exporters want the
float32 network (its variables are float32 anyway).

Example:
  >>> folded, pairs = fold_batch_norms(model)
  >>> len(pairs)  # e.g. 40 (conv, bn) name pairs in the full colorizer
"""

import keras
import numpy as np

_CHANNEL_LAST_KERNELS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Dense,
)


def _is_linear(layer):
    activation = getattr(layer, "activation", None)
    return activation is None or activation is keras.activations.linear or getattr(activation, "__name__", "") == "linear"


def _producer_kind(layer):
    """'last' / 'transpose' / 'depthwise' for foldable layer types, else None."""
    # Order matters: Conv2DTranspose and DepthwiseConv2D subclass base conv classes.
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
        return "transpose"
    if isinstance(layer, keras.layers.SeparableConv2D) or isinstance(layer, keras.layers.SeparableConv1D):
        return None
    if isinstance(layer, _CHANNEL_LAST_KERNELS):
        return "last"
    return None


def _bn_on_last_axis(bn):
    axis = bn.axis if isinstance(bn.axis, int) else None
    if axis is None:
        return False
    rank = len(bn.input.shape)
    return axis in (-1, rank - 1)


def _sub_models(model):
    return [layer for layer in model.layers if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth")]


def find_foldable_pairs(model):
    """``[(producer_name, bn_name), ...]`` in ``model`` and its nested Functional models."""
    pairs = []
    output_ids = {id(t) for t in keras.tree.flatten(model.outputs)}
    for layer in model.layers:
        if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
            pairs.extend(find_foldable_pairs(layer))
            continue
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if len(layer._inbound_nodes) != 1 or not _bn_on_last_axis(layer):
            continue
        node = layer._inbound_nodes[0]
        if len(node.input_tensors) != 1:
            continue
        tensor = node.input_tensors[0]
        producer = tensor._keras_history.operation
        if _producer_kind(producer) is None or not _is_linear(producer):
            continue
        if len(producer._inbound_nodes) != 1 or len(producer._outbound_nodes) != 1:
            continue
        if id(tensor) in output_ids:
            continue
        if getattr(producer, "groups", 1) != 1 and _producer_kind(producer) != "last":
            continue
        pairs.append((producer.name, layer.name))
    return pairs


def _fold_weights(producer, bn):
    """Folded (kernel, bias) of ``producer`` followed by ``bn``, float64 math."""
    kernel = np.asarray(keras.ops.convert_to_numpy(producer.kernel), np.float64)
    channels = bn.moving_mean.shape[-1]
    bias = (
        np.asarray(keras.ops.convert_to_numpy(producer.bias), np.float64)
        if getattr(producer, "use_bias", False) and producer.bias is not None
        else np.zeros([channels])
    )
    mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), np.float64)
    variance = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), np.float64)
    gamma = np.asarray(keras.ops.convert_to_numpy(bn.gamma), np.float64) if bn.scale else np.ones([channels])
    beta = np.asarray(keras.ops.convert_to_numpy(bn.beta), np.float64) if bn.center else np.zeros([channels])
    scale = gamma / np.sqrt(variance + bn.epsilon)
    kind = _producer_kind(producer)
    if kind == "last":
        kernel = kernel * scale
    elif kind == "transpose":
        kernel = kernel * scale[:, None]
    else:  # depthwise: (..., in, multiplier), output channel = in * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    bias = (bias - mean) * scale + beta
    dtype = producer.kernel.dtype
    return kernel.astype(dtype), bias.astype(dtype)


def _with_dtype(config, compute_dtype):
    if compute_dtype is not None and "dtype" in config:
        config = dict(config, dtype=compute_dtype)
    return config


def _all_layers(model):
    """name -> layer over ``model`` and its nested models (names are unique per model)."""
    layers = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
            layers.update(_all_layers(layer))
        layers[layer.name] = layer
    return layers


def fold_batch_norms(model, compute_dtype=None):
    """A copy of ``model`` with every foldable (conv/Dense, BatchNormalization) pair merged.

    Args:
      model: a Functional (or Sequential) Keras model; nested ones are handled.
      compute_dtype: None keeps each layer's dtype policy; ``"float32"``
        rebuilds every layer under that policy (for export of a
        mixed-precision model).

    Returns:
      ``(folded_model, pairs)``: the new model (same inputs and output
      structure, BN layers of folded pairs removed, their producers given a
      bias) and the list of folded ``(producer_name, bn_name)`` pairs.
    """
    pairs = find_foldable_pairs(model)
    return _clone(model, pairs, compute_dtype), pairs


def as_float32(model):
    """A copy of ``model`` with the same weights and every layer under the float32 policy (no folding).

    The reference an exported float32 network is compared with: a model
    trained under ``mixed_bfloat16`` computes its convolutions in bfloat16
    when loaded, which is not what the exported files compute.
    """
    return _clone(model, [], "float32")


def _clone(model, pairs, compute_dtype):
    producers = {p: b for p, b in pairs}
    folded_bns = {b for _, b in pairs}
    if compute_dtype not in (None, "float32"):
        raise ValueError(f"compute_dtype must be None or 'float32', got {compute_dtype!r}")

    def clone_layer(layer):
        config = _with_dtype(layer.get_config(), compute_dtype)
        if layer.name in producers:
            config = dict(config, use_bias=True)
        return layer.__class__.from_config(config)

    def call_layer(layer, *args, **kwargs):
        if layer.name in folded_bns:
            return args[0]
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone_layer, call_function=call_layer, recursive=True)
    wrong = [layer.name for layer in folded._flatten_layers(recursive=True)  # noqa: SLF001
             if compute_dtype is not None and layer.dtype_policy.name != compute_dtype]
    if wrong:
        raise ValueError(f"could not rebuild layers {wrong[:5]} under compute_dtype={compute_dtype!r}")
    original = _all_layers(model)
    for name, layer in _all_layers(folded).items():
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        source = original[name]
        if name in producers:
            kernel, bias = _fold_weights(source, original[producers[name]])
            layer.set_weights([kernel, bias])
        else:
            layer.set_weights([keras.ops.convert_to_numpy(w) for w in source.weights])
    return folded
