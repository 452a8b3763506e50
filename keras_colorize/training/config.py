"""The configuration of a training run: :class:`TrainConfig`, checked when constructed (no TensorFlow work).

``python -m keras_colorize.train`` turns its flags (:mod:`keras_colorize.training.flags`) into a
:class:`TrainConfig`; :func:`keras_colorize.training.trainer.train` runs it. Every bad value raises
:class:`ConfigError` naming the flag. ``RESUME_FIELDS`` are the fields a rerun in an existing work
directory must share with the run that made it.
"""

import dataclasses
from typing import Optional

from keras_colorize import models

#: Model presets (each one's config, loss defaults and traits: keras_colorize/models/registry.py).
MODEL_PRESETS = tuple(models.preset_names())
OPTIMIZERS = ("adam", "adamw", "adadelta", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")

#: Fields a rerun in an existing work directory must share with the run that made it:
#: they fix the architecture, the optimizer's state layout and the step <-> epoch mapping.
RESUME_FIELDS = (
    "model_preset", "image_size", "num_classes", "width", "fusion", "optimizer", "precision",
    "batch_size", "steps_per_epoch", "ab_loss", "hints", "point_palette", "train_only",
)
#: Fields that set how training simulates hints (keyword arguments of hint_ops.simulate_hints).
HINT_SCHEDULE_FIELDS = ("reference_probability", "automatic_probability")
#: Values of resume fields in run directories written before the field existed.
LEGACY_RESUME_VALUES = {"ab_loss": "mse", "hints": False, "point_palette": False, "train_only": ""}


class ConfigError(ValueError):
    """A bad flag, bad data or an unusable work directory, found before training."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; field names are the flag names.

    See :mod:`keras_colorize.training.flags` for the meaning of every field. ``None``
    model fields take the preset's value when the config is built, so a config
    always holds the resolved architecture.

    Example:
      >>> config = TrainConfig(work_dir="runs/tiny", demo_data_dir="runs/demo_data",
      ...                      model_preset="tiny", num_classes=5, batch_size=8,
      ...                      epochs=2, steps_per_epoch=10, precision="float32")
      >>> result = train(config)  # result.summary, result.model
    """
    work_dir: str = ""
    # Data
    train_data: str = ""
    val_data: str = ""
    demo_data_dir: str = ""
    # Model
    model_preset: str = "paper"
    image_size: Optional[int] = None
    num_classes: Optional[int] = None
    width: Optional[float] = None
    fusion: Optional[bool] = None
    encoder_weights: str = ""
    hints: bool = False
    point_palette: bool = False
    reference_probability: float = 0.5
    automatic_probability: float = 0.0
    init_from: str = ""
    train_only: str = ""
    # Loss and optimization
    class_loss_weight: Optional[float] = None
    ab_loss: Optional[str] = None
    ab_prior: str = ""
    optimizer: str = "adam"
    learning_rate: float = 0.01
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    batch_size: int = 16
    scale_jitter: float = 1.0
    epochs: int = 10
    steps_per_epoch: int = 0
    val_steps: int = 0
    val_batch_size: int = 0
    seed: int = 0
    # Hardware and speed
    precision: str = "float32"
    strategy: str = "default"
    tpu: str = ""
    num_cpu_devices: int = 0
    jit_compile: bool = False
    fused_batch_norm: bool = True
    steps_per_execution: int = 1
    # Work directory, checkpoints, logs
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    log_every_steps: int = 50
    grid_images: int = 8
    def __post_init__(self):
        def fail(name, why):
            raise ConfigError(f"--{name}={getattr(self, name)!r}: {why}")

        def choice(name, allowed):
            if getattr(self, name) not in allowed:
                fail(name, f"unknown value, expected one of {', '.join(allowed)}")

        if not self.work_dir:
            fail("work_dir", "required (the run directory for checkpoints, logs and the model)")
        if not (self.train_data and self.val_data) and not self.demo_data_dir:
            raise ConfigError(
                f"--train_data={self.train_data!r}, --val_data={self.val_data!r}: both are required "
                "unless --demo_data_dir is set")
        choice("model_preset", MODEL_PRESETS)
        for name, value in models.preset(self.model_preset).loss_defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        choice("optimizer", OPTIMIZERS)
        choice("ab_loss", models.AB_LOSSES)
        choice("lr_schedule", LR_SCHEDULES)
        choice("precision", PRECISIONS)
        choice("strategy", STRATEGIES)
        for name in ("batch_size", "epochs", "steps_per_execution", "log_every_steps", "keep_checkpoints"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                fail(name, "must be an integer >= 1")
        for name in ("steps_per_epoch", "val_steps", "val_batch_size", "warmup_steps", "num_cpu_devices",
                     "checkpoint_every_steps", "grid_images"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                fail(name, "must be an integer >= 0")
        if not self.learning_rate > 0:
            fail("learning_rate", "must be > 0")
        if not self.class_loss_weight >= 0:
            fail("class_loss_weight", "must be >= 0")
        if not 1.0 <= self.scale_jitter <= 4.0:
            fail("scale_jitter", "must be between 1 (no scale augmentation, the paper's) and 4")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in HINT_SCHEDULE_FIELDS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(name, "must be a probability, between 0 and 1")
            if not self.hints and getattr(self, name) != defaults[name]:
                fail(name, "sets how training simulates hints; it needs --hints")
        if self.point_palette and not self.hints:
            fail("point_palette", "summarizes the hint points into the palette; it needs --hints")
        if self.train_only and not all(self.train_only_prefixes()):
            fail("train_only", "expected comma-separated layer-name prefixes, such as 'point,hint'")
        if self.strategy == "mirrored" and self.num_cpu_devices == 1:
            fail("num_cpu_devices", "splitting the CPU into 1 device does nothing; use 0 or >= 2")
        if self.encoder_weights and not self.encoder_weights.endswith(".weights.h5"):
            fail("encoder_weights", "expected a .weights.h5 file written by keras_colorize.tools.port_resnet34")
        self._check_model_options(fail)
        # Resolve the preset now: the config then holds the architecture that is trained.
        preset = models.get_preset(self.model_preset)
        for name in ("image_size", "num_classes", "width"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(preset, name, None))  # zhang2016: no num_classes
        if not (isinstance(self.image_size, int) and self.image_size >= 32 and self.image_size % 32 == 0):
            fail("image_size", "must be a positive multiple of 32 (the encoder downsamples 32x)")
        try:
            self.model_config()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    def _check_model_options(self, fail):
        """Preset, head and loss fit together (the traits of each preset: keras_colorize/models/registry.py)."""
        bins = self.ab_loss == models.BINS_LOSS
        preset = models.preset(self.model_preset)
        names = models.preset_names()
        encoders = ", ".join(n for n in names if models.preset(n).resnet34_encoder)
        if preset.bins_only:
            if self.fusion:
                fail("fusion", f"the {self.model_preset} preset has no class head; leave --fusion unset (or --nofusion)")
            if not bins:
                fail("ab_loss", f"the {self.model_preset} preset predicts a*b* bins and trains with {models.BINS_LOSS} "
                                "only")
        elif bins and not preset.bins_head_possible:
            heads = ", ".join(n for n in names if models.preset(n).bins_head_possible)
            fail("ab_loss", f"{models.BINS_LOSS} needs a bins head: presets {heads}")
        if self.ab_prior and not bins:
            fail("ab_prior", f"the a*b* prior is only used with --ab_loss={models.BINS_LOSS}")
        if self.ab_prior and not self.ab_prior.endswith(".npy"):
            fail("ab_prior", "expected a .npy file written by `python -m keras_colorize.tools.ab_prior`")
        if self.encoder_weights and not preset.resnet34_encoder:
            fail("encoder_weights", f"only the presets {encoders} have the ResNet34 encoder")
        if self.hints and (not preset.guidable or bins):
            guidable = ", ".join(n for n in names if models.preset(n).guidable)
            fail("hints", f"guided colorization is an option of the presets {guidable} with an a*b* regression head "
                          f"(not --ab_loss={models.BINS_LOSS})")

    def hint_schedule(self):
        """The hint-simulation settings of this run, as keyword arguments of ``hint_ops.simulate_hints``."""
        return {name: getattr(self, name) for name in HINT_SCHEDULE_FIELDS}

    def model_config(self, prior=None):
        """The model config this run trains (``prior``: the a*b* prior of a bins head, None = uniform)."""
        preset = models.get_preset(self.model_preset)
        fields = {"image_size": self.image_size, "width": float(self.width)}
        if self.hints:
            fields["hints"] = True
            fields["point_palette"] = self.point_palette
        for name in ("num_classes", "fusion"):
            if hasattr(preset, name):
                fields[name] = getattr(self, name)
        config = models.get_preset(self.model_preset, **fields)
        if self.ab_loss != models.BINS_LOSS:
            return config
        if isinstance(config, models.ModelConfig):
            return models.UNetBinsConfig.from_unet(config, prior=prior)
        return dataclasses.replace(config, prior=prior)
    def train_only_prefixes(self):
        """The layer-name prefixes of ``--train_only`` (empty: every layer trains)."""
        return tuple(p.strip() for p in self.train_only.split(",")) if self.train_only else ()

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_flags(self):
        """The config as flagfile text (``--name=value`` lines)."""
        lines = []
        for name, value in self.to_dict().items():
            if isinstance(value, bool):
                lines.append(f"--{name}" if value else f"--no{name}")
            elif value is not None:
                lines.append(f"--{name}={value}")
        return "\n".join(lines) + "\n"
