"""Decoder, bridge, global branch and fusion blocks of the colorizer.

Blocks are plain `apply_*(x, ..., name)` functions over stock Keras layers;
the one custom layer, `SpatialTile`, broadcasts the global feature vector
over the bridge's grid for the fusion layer (Iizuka, Simo-Serra and
Ishikawa 2016, "Let there be Color!", Sec. 3.2; the paper's Eq. 1).
"""

import math

import keras
from keras import ops

from keras_colorize.guidance import spec


@keras.saving.register_keras_serializable(package="keras_colorize")
class SpatialTile(keras.layers.Layer):
    """Copies a vector to every pixel of a reference feature map.

    Call with `[vector (B, C), reference (B, H, W, D)]`; returns
    (B, H, W, C). Shapes are read at call time, so any grid size works.
    """

    def call(self, inputs):
        vector, reference = inputs
        shape = ops.shape(reference)
        vector = ops.reshape(vector, (-1, 1, 1, vector.shape[-1]))
        return ops.broadcast_to(
            vector, (shape[0], shape[1], shape[2], vector.shape[-1]))

    def compute_output_shape(self, input_shapes):
        vector_shape, reference_shape = input_shapes
        return tuple(reference_shape[:3]) + (vector_shape[-1],)


def _bn(name, bn_momentum, bn_epsilon, dtype=None):
    return keras.layers.BatchNormalization(
        momentum=bn_momentum, epsilon=bn_epsilon, name=name, dtype=dtype)


def apply_conv_bn_relu(x, filters, name, bn_momentum, bn_epsilon):
    """3x3 conv with bias, BN, ReLU (the bridge's and decoder's unit).

    The bias in front of BN is redundant but part of the paper's Table 1
    parameter counts, so it is kept.
    """
    x = keras.layers.Conv2D(filters, 3, padding="same",
                            kernel_initializer="he_normal",
                            name=f"{name}_conv")(x)
    x = _bn(f"{name}_bn", bn_momentum, bn_epsilon)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def apply_dense_bn_relu(x, units, name, bn_momentum, bn_epsilon):
    """Dense with bias, BN, ReLU (the global branch's and class head's unit)."""
    x = keras.layers.Dense(units, kernel_initializer="he_normal",
                           name=f"{name}_dense")(x)
    x = _bn(f"{name}_bn", bn_momentum, bn_epsilon)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def apply_bridge(x, filters, bn_momentum, bn_epsilon):
    """Bridge: 2 x (conv 3x3 with bias, BN, ReLU) on the deepest feature."""
    for i in (1, 2):
        x = apply_conv_bn_relu(x, filters, f"bridge{i}", bn_momentum,
                               bn_epsilon)
    return x


def apply_global_branch(x, units, bn_momentum, bn_epsilon):
    """Flatten, then dense/BN/ReLU per entry of `units` (paper: 1024, 512, 256).

    Returns:
      list of the outputs of every dense stage (paper: g1024, g512, g256).
      The flatten makes the first Dense depend on the grid size:
      (H/32) * (W/32) * C_bridge * units[0] kernel weights.
    """
    x = keras.layers.Flatten(name="global_flatten")(x)
    outputs = []
    for i, n in enumerate(units, start=1):
        x = apply_dense_bn_relu(x, n, f"global{i}", bn_momentum, bn_epsilon)
        outputs.append(x)
    return outputs


def apply_class_head(x, hidden_units, num_classes, bn_momentum, bn_epsilon):
    """Scene-class side head: dense/BN/ReLU, dense C, BN, softmax.

    The last Dense, its BN and the softmax run in float32 under mixed
    precision. The output layer is named "class".
    """
    x = apply_dense_bn_relu(x, hidden_units, "class1", bn_momentum, bn_epsilon)
    x = keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform",
                           dtype="float32", name="class2_dense")(x)
    x = _bn("class2_bn", bn_momentum, bn_epsilon, dtype="float32")(x)
    return keras.layers.Activation("softmax", dtype="float32", name="class")(x)


