"""Every model preset, and the builder that dispatches on the config type.

    get_preset("paper")        # the fusion U-Net of Zayd et al. (colorizer.py)
    get_preset("tiny")         # its test size
    get_preset("zhang2016")    # Zhang, Isola, Efros 2016 (zhang2016.py)
    get_preset("iizuka2016")   # Iizuka, Simo-Serra, Ishikawa 2016 (iizuka2016.py)
    model = build_colorizer(get_preset("zhang2016", width=0.25))
    parameter_counts(model)    # trainable parameters per block, plus "total"
"""

import dataclasses
import math

from keras_colorize.models import colorizer
from keras_colorize.models import iizuka2016
from keras_colorize.models import unet_bins
from keras_colorize.models import zhang2016

@dataclasses.dataclass(frozen=True)
class Preset:
    """One preset's home: its config and the training rules that go with its network.

    Attributes:
      config: the default model config (``get_preset`` overrides fields of it).
      loss_defaults: what a training run takes when it leaves these unset
        (``fusion``, ``ab_loss``, ``class_loss_weight``).
      resnet34_encoder: the network has the ResNet34 encoder (``--encoder_weights`` applies).
      bins_only: the network predicts a*b* bins and trains with ``BINS_LOSS`` only.
      guidable: ``hints=True`` is an option of its config.
    """

    config: object
    loss_defaults: dict
    resnet34_encoder: bool = False
    bins_only: bool = False
    guidable: bool = False

    @property
    def bins_head_possible(self):
        """``--ab_loss=rebalanced_ce`` has a head to train: the bins network itself or the U-Net's bins variant."""
        return self.bins_only or self.resnet34_encoder


_PAPER_LOSS = {"fusion": True, "ab_loss": "mse", "class_loss_weight": 1.0}
_PRESETS = {
    # The paper's network: 256 px, 137 Places365 landscape classes; MSE + 1.0 x CE(class).
    "paper": Preset(colorizer.ModelConfig(), _PAPER_LOSS, resnet34_encoder=True, guidable=True),
    # For tests and smoke runs: 64 px, 4 classes, a quarter of the channels, one encoder block per stage.
    "tiny": Preset(colorizer.ModelConfig(image_size=64, num_classes=4, width=0.25, encoder_blocks=(1, 1, 1, 1)),
                   _PAPER_LOSS,
                   resnet34_encoder=True, guidable=True),
    # Peer models at their papers' widths; --width scales them for a CPU.
    # Zhang et al. 2016: a*b* bins, no class head.
    "zhang2016": Preset(zhang2016.ZhangConfig(), {"fusion": False, "ab_loss": "rebalanced_ce",
                                                   "class_loss_weight": 0.0}, bins_only=True),
    # Iizuka et al. 2016: MSE + alpha * CE(class), alpha = 1/300.
    "iizuka2016": Preset(iizuka2016.IizukaConfig(), {"fusion": True, "ab_loss": "mse",
                                                     "class_loss_weight": 1.0 / 300}, guidable=True),
}

_BUILDERS = {
    colorizer.ModelConfig: colorizer.build_colorizer,
    zhang2016.ZhangConfig: lambda c: zhang2016.ZhangColorizer(**c.to_dict()),
    iizuka2016.IizukaConfig: lambda c: iizuka2016.IizukaColorizer(**c.to_dict()),
    unet_bins.UNetBinsConfig: lambda c: unet_bins.UNetBinsColorizer(**c.to_dict()),
}


def get_preset(name, **overrides):
    """A named model config with optional field overrides.

    Example:
      >>> get_preset("paper", fusion=False).fusion
      False
      >>> get_preset("zhang2016", width=0.25).width
      0.25
    """
    base = preset(name).config
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown {type(base).__name__} field(s) {unknown} for preset={name!r}; fields are "
                         f"{sorted(fields)}")
    return dataclasses.replace(base, **overrides)


def preset(name):
    """The :class:`Preset` of a name (its config, loss defaults and traits)."""
    if name not in _PRESETS:
        raise ValueError(f"preset must be one of {sorted(_PRESETS)}, got preset={name!r}")
    return _PRESETS[name]


def preset_names():
    return sorted(_PRESETS)


def build_colorizer(config=None):
    """Builds the model of any preset's config (default: the paper's U-Net).

    Example:
      >>> model = build_colorizer(get_preset("iizuka2016", image_size=64, num_classes=4, width=0.25))
      >>> sorted(model.output)
      ['ab', 'class']
    """
    if config is None:
        config = colorizer.ModelConfig()
    builder = _BUILDERS.get(type(config))
    if builder is None:
        raise ValueError(f"config must be one of {sorted(c.__name__ for c in _BUILDERS)}, got "
                         f"config={type(config).__name__}")
    return builder(config)


def parameter_counts(model):
    """Trainable parameters per block, plus "total", for any model here.

    The U-Nets use the paper's Table 1 blocks (``block_parameter_counts``);
    the peer models the blocks of their papers (``BLOCK_PREFIXES`` of their
    modules).
    """
    if isinstance(model, (colorizer.ColorizerModel, unet_bins.UNetBinsColorizer)):
        return colorizer.block_parameter_counts(model)
    prefixes = {zhang2016.ZhangColorizer: zhang2016.BLOCK_PREFIXES,
                iizuka2016.IizukaColorizer: iizuka2016.BLOCK_PREFIXES}.get(type(model))
    if prefixes is None:
        raise ValueError(f"model must be a keras_colorize colorizer, got model={type(model).__name__}")
    counts = dict.fromkeys((block for _, block in prefixes), 0)
    for layer in model.layers:
        n = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        if not n:
            continue
        block = next((b for p, b in prefixes if layer.name == p or layer.name.startswith(p)), None)
        if block is None:
            raise ValueError(f"layer {layer.name!r} belongs to no block of {type(model).__name__}")
        counts[block] += n
    counts["total"] = sum(counts.values())
    return counts


def print_parameter_counts(model, file=None):
    """Prints :func:`parameter_counts` as a table (one block a line)."""
    counts = parameter_counts(model)
    lines = [f"{model.name}: trainable parameters per block"]
    lines += [f"  {block:16} {n:>12,}" for block, n in counts.items()]
    print("\n".join(lines), file=file, flush=True)
    return counts

