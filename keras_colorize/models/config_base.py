"""The fields and checks every model config shares (the U-Net, its bins variant, zhang2016, iizuka2016).

Each config class adds only its own fields; every check lives here once, keyed by
field name, so the same bad value gets the same message whatever the preset.
"""

import dataclasses

from keras_colorize.models import ab_bins
from keras_colorize.models import resnet34


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Shared architecture fields.

    Attributes:
      image_size: input height = width in pixels; a multiple of 32 (every network here downsamples 32x).
      width: multiplier on every channel count and Dense width (1.0 = the paper's network).
      bn_momentum: Keras BatchNormalization momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNormalization epsilon (1e-5 as in torchvision).
    """

    image_size: int = 256
    width: float = 1.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5

    def __post_init__(self):
        def fail(name, why):
            raise ValueError(f"{name} must be {why}, got {name}={getattr(self, name)!r}")

        if not _is_int(self.image_size) or self.image_size < 32 or self.image_size % 32:
            fail("image_size", "a positive multiple of 32 (the encoder downsamples 32x)")
        if not (isinstance(self.width, (int, float)) and not isinstance(self.width, bool) and 0 < self.width <= 4):
            fail("width", "a number in (0, 4]")
        if not 0 <= self.bn_momentum < 1:
            fail("bn_momentum", "in [0, 1)")
        if not self.bn_epsilon > 0:
            fail("bn_epsilon", "> 0")
        # Fields only some configs have.
        if hasattr(self, "num_classes") and (not _is_int(self.num_classes) or self.num_classes < 2):
            fail("num_classes", "an integer >= 2")
        for name in ("fusion", "hints", "point_palette"):
            if hasattr(self, name) and not isinstance(getattr(self, name), bool):
                fail(name, "a bool")
        if getattr(self, "point_palette", False) and not self.hints:
            fail("point_palette", "False without hints (it summarizes the hint points)")
        if hasattr(self, "temperature") and not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            fail("temperature", "> 0")
        if hasattr(self, "encoder_blocks"):
            try:
                object.__setattr__(self, "encoder_blocks", resnet34.check_stage_blocks(self.encoder_blocks))
            except ValueError:
                fail("encoder_blocks", f"{len(resnet34.STAGES)} positive integers (ResNet34: {list(resnet34.STAGE_BLOCKS)})")
        if getattr(self, "prior", None) is not None:
            object.__setattr__(self, "prior", tuple(float(p) for p in ab_bins.check_prior(self.prior)))

    def channels(self, base):
        """A width-1.0 channel count scaled by ``width``."""
        return resnet34.scale_channels(base, self.width)

    def to_dict(self):
        return dataclasses.asdict(self)
