"""The colorization network: ResNet34 encoder, fusion U-Net, losses.

    from keras_colorize.models import ModelConfig, build_colorizer, get_preset
    model = build_colorizer(get_preset("paper"))   # or "zhang2016", "iizuka2016"
    load_encoder_weights(model, "resnet34_imagenet.weights.h5")
    loss, loss_weights = colorizer_losses(model.config, class_weight=1.0)

Importing this package registers the custom objects, so
`keras.saving.load_model("model.keras")` works afterwards.
"""

from keras_colorize.models.colorizer import (
    TABLE1_BLOCKS,
    ColorizerModel,
    ModelConfig,
    block_parameter_counts,
    build_encoder,
    load_encoder_weights,
)
from keras_colorize.models.iizuka2016 import IizukaColorizer, IizukaConfig
from keras_colorize.models.registry import (
    Preset,
    build_colorizer,
    get_preset,
    preset,
    parameter_counts,
    preset_names,
    print_parameter_counts,
)
from keras_colorize.models.unet_bins import UNetBinsColorizer, UNetBinsConfig
from keras_colorize.models.zhang2016 import ZhangColorizer, ZhangConfig
from keras_colorize.models.blocks import SpatialTile
from keras_colorize.models.losses import (
    AB_LOSSES,
    BINS_LOSS,
    UNLABELLED,
    ab_loss,
    class_loss,
    colorizer_losses,
    has_bins_head,
)
from keras_colorize.models.transfer import TransferReport, transfer_weights
from keras_colorize.models.resnet34 import (
    FEATURE_KEYS,
    ResNet34Encoder,
    feature_spec,
)

__all__ = [
    "AB_LOSSES",
    "BINS_LOSS",
    "FEATURE_KEYS",
    "TABLE1_BLOCKS",
    "UNLABELLED",
    "ColorizerModel",
    "IizukaColorizer",
    "IizukaConfig",
    "ModelConfig",
    "Preset",
    "ResNet34Encoder",
    "SpatialTile",
    "TransferReport",
    "UNetBinsColorizer",
    "UNetBinsConfig",
    "ZhangColorizer",
    "ZhangConfig",
    "ab_loss",
    "block_parameter_counts",
    "build_colorizer",
    "build_encoder",
    "class_loss",
    "colorizer_losses",
    "feature_spec",
    "get_preset",
    "has_bins_head",
    "load_encoder_weights",
    "parameter_counts",
    "preset",
    "preset_names",
    "print_parameter_counts",
    "transfer_weights",
]
