"""ResNet34 encoder in torchvision's layout, as a Keras functional model.

The encoder of the paper (Zayd, Yudistira, Wihandika) is torchvision's
ImageNet ResNet34 (He et al. 2016, "Deep Residual Learning for Image
Recognition"). It is rebuilt here with deterministic layer names so that
`keras_colorize.tools.port_resnet34` copies torchvision's tensors name to name:

| torchvision                      | Keras layer                                  |
|----------------------------------|----------------------------------------------|
| `conv1`, `bn1`                   | `stem_conv`, `stem_bn`                       |
| `layer{i}.{j}.conv{k}`           | `stack{i}_block{j+1}_conv{k}`                |
| `layer{i}.{j}.bn{k}`             | `stack{i}_block{j+1}_bn{k}`                  |
| `layer{i}.0.downsample.0` / `.1` | `stack{i}_block1_proj_conv` / `_proj_bn`     |

Padding reproduces PyTorch exactly: the 7x7/2 stem conv, the 3x3/2 max-pool
and every 3x3/2 conv get explicit symmetric zero padding and then run
"valid". Keras "same" pads 0 before and 1 after on even inputs, which shifts
the sampling grid by one pixel against torchvision and breaks ported weights.
Zero padding is exact for the max-pool because its input follows a ReLU.

The encoder returns a dict of feature maps with fixed keys (`FEATURE_KEYS`);
`feature_spec(width)` gives the channels and stride of each.
"""

import keras

#: (filters, blocks) of ResNet34's stages (torchvision `layer1` .. `layer4`).
STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
#: Basic blocks per stage of ResNet34 (the only layout the ImageNet port fits).
STAGE_BLOCKS = tuple(blocks for _, blocks in STAGES)
STEM_FILTERS = 64

#: Keys of the encoder's output dict, shallow to deep.
FEATURE_KEYS = ("stem", "layer1", "layer2", "layer3", "layer4")
_STRIDES = (2, 4, 8, 16, 32)


