"""The fusion U-Net colorizer of Zayd, Yudistira and Wihandika (paper Table 1).

Graph (H = W = 256 in the paper):

    L (H, W, 1) in [0, 1] = L*/100
      -> repeat to 3 channels, ImageNet mean/std          = x
      -> ResNet34 encoder (resnet34.py): stem, layer1..layer4
      -> bridge: 2 x (conv 3x3 + BN + ReLU) on layer4
      -> global branch: flatten(bridge), dense 1024/512/256 (+BN+ReLU)
           g512 -> class head: dense 256, dense C, BN, softmax  -> "class"
           g256 -> fusion with the bridge (1x1 conv to 256, ReLU)
      -> Up 1..5: transposed conv 2x2/2, concat skip
           (layer3, layer2, layer1, stem, x), 2 x (conv 3x3 + BN + ReLU)
      -> Conv Out: 1x1 conv to 2, BN, sigmoid                  -> "ab"

Outputs are float32 under every dtype policy. `fusion=False` is the paper's
"P2 w/o Fusion layer": no global branch, class head or fusion; Up 1 takes the
bridge directly and only "ab" is returned.
"""

import dataclasses
import math
import os
from typing import Tuple

import keras

from keras_colorize.models import blocks
from keras_colorize.models import config_base
from keras_colorize.models import resnet34

#: torchvision's ImageNet normalization (RGB).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Base channel counts at width 1.0 (paper Table 1).
BRIDGE_FILTERS = 512
GLOBAL_UNITS = (1024, 512, 256)
CLASS_HIDDEN_UNITS = 256
FUSION_FILTERS = 256
DECODER_FILTERS = (256, 128, 64, 32, 16)
#: Encoder feature (or "x") that each up block concatenates.
DECODER_SKIPS = ("layer3", "layer2", "layer1", "stem", "x")


@dataclasses.dataclass(frozen=True)
class ModelConfig(config_base.BaseConfig):
    """Architecture of the colorizer.

    Attributes:
      image_size: input height = width in pixels; a multiple of 32. The
        global branch's first Dense has (image_size/32)^2 * 512 * 1024
        weights at width 1.0, so the parameter count depends on it.
      num_classes: scene classes of the side head (paper: 137 landscape
        categories of Places365). Unused when `fusion` is False.
      fusion: True for the paper's fusion model (outputs "ab" and "class"),
        False for "w/o Fusion layer" (outputs "ab" only).
      width: multiplier on every channel count and Dense width (encoder,
        bridge, global branch, class head, fusion, decoder). 1.0 is the
        paper's network and the only width the ImageNet port applies to.
      bn_momentum: Keras BatchNormalization momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNormalization epsilon (1e-5 as in torchvision).
      hints: guided colorization (Zhang et al. 2017, adapted): the model also
        takes "hints" and "reference" inputs (:mod:`keras_colorize.guidance.spec`).
        The hint map is added, through a zero-initialized conv, to the
        encoder's normalized input (so it reaches the encoder and the full-
        resolution skip of Up 5); the reference palette joins the fusion
        layer. False (the paper's) keeps every preset's parameter count.
      point_palette: with hints, the colour statistics of the hint points also join the
        fusion layer, as the reference palette does (zero without points, and at the start).
      encoder_blocks: basic blocks in each encoder stage; ResNet34's (3, 4, 6, 3)
        (the paper's, and the only layout the ImageNet port fits). The test
        preset "tiny" uses (1, 1, 1, 1).

    Vary presets with `dataclasses.replace(get_preset("paper"), fusion=False)`
    or `get_preset("paper", fusion=False)`. The dtype policy is not part of
    the config: the model builds (and loads) under the global Keras policy.
    """

    num_classes: int = 137
    fusion: bool = True
    hints: bool = False
    point_palette: bool = False
    encoder_blocks: Tuple[int, ...] = resnet34.STAGE_BLOCKS


def apply_input_normalization(l_input):
    """L/100 (B, H, W, 1) -> 3 equal channels, ImageNet-normalized = x."""
    x = keras.layers.Concatenate(name="gray_to_rgb")([l_input] * 3)
    return keras.layers.Normalization(
        mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD],
        name="imagenet_norm")(x)