def apply_fusion(local, global_vector, filters, palette=None):
    """Fusion layer (paper Eq. 1, Iizuka et al. 2016).

    `relu(b + W [local; global])` at every pixel: the global vector is tiled
    over the local grid, concatenated on channels and mixed by a 1x1 conv.
    A guided model's reference palette (`apply_reference_embedding`) joins
    before the ReLU (`apply_reference_fusion`).
    """
    tiled = SpatialTile(name="fusion_tile")([global_vector, local])
    x = keras.layers.Concatenate(name="fusion_concat")([local, tiled])
    x = keras.layers.Conv2D(filters, 1, kernel_initializer="he_normal",
                            name="fusion_conv")(x)
    if palette is not None:
        x = apply_reference_fusion(x, palette)
    return keras.layers.ReLU(name="fusion_relu")(x)


def apply_up_block(x, skip, filters, name, bn_momentum, bn_epsilon):
    """U-Net up block: transposed conv 2x2/2 with bias, concat skip, 2 x conv.

    Args:
      x: (B, h, w, C) decoder input.
      skip: (B, 2h, 2w, C_skip) encoder feature.
      filters: output channels of the transposed conv and both convs.
      name: layer-name prefix, e.g. "up1".
    """
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2,
                                     kernel_initializer="he_normal",
                                     name=f"{name}_deconv")(x)
    x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = apply_conv_bn_relu(x, filters, f"{name}_1", bn_momentum, bn_epsilon)
    return apply_conv_bn_relu(x, filters, f"{name}_2", bn_momentum, bn_epsilon)


def apply_ab_head(x, bn_momentum, bn_epsilon):
    """Conv Out: 1x1 conv to 2 channels with bias, BN, sigmoid, in float32.

    The output layer is named "ab".
    """
    x = keras.layers.Conv2D(2, 1, dtype="float32", name="out_conv")(x)
    x = _bn("out_bn", bn_momentum, bn_epsilon, dtype="float32")(x)
    return keras.layers.Activation("sigmoid", dtype="float32", name="ab")(x)


# ----------------------------------------------------------------------------
# Guidance (Zhang et al. 2017, adapted): local hints and a reference palette
# ----------------------------------------------------------------------------
#
# Every guidance layer starts at zero (kernel_initializer="zeros"), so a guided
# model computes exactly what the same network without guidance computes until
# training moves them: an automatic model's weights carry over unchanged
# (``keras_colorize.models.transfer_weights``), and zero hints stay the automatic case.


def apply_hint_injection(x, hints, name, strides=1, pool=1):
    """``x + conv3x3(hints)``: the hint map (a*, b*, mask) enters a feature map additively.

    Args:
      x: (B, h, w, C) features (before the BN of the first layer, or before the output layer).
      hints: (B, S, S, 3) hint map; ``S / (pool * strides) == h``.
      name: layer-name prefix (starts with "hint").
      strides: stride of the hint conv (the first layer's own stride).
      pool: average pooling of the hint map before the conv (for a coarser ``x``).
    """
    if pool > 1:
        hints = keras.layers.AveragePooling2D(pool, name=f"{name}_pool")(hints)
    h = keras.layers.Conv2D(x.shape[-1], 3, strides=strides, padding="same", use_bias=False,
                            kernel_initializer="zeros", name=f"{name}_conv")(hints)
    return keras.layers.Add(name=f"{name}_add")([x, h])


def apply_reference_embedding(reference, units, bn_momentum=None, bn_epsilon=None):
    """The reference input (a*b* histogram + flag) -> a (B, units) palette vector (2 x dense + ReLU)."""
    del bn_momentum, bn_epsilon  # no BN: the histogram is already normalized
    x = reference
    for i in (1, 2):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal",
                               name=f"reference{i}_dense")(x)
    return x


#: Softmax logit of a hinted pixel in :class:`HintSummary` (unhinted ones: 0).
_MASK_LOGIT = 30.0


