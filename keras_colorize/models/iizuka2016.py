"""Iizuka, Simo-Serra and Ishikawa, "Let there be Color!" (SIGGRAPH 2016), as a peer model.

Graph (the paper's Fig. 2 and Table 1; every conv 3x3 with bias + BN + ReLU):

    L (H, W, 1) in [0, 1]
      low-level (shared): 64/2, 128, 128/2, 256, 256/2, 512       H/8
      mid-level:          512, 256                                  H/8
      global:             512/2, 512, 512/2, 512 (H/32), flatten,
                          FC 1024, FC 512, FC 256 (+BN+ReLU)
        FC 512 -> classification: FC 256 (+BN+ReLU), FC C, softmax  -> "class"
        FC 256 -> fusion: tiled over the mid-level grid, concat,
                  1x1 conv 256 + ReLU (paper Eq. 1)                 H/8
      colorization: 128, up x2, 64, 64, up x2, 32 (nearest up)      H/2
      output: conv 3x3 to 2, sigmoid; bilinear x2                   -> "ab" (H, W, 2)

Loss: MSE(ab) + alpha * CE(class), alpha = 1/300 in the paper (the trainer's
``class_loss_weight`` default for this preset), with the shared losses of
:mod:`keras_colorize.models.losses`.

Where ours differs from the paper:

* The paper feeds the global network a copy of the image rescaled to
  224 x 224 (so any input size works for the local path); here both paths
  see the same fixed ``image_size`` input (at 224 they coincide exactly). The
  first FC therefore has (S/32)^2 * 512 * 1024 weights: 25.7 M at S = 224,
  33.6 M at our default S = 256.
* The output (H/2 in the paper, upsampled outside) is upsampled bilinearly
  inside the model, so "ab" has the input's size.
* The classification head: the paper's FC 256 / FC C; our FC 256 has BN like
  every other layer. C is our scene-class count (paper: 205 Places classes).
* Trained from scratch with Adam on our data (the paper: Adadelta on 2.3 M
  Places images, ~3 weeks on one GPU). ``width`` scales every channel count.
* ``fusion=False`` is their "w/o global features" baseline: no global
  branch, classification or fusion; outputs "ab" only.
"""

import dataclasses

import keras

from keras_colorize.models import blocks
from keras_colorize.models import config_base

LOW_LEVEL = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))
MID_LEVEL = (512, 256)
GLOBAL_CONVS = ((512, 2), (512, 1), (512, 2), (512, 1))
GLOBAL_UNITS = (1024, 512, 256)
CLASS_HIDDEN_UNITS = 256
FUSION_FILTERS = 256
#: (filters, upsample after) of the colorization network.
COLORIZATION = ((128, True), (64, False), (64, True), (32, False))
#: Parameter-summary blocks: layer-name prefix -> block.
BLOCK_PREFIXES = (("low", "low-level"), ("mid", "mid-level"), ("global", "global"), ("class", "classification"),
                  ("fusion", "fusion"), ("color", "colorization"), ("ab", "output"),
                  ("hint", "guidance"), ("reference", "guidance"), ("point", "guidance"))


@dataclasses.dataclass(frozen=True)
class IizukaConfig(config_base.BaseConfig):
    """Architecture of the Iizuka et al. 2016 colorizer.

    Attributes:
      image_size: input side, a multiple of 32 (the global path strides 32x).
      num_classes: scene classes of the classification head.
      fusion: global features, classification and fusion (the paper's model);
        False is the paper's "w/o global features" baseline.
      width: multiplier on every channel count and FC width.
      bn_momentum, bn_epsilon: BatchNormalization settings.
      hints: guided colorization (Zhang et al. 2017, adapted): the model also
        takes "hints" and "reference" inputs (:mod:`keras_colorize.guidance.spec`).
        The hint map enters the first conv and again before the output conv,
        the reference palette the fusion layer; all of these start at zero.
      point_palette: with hints, the colour statistics of the hint points also join the
        fusion layer, as the reference palette does (:func:`blocks.apply_point_palette`;
        zero when no point is given, and at the start).
    """

    num_classes: int = 137
    fusion: bool = True
    hints: bool = False
    point_palette: bool = False


