"""The paper's fusion U-Net with Zhang et al.'s a*b* bins head (``--ab_loss=rebalanced_ce``).

The U-Net of :mod:`keras_colorize.models.colorizer` up to Up 3 (1/4
resolution: the resolution of Zhang et al.'s loss), then the bins head of
:func:`keras_colorize.models.ab_bins.apply_bins_head`: 1x1 conv to the Q bins
("ab_bins", softmax), annealed mean (T = 0.38) and bilinear x4 -> "ab" in the
usual model units. Up 4, Up 5 and Conv Out are not built: a full-resolution
Q-way softmax would cost Q x H x W floats per image (82 MB at 256 px).
"""

import dataclasses
from typing import Optional, Tuple

import keras

from keras_colorize.models import ab_bins
from keras_colorize.models import config_base
from keras_colorize.models import colorizer
from keras_colorize.models import resnet34

#: The decoder feature the bins head reads (Up 3's output, stride 4).
FEATURE_LAYER = "up3_2_relu"


@dataclasses.dataclass(frozen=True)
class UNetBinsConfig(config_base.BaseConfig):
    """A :class:`~keras_colorize.models.ModelConfig` plus the bins head's settings.

    Attributes: those of ``ModelConfig`` (image_size, num_classes, fusion,
    width, bn_momentum, bn_epsilon, encoder_blocks), and ``temperature`` and ``prior`` as in
    :class:`keras_colorize.models.zhang2016.ZhangConfig`.
    """

    num_classes: int = 137
    fusion: bool = True
    temperature: float = ab_bins.TEMPERATURE
    prior: Optional[tuple] = None
    encoder_blocks: Tuple[int, ...] = resnet34.STAGE_BLOCKS

    @classmethod
    def from_unet(cls, config, **bins):
        """The bins variant of a ``ModelConfig`` (an automatic one: the bins head takes no hints)."""
        if config.hints:
            raise ValueError("the a*b* bins head has no hint inputs: build it from a ModelConfig with hints=False")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.to_dict().items() if k in names}, **bins)

    def unet_config(self):
        """The ``ModelConfig`` of the U-Net part (validates the shared fields)."""
        fields = {f.name for f in dataclasses.fields(colorizer.ModelConfig)}
        return colorizer.ModelConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in fields})



@keras.saving.register_keras_serializable(package="keras_colorize")
class UNetBinsColorizer(ab_bins.BinsTargetMixin, keras.Model):
    """Fusion U-Net with the bins head; outputs {"ab", "ab_bins", ["class"]}.

    Layer names are the U-Net's (the nested "encoder", bridge, global, class,
    fusion, up1-up3), so ImageNet encoder weights load as for the paper model.
    """

    def __init__(self, image_size=256, num_classes=137, fusion=True, width=1.0, bn_momentum=0.9, bn_epsilon=1e-5,
                 temperature=ab_bins.TEMPERATURE, prior=None, encoder_blocks=resnet34.STAGE_BLOCKS, **kwargs):
        config = UNetBinsConfig(image_size=image_size, num_classes=num_classes, fusion=fusion, width=width,
                                bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, temperature=temperature, prior=prior,
                                encoder_blocks=encoder_blocks)
        unet = colorizer.ColorizerModel(**config.unet_config().to_dict())
        ab, bins = ab_bins.apply_bins_head(unet.get_layer(FEATURE_LAYER).output, temperature,
                                           stride=ab_bins.BINS_STRIDE, prior=config.prior)
        outputs = {"ab": ab, "ab_bins": bins}
        if fusion:
            outputs["class"] = unet.output["class"]
        kwargs.setdefault("name", "colorizer_bins")
        super().__init__(inputs=unet.inputs[0], outputs=outputs, **kwargs)
        self.config = config
        self.encoder = unet.encoder