def scale_channels(channels, width):
    """`channels` times the width multiplier, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def feature_spec(width=1.0):
    """Channels and stride of every encoder output.

    Returns:
      dict key -> (channels, stride): `{"stem": (64, 2), "layer1": (64, 4),
      "layer2": (128, 8), "layer3": (256, 16), "layer4": (512, 32)}` at
      width 1.0.
    """
    channels = [STEM_FILTERS] + [f for f, _ in STAGES]
    return {
        key: (scale_channels(c, width), stride)
        for key, c, stride in zip(FEATURE_KEYS, channels, _STRIDES)
    }


def _conv(filters, kernel_size, name, strides=1, padding="same"):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer="he_normal", name=name)


def apply_stem(x, filters, bn_momentum, bn_epsilon):
    """torchvision `conv1`, `bn1`, `relu` (output: the "stem" feature)."""
    x = keras.layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = _conv(filters, 7, "stem_conv", strides=2, padding="valid")(x)
    x = keras.layers.BatchNormalization(
        momentum=bn_momentum, epsilon=bn_epsilon, name="stem_bn")(x)
    return keras.layers.ReLU(name="stem_relu")(x)


def apply_basic_block(x, filters, strides, name, bn_momentum, bn_epsilon):
    """ResNet basic block: two 3x3 convs plus identity or 1x1 projection.

    Args:
      x: input feature map (B, H, W, C).
      filters: output channels.
      strides: 1, or 2 for the first block of stages 2 to 4.
      name: prefix of every layer name, e.g. "stack2_block1".
    """
    def bn(suffix):
        return keras.layers.BatchNormalization(
            momentum=bn_momentum, epsilon=bn_epsilon, name=f"{name}_{suffix}")

    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, f"{name}_proj_conv", strides=strides)(x)
        shortcut = bn("proj_bn")(shortcut)
    else:
        shortcut = x
    if strides != 1:
        y = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        y = _conv(filters, 3, f"{name}_conv1", strides=strides,
                  padding="valid")(y)
    else:
        y = _conv(filters, 3, f"{name}_conv1")(x)
    y = bn("bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, f"{name}_conv2")(y)
    y = bn("bn2")(y)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def check_stage_blocks(stage_blocks):
    """``stage_blocks`` as a tuple of 4 positive ints; ValueError otherwise."""
    try:
        blocks = tuple(stage_blocks)
    except TypeError:
        blocks = ()
    if len(blocks) != len(STAGES) or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1
                                             for b in blocks):
        raise ValueError(f"stage_blocks must be {len(STAGES)} positive integers (ResNet34: {list(STAGE_BLOCKS)}), "
                         f"got {stage_blocks!r}")
    return blocks


def apply_resnet34(x, width=1.0, bn_momentum=0.9, bn_epsilon=1e-5, stage_blocks=STAGE_BLOCKS):
    """ResNet34 feature pyramid on an ImageNet-normalized RGB tensor.

    ``stage_blocks`` other than ResNet34's (3, 4, 6, 3) gives a shallower or
    deeper network of the same layout and strides (the test preset uses one
    block per stage, a ResNet10-like layout that traces in half the time).

    Returns:
      dict with `FEATURE_KEYS`: "stem" (stride 2, after conv1/bn1/relu) and
      "layer1" .. "layer4" (strides 4 to 32).
    """
    spec = feature_spec(width)
    features = {}
    x = apply_stem(x, spec["stem"][0], bn_momentum, bn_epsilon)
    features["stem"] = x
    x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)
    for stage, blocks in enumerate(check_stage_blocks(stage_blocks), start=1):
        key = f"layer{stage}"
        filters = spec[key][0]
        for block in range(1, blocks + 1):
            strides = 2 if (stage > 1 and block == 1) else 1
            x = apply_basic_block(
                x, filters, strides, f"stack{stage}_block{block}",
                bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
        features[key] = x
    return features


@keras.saving.register_keras_serializable(package="keras_colorize")
class ResNet34Encoder(keras.Model):
    """ResNet34 (torchvision layout) returning a dict of feature maps.

    Input: ImageNet-normalized RGB, (H, W, 3); H and W multiples of 32 for
    the colorizer (the encoder itself accepts any size >= 32).
    Output: `{"stem", "layer1", "layer2", "layer3", "layer4"}`, see
    `feature_spec`.

    Args:
      width: channel multiplier (1.0 = ResNet34; the ImageNet weight port
        only applies at 1.0).
      input_shape: (H, W, 3); None dimensions allowed.
      bn_momentum, bn_epsilon: BatchNormalization settings. torchvision uses
        momentum 0.1 (= Keras 0.9) and epsilon 1e-5; epsilon must stay 1e-5
        for ported ImageNet weights to give torchvision's features.
      stage_blocks: basic blocks in each of the 4 stages; ResNet34's
        (3, 4, 6, 3) by default, the only layout the ImageNet port fits.

    Example:
      >>> enc = ResNet34Encoder(input_shape=(224, 224, 3))
      >>> feats = enc(keras.ops.zeros((1, 224, 224, 3)))
      >>> tuple(feats["layer4"].shape)
      (1, 7, 7, 512)
    """

    def __init__(self, width=1.0, input_shape=(None, None, 3), bn_momentum=0.9,
                 bn_epsilon=1e-5, stage_blocks=STAGE_BLOCKS, **kwargs):
        stage_blocks = check_stage_blocks(stage_blocks)
        # === Functional graph ===
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        features = apply_resnet34(inputs, width, bn_momentum, bn_epsilon, stage_blocks)
        kwargs.setdefault("name", "encoder")
        super().__init__(inputs=inputs, outputs=features, **kwargs)
        # === Config ===
        self.width = width
        self.image_shape = tuple(input_shape)
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.stage_blocks = stage_blocks

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "width": self.width,
            "input_shape": self.image_shape,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "stage_blocks": list(self.stage_blocks),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
