"""The colorization network: ResNet34 encoder, fusion U-Net, losses.

    from keras_colorize.models import ModelConfig, build_colorizer, get_preset
    model = build_colorizer(get_preset("paper"))
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
    build_colorizer,
    build_encoder,
    get_preset,
    load_encoder_weights,
    preset_names,
)
from keras_colorize.models.layers import SpatialTile
from keras_colorize.models.losses import (
    AB_LOSSES,
    UNLABELLED,
    ab_loss,
    class_loss,
    colorizer_losses,
)
from keras_colorize.models.resnet34 import (
    FEATURE_KEYS,
    ResNet34Encoder,
    feature_spec,
)

__all__ = [
    "AB_LOSSES",
    "FEATURE_KEYS",
    "TABLE1_BLOCKS",
    "UNLABELLED",
    "ColorizerModel",
    "ModelConfig",
    "ResNet34Encoder",
    "SpatialTile",
    "ab_loss",
    "block_parameter_counts",
    "build_colorizer",
    "build_encoder",
    "class_loss",
    "colorizer_losses",
    "feature_spec",
    "get_preset",
    "load_encoder_weights",
    "preset_names",
]
