"""Zhang, Isola and Efros, "Colorful Image Colorization" (ECCV 2016), as a peer model.

Graph (the paper's Fig. 2 / the released ``colorization_deploy_v2`` network;
H = W = 256 here, 224 in the released deploy network):

    L (H, W, 1) in [0, 1] = L*/100  -> L - 0.5 (= (L* - 50) / 100)
      conv1: 64, 64/2            + BN      H/2
      conv2: 128, 128/2          + BN      H/4
      conv3: 256, 256, 256/2     + BN      H/8
      conv4: 512 x 3             + BN      H/8
      conv5: 512 x 3, dilation 2 + BN      H/8
      conv6: 512 x 3, dilation 2 + BN      H/8
      conv7: 512 x 3             + BN      H/8
      conv8: deconv 4x4/2 256, 256, 256    H/4
      ab_logits: 1x1 conv to Q bins -> softmax = "ab_bins" (H/4, H/4, Q)
      annealed mean (T = 0.38), bilinear x4   = "ab" (H, W, 2), (ab + 128) / 255

Every conv is 3x3 with bias and ReLU (BN closes each of blocks 1-7). The
a*b* quantization, soft encoding, rebalancing and annealed mean are in
:mod:`keras_colorize.models.ab_bins`.

Where ours differs from the paper:

* Q = 261 in-gamut bins (our sRGB gamut test), not 313 (see ``ab_bins``).
* The paper's output is the 1/4-resolution a*b* (upsampled outside the
  network); ours upsamples bilinearly inside, so "ab" has the input's size
  like every other model here. The loss stays at 1/4 resolution (the target is
  subsampled with stride 4, as the paper's training network does).
* BatchNorm has a learnt scale and offset (Caffe's BatchNorm had none); it
  counts 2 x channels trainable parameters per block.
* Trained from scratch on our data with Adam; the paper trained on 1.3 M
  ImageNet images (ADAM, 450k iterations). ``width`` scales every channel
  count for CPU budgets (1.0 = the paper's 32.2 M parameters at Q = 313;
  ours: see tests/test_zhang2016.py).
* The prior of the rebalancing comes from our training shards
  (``python -m keras_colorize.tools.ab_prior``) and is stored in the config
  and as a non-trainable weight of the head (``ab_bins.model_prior``), so a
  saved ``.keras`` carries it.
"""

import dataclasses
from typing import Optional

import keras

from keras_colorize.models import ab_bins
from keras_colorize.models import config_base

#: (filters, convs, first stride, dilation) of blocks 1-7 at width 1.0.
BLOCKS = ((64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2), (512, 3, 1, 2),
          (512, 3, 1, 1))
CONV8_FILTERS = 256
#: Parameter-summary blocks: layer-name prefix -> block.
BLOCK_PREFIXES = tuple((f"conv{i}", f"conv{i}") for i in range(1, 9)) + (("ab", "ab head"),)


@dataclasses.dataclass(frozen=True)
class ZhangConfig(config_base.BaseConfig):
    """Architecture of the Zhang et al. 2016 colorizer.

    Attributes:
      image_size: input side, a multiple of 32 (the network needs 8; 32 keeps
        the contract of every other model here).
      width: multiplier on every channel count (1.0 = the paper's).
      temperature: annealed-mean T of the "ab" output (paper: 0.38).
      prior: (Q,) empirical a*b* distribution of the training data (from
        ``keras_colorize.tools.ab_prior``), normalized to sum 1; None = uniform
        (then the loss is not rebalanced). Only the loss uses it.
      bn_momentum, bn_epsilon: BatchNormalization settings.
    """

    temperature: float = ab_bins.TEMPERATURE
    prior: Optional[tuple] = None


def _conv(x, filters, name, strides=1, dilation=1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, dilation_rate=dilation, padding="same",
                            kernel_initializer="he_normal", name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="keras_colorize")
class ZhangColorizer(ab_bins.BinsTargetMixin, keras.Model):
    """Zhang et al. 2016 (functional); see the module docstring.

    Input "L": (S, S, 1) in [0, 1]. Outputs: {"ab": (S, S, 2) float32 in
    [0, 1] (annealed mean, (ab + 128) / 255), "ab_bins": (S/4, S/4, Q) float32
    softmax}. Prefer ``build_colorizer(get_preset("zhang2016"))``.
    """

    def __init__(self, image_size=256, width=1.0, temperature=ab_bins.TEMPERATURE, prior=None, bn_momentum=0.9,
                 bn_epsilon=1e-5, **kwargs):
        config = ZhangConfig(image_size=image_size, width=width, temperature=temperature, prior=prior,
                             bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)

        # === Functional graph ===
        l_input = keras.Input(shape=(image_size, image_size, 1), name="L")
        x = keras.layers.Rescaling(1.0, offset=-0.5, name="l_center")(l_input)
        for i, (filters, convs, stride, dilation) in enumerate(BLOCKS, start=1):
            for j in range(1, convs + 1):
                x = _conv(x, config.channels(filters), f"conv{i}_{j}", strides=stride if j == convs else 1,
                          dilation=dilation)
            x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=f"conv{i}_norm")(x)
        x = keras.layers.Conv2DTranspose(config.channels(CONV8_FILTERS), 4, strides=2, padding="same",
                                         kernel_initializer="he_normal", name="conv8_1")(x)
        x = keras.layers.ReLU(name="conv8_1_relu")(x)
        for j in (2, 3):
            x = _conv(x, config.channels(CONV8_FILTERS), f"conv8_{j}")
        ab, bins = ab_bins.apply_bins_head(x, temperature, stride=ab_bins.BINS_STRIDE, prior=config.prior)
        kwargs.setdefault("name", "zhang2016")
        super().__init__(inputs=l_input, outputs={"ab": ab, "ab_bins": bins}, **kwargs)

        # === Config ===
        self.config = config