def _conv_bn_relu(x, filters, name, bn, strides=1, hints=None):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", kernel_initializer="he_normal",
                            name=f"{name}_conv")(x)
    if hints is not None:
        x = blocks.apply_hint_injection(x, hints, "hint_input", strides=strides)
    x = keras.layers.BatchNormalization(momentum=bn["bn_momentum"], epsilon=bn["bn_epsilon"], name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="keras_colorize")
class IizukaColorizer(keras.Model):
    """Iizuka et al. 2016 (functional); see the module docstring.

    Input "L": (S, S, 1) in [0, 1] (with ``hints=True`` a dict of "L", "hints"
    and "reference", see :mod:`keras_colorize.guidance.spec`). Outputs: {"ab": (S, S, 2) float32 sigmoid
    = (ab + 128) / 255, "class": (C,) float32 softmax} ("ab" only without
    fusion). Prefer ``build_colorizer(get_preset("iizuka2016"))``.
    """

    def __init__(self, image_size=256, num_classes=137, fusion=True, width=1.0, bn_momentum=0.9, bn_epsilon=1e-5,
                 hints=False, point_palette=False, **kwargs):
        config = IizukaConfig(image_size=image_size, num_classes=num_classes, fusion=fusion, width=width,
                              bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, hints=hints,
                              point_palette=point_palette)
        bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
        channels = config.channels

        # === Functional graph ===
        l_input = keras.Input(shape=(image_size, image_size, 1), name="L")
        inputs, hint_map, palette = blocks.guidance_inputs(l_input, hints, channels(FUSION_FILTERS),
                                                         point_palette=point_palette)
        x = l_input
        for i, (filters, stride) in enumerate(LOW_LEVEL, start=1):
            x = _conv_bn_relu(x, channels(filters), f"low{i}", bn, strides=stride, hints=hint_map if i == 1 else None)
        low = x
        for i, filters in enumerate(MID_LEVEL, start=1):
            x = _conv_bn_relu(x, channels(filters), f"mid{i}", bn)
        outputs = {}
        if fusion:
            g = low
            for i, (filters, stride) in enumerate(GLOBAL_CONVS, start=1):
                g = _conv_bn_relu(g, channels(filters), f"global_conv{i}", bn, strides=stride)
            _, g512, g256 = blocks.apply_global_branch(g, [channels(u) for u in GLOBAL_UNITS], **bn)
            c = blocks.apply_dense_bn_relu(g512, channels(CLASS_HIDDEN_UNITS), "class1", **bn)
            c = keras.layers.Dense(num_classes, dtype="float32", name="class2_dense")(c)
            outputs["class"] = keras.layers.Activation("softmax", dtype="float32", name="class")(c)
            x = blocks.apply_fusion(x, g256, channels(FUSION_FILTERS), palette=palette)
        elif palette is not None:
            x = blocks.apply_reference_fusion(x, palette)
        for i, (filters, upsample) in enumerate(COLORIZATION, start=1):
            x = _conv_bn_relu(x, channels(filters), f"color{i}", bn)
            if upsample:
                x = keras.layers.UpSampling2D(2, name=f"color{i}_up")(x)
        if hint_map is not None:
            x = blocks.apply_hint_injection(x, hint_map, "hint_output", pool=2)
        x = keras.layers.Conv2D(2, 3, padding="same", dtype="float32", name="ab_conv")(x)
        x = keras.layers.Activation("sigmoid", dtype="float32", name="ab_sigmoid")(x)
        outputs["ab"] = keras.layers.UpSampling2D(2, interpolation="bilinear", dtype="float32", name="ab")(x)
        outputs = {k: outputs[k] for k in (("ab", "class") if fusion else ("ab",))}
        kwargs.setdefault("name", "iizuka2016")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.config = config

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