@keras.saving.register_keras_serializable(package="keras_colorize")
class HintSummary(keras.layers.Layer):
    """The colour statistics of the hinted pixels of a hint map, for the palette (``point_palette``).

    Call with the (B, S, S, 3) hint map; returns (B, 6) float32: the mean and the standard
    deviation of a* and b* (in hint units) over the hinted pixels, the hinted share of the
    grid as ``log1p(n) / log1p(S * S)``, and a "given" flag (1 when any pixel is hinted).
    All six are 0 for a map without hints.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, hints):
        hints = ops.cast(hints, "float32")
        ab, mask = hints[..., :2], hints[..., 2:3]
        height, width = hints.shape[1], hints.shape[2]
        count = ops.sum(mask, axis=(1, 2))  # (B, 1)
        # 1/n on each of the n hinted pixels, without a division: a softmax of the mask (exact to e^-30 per
        # unhinted pixel). Full-int8 TFLite quantizes a divisor of max(n, 1) onto its zero point when n is
        # small and then fails at run time; a softmax quantizes coarsely but runs.
        logits = ops.reshape(mask, (-1, height * width)) * _MASK_LOGIT
        weights = ops.reshape(ops.softmax(logits, axis=-1), (-1, height, width, 1)) * mask
        mean = ops.sum(ab * weights, axis=(1, 2))
        variance = ops.maximum(ops.sum(ab * ab * weights, axis=(1, 2)) - mean * mean, 0.0)
        given = ops.cast(count > 0.0, "float32")
        std = ops.sqrt(variance + 1e-6) * given
        share = ops.log(1.0 + count) * (1.0 / math.log(1.0 + height * width))
        return ops.concatenate([mean, std, share, given], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 6)


@keras.saving.register_keras_serializable(package="keras_colorize")
class PointGiven(keras.layers.Layer):
    """The "given" flag (last column) of a :class:`HintSummary`: (B, 6) -> (B, 1)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, summary):
        return summary[:, -1:]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def apply_point_palette(hint_map, units):
    """Hint map -> (B, units) palette vector from its points' colours, exactly 0 without points.

    ``given * relu(dense(relu(dense(summary))))``; it joins the fusion through the zero-initialized
    ``point_fusion_dense`` (:func:`apply_reference_fusion`), so a few points steer the global
    palette as a reference does, not only the pixels around them.
    """
    summary = HintSummary(name="point_summary")(hint_map)
    x = summary
    for i in (1, 2):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"point{i}_dense")(x)
    given = PointGiven(name="point_given")(summary)
    return keras.layers.Multiply(name="point_gate")([x, given])


def apply_reference_fusion(x, palette):
    """``x + tile(dense(palette))``: the palette vector joins a feature map (zero-initialized dense).

    ``palette`` is the reference's vector, or ``(reference vector, point vector)`` for a model
    with ``point_palette`` (the point vector is added after the reference's dense, zero without points).
    """
    points = None
    if isinstance(palette, (tuple, list)):
        palette, points = palette
    v = keras.layers.Dense(x.shape[-1], kernel_initializer="zeros", use_bias=False,
                           name="reference_fusion_dense")(palette)
    if points is not None:
        p = keras.layers.Dense(x.shape[-1], kernel_initializer="zeros", use_bias=False,
                               name="point_fusion_dense")(points)
        v = keras.layers.Add(name="point_add")([v, p])
    tiled = SpatialTile(name="reference_tile")([v, x])
    return keras.layers.Add(name="reference_add")([x, tiled])


def guidance_inputs(l_input, hints, palette_units, point_palette=False):
    """The model's inputs and, for a guided model, its hint map and palette vector.

    Returns:
      ``(inputs, hint_map, palette)``: ``inputs`` is ``l_input`` for an automatic
      model (hint_map and palette None), else the dict {"L", "hints", "reference"};
      with ``point_palette`` the palette is the pair (reference vector, point vector).
    """
    if not hints:
        return l_input, None, None
    size = l_input.shape[1]
    hint_map = keras.Input(shape=(size, size, spec.HINT_CHANNELS), name=spec.HINTS_INPUT)
    reference = keras.Input(shape=(spec.REFERENCE_SIZE,), name=spec.REFERENCE_INPUT)
    palette = apply_reference_embedding(reference, palette_units)
    if point_palette:
        palette = (palette, apply_point_palette(hint_map, palette_units))
    return {spec.L_INPUT: l_input, spec.HINTS_INPUT: hint_map, spec.REFERENCE_INPUT: reference}, hint_map, palette