@keras.saving.register_keras_serializable(package="keras_colorize")
class ColorizerModel(keras.Model):
    """Fusion U-Net colorizer (functional); see the module docstring.

    Input "L": (image_size, image_size, 1) float in [0, 1] (= L*/100).
    Outputs: {"ab": (H, W, 2) float32 sigmoid = (ab + 128) / 255,
              "class": (num_classes,) float32 softmax} ("ab" only without
    fusion). The ResNet34 encoder is the nested model `self.encoder`
    (layer name "encoder").

    Args: the fields of `ModelConfig`. Prefer `build_colorizer(config)`.
    """

    def __init__(self, image_size=256, num_classes=137, fusion=True, width=1.0,
                 bn_momentum=0.9, bn_epsilon=1e-5, hints=False, point_palette=False,
                 encoder_blocks=resnet34.STAGE_BLOCKS, **kwargs):
        config = ModelConfig(image_size=image_size, num_classes=num_classes,
                             fusion=fusion, width=width,
                             bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                             hints=hints, point_palette=point_palette,
                             encoder_blocks=encoder_blocks)
        bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
        channels = config.channels

        # === Layers ===
        encoder = resnet34.ResNet34Encoder(
            width=width, input_shape=(image_size, image_size, 3), **bn,
            stage_blocks=config.encoder_blocks, name="encoder")

        # === Functional graph ===
        l_input = keras.Input(shape=(image_size, image_size, 1), name="L")
        inputs, hint_map, palette = blocks.guidance_inputs(
            l_input, hints, channels(FUSION_FILTERS), point_palette=point_palette)
        x = apply_input_normalization(l_input)
        if hint_map is not None:
            x = blocks.apply_hint_injection(x, hint_map, "hint_input")
        skips = dict(encoder(x))
        skips["x"] = x
        bridge = blocks.apply_bridge(skips["layer4"], channels(BRIDGE_FILTERS), **bn)
        outputs = {}
        if fusion:
            _, g512, g256 = blocks.apply_global_branch(
                bridge, [channels(u) for u in GLOBAL_UNITS], **bn)
            outputs["class"] = blocks.apply_class_head(
                g512, channels(CLASS_HIDDEN_UNITS), num_classes, **bn)
            y = blocks.apply_fusion(bridge, g256, channels(FUSION_FILTERS),
                                    palette=palette)
        elif palette is not None:
            y = blocks.apply_reference_fusion(bridge, palette)
        else:
            y = bridge
        for i, (filters, skip) in enumerate(
                zip(DECODER_FILTERS, DECODER_SKIPS), start=1):
            y = blocks.apply_up_block(y, skips[skip], channels(filters), f"up{i}",
                                      **bn)
        outputs["ab"] = blocks.apply_ab_head(y, **bn)
        outputs = {k: outputs[k] for k in (("ab", "class") if fusion
                                           else ("ab",))}
        kwargs.setdefault("name", "colorizer")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.config = config
        self.encoder = encoder

    def get_config(self):
        config = self.config.to_dict()
        config["encoder_blocks"] = list(config["encoder_blocks"])  # as JSON gives it back
        return {"name": self.name, "trainable": self.trainable, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_colorizer(config=None):
    """Builds the colorizer for a `ModelConfig` (default: the paper's).

    Example:
      >>> model = build_colorizer(get_preset("tiny"))
      >>> out = model(keras.ops.zeros((1, 64, 64, 1)))
      >>> tuple(out["ab"].shape), tuple(out["class"].shape)
      ((1, 64, 64, 2), (1, 4))
    """
    if config is None:
        config = ModelConfig()
    if not isinstance(config, ModelConfig):
        raise ValueError(
            f"config must be a ModelConfig, got config={type(config).__name__}")
    return ColorizerModel(**config.to_dict())


def build_encoder(width=1.0, input_shape=(None, None, 3), **kwargs):
    """The ResNet34 encoder alone (input: ImageNet-normalized RGB)."""
    return resnet34.ResNet34Encoder(width=width, input_shape=input_shape,
                                    **kwargs)


def load_encoder_weights(model, path):
    """Loads ImageNet ResNet34 weights into a colorizer's encoder.

    Args:
      model: a `ColorizerModel` (its nested "encoder") or a `ResNet34Encoder`;
        width must be 1.0.
      path: the `.weights.h5` written by `keras_colorize.tools.port_resnet34`,
        or directly a torchvision `resnet34-*.pth` / `.safetensors` file
        (ported in memory).
    """
    encoder = model.get_layer("encoder") if isinstance(model, ColorizerModel) else model
    if not isinstance(encoder, resnet34.ResNet34Encoder):
        raise ValueError(f"model must be a ColorizerModel or ResNet34Encoder, got "
                         f"model={type(model).__name__}")
    if encoder.width != 1.0:
        raise ValueError(f"ImageNet ResNet34 weights need width=1.0, got "
                         f"width={encoder.width!r}")
    if tuple(encoder.stage_blocks) != resnet34.STAGE_BLOCKS:
        raise ValueError(f"ImageNet ResNet34 weights need the blocks {list(resnet34.STAGE_BLOCKS)} per stage, got "
                         f"{list(encoder.stage_blocks)}")
    path = str(path)
    if not os.path.isfile(path):
        raise ValueError(f"encoder weights not found: path={path!r}")
    if path.endswith(".weights.h5"):
        encoder.load_weights(path)
    else:
        from keras_colorize.models import torchvision_port  # pylint: disable=import-outside-toplevel
        torchvision_port.assign_state_dict(
            encoder, torchvision_port.read_checkpoint(path),
            source=f"path={path!r}")


#: Table 1 block of every top-level layer-name prefix.
_BLOCK_OF_PREFIX = (
    ("stem", "Input Block"), ("pool", "Input Pool"),
    ("stack1", "Down 1"), ("stack2", "Down 2"), ("stack3", "Down 3"),
    ("stack4", "Down 4"), ("bridge", "Bridge"), ("global", "Global"),
    ("class", "Classification"), ("fusion", "Up 1"), ("up1", "Up 1"),
    ("up2", "Up 2"), ("up3", "Up 3"), ("up4", "Up 4"), ("up5", "Up 5"),
    ("out", "Conv Out"), ("ab", "Conv Out"),
    ("gray_to_rgb", "Input"), ("imagenet_norm", "Input"), ("L", "Input"),
    ("hint", "Guidance"), ("reference", "Guidance"), ("point", "Guidance"),
)
TABLE1_BLOCKS = ("Input Block", "Input Pool", "Down 1", "Down 2", "Down 3",
                 "Down 4", "Bridge", "Global", "Classification", "Up 1",
                 "Up 2", "Up 3", "Up 4", "Up 5", "Conv Out")


def _block_of(layer_name):
    for prefix, block in _BLOCK_OF_PREFIX:
        if layer_name == prefix or layer_name.startswith(prefix + "_") or (
                layer_name.startswith(prefix) and
                layer_name[len(prefix):][:1].isdigit()):
            return block
    raise ValueError(f"layer {layer_name!r} belongs to no Table 1 block")


def block_parameter_counts(model):
    """Trainable parameters per block of the paper's Table 1, plus "total".

    BatchNorm counts gamma and beta (its moving statistics are not
    trainable), as the paper does. Blocks absent from the model (global
    branch, class head without fusion) count 0.

    Example:
      >>> block_parameter_counts(build_colorizer())["total"]
      63389761
    """
    counts = dict.fromkeys(TABLE1_BLOCKS, 0)
    layers = [l for l in model.layers if not isinstance(l, keras.Model)]
    for sub in model.layers:
        if isinstance(sub, keras.Model):
            layers.extend(sub.layers)
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        n = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        block = _block_of(layer.name)
        if block == "Input":
            if n:
                raise ValueError(f"input layer {layer.name!r} has weights")
            continue
        counts[block] = counts.get(block, 0) + n  # "Guidance": guided models only
    counts["total"] = sum(counts.values())
    return counts
