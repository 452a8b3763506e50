"""Command-line flags of ``python -m keras_colorize.train``, defined once.

Every flag maps one to one onto a field of
:class:`keras_colorize.training.config.TrainConfig` (same name, same default), so
the binary turns parsed flags into a config with :func:`train_config` and the
library never reads ``FLAGS``. A run writes its resolved config back as a
flagfile (``<work_dir>/flags.txt``), which reproduces it::

    python -m keras_colorize.train --flagfile=experiments/p3.flags
    python -m keras_colorize.train --flagfile=runs/p3/flags.txt   # the same run

Flagfiles may include others (``--flagfile=experiments/base.flags`` inside a
file); absl resolves those paths against the current directory, so run the
experiments from the repository root.
"""

import dataclasses

from absl import flags

from keras_colorize import models
from keras_colorize.training import config

FLAGS = flags.FLAGS
_D = config.TrainConfig.__dataclass_fields__


def _default(name):
    field = _D[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    return None


# --- Data -------------------------------------------------------------------
flags.DEFINE_string(
    "train_data", _default("train_data"),
    "Glob of the training TFRecord shards (written by `python -m keras_colorize.data.make_shards`), "
    "e.g. /data/places365_shards/train-*-of-*.tfrecord. May be left empty with --demo_data_dir.")
flags.DEFINE_string(
    "val_data", _default("val_data"),
    "Glob of the validation shards (same format as --train_data). Empty with --demo_data_dir.")
flags.DEFINE_string(
    "demo_data_dir", _default("demo_data_dir"),
    "If set, synthetic demo landscape shards are generated into this directory when missing "
    "(keras_colorize.data.demo.ensure_demo_shards) and used for --train_data/--val_data when those are empty.")

# --- Model ------------------------------------------------------------------
flags.DEFINE_enum(
    "model_preset", _default("model_preset"), list(config.MODEL_PRESETS),
    "Architecture preset (keras_colorize.models.get_preset): 'paper' = 256 px, 137 classes, "
    "full width; 'tiny' = 64 px, 4 classes, width 0.25; 'zhang2016' = Zhang et al. 2016 (a*b* bins, "
    "rebalanced loss, no class head); 'iizuka2016' = Iizuka et al. 2016 (global features, fusion, class "
    "loss weight 1/300). The flags below override its fields.")
flags.DEFINE_integer(
    "image_size", _default("image_size"),
    "Training crop side in pixels, a multiple of 32. Default: the preset's.")
flags.DEFINE_integer(
    "num_classes", _default("num_classes"),
    "Scene classes of the class head (paper: 137 Places365 landscape classes). Must be at least the "
    "number of classes in the data. Default: the preset's.")
flags.DEFINE_float(
    "width", _default("width"),
    "Channel width multiplier of the whole network (1.0 = the paper's). Default: the preset's.")
flags.DEFINE_bool(
    "fusion", _default("fusion"),
    "Global branch, class head and fusion layer (the paper's model). --nofusion is 'P2 w/o Fusion "
    "layer': a*b* loss only (for iizuka2016: 'w/o global features'). Default: the preset's (False for "
    "zhang2016, which has no class head; True otherwise).")
flags.DEFINE_string(
    "encoder_weights", _default("encoder_weights"),
    "ImageNet ResNet34 encoder weights (the .weights.h5 written by "
    "`python -m keras_colorize.tools.port_resnet34`). Empty: random initialization.")

flags.DEFINE_bool(
    "hints", _default("hints"),
    "Guided colorization (Zhang et al. 2017, adapted): the model also takes colour hints (points with an "
    "a*b* colour) and a reference photo's a*b* histogram; training simulates them from the ground truth "
    "(keras_colorize.guidance.hint_ops). Presets paper, tiny and iizuka2016.")
flags.DEFINE_bool(
    "point_palette", _default("point_palette"),
    "With --hints: the colour statistics of the hint points (mean and spread of a*b*, how many) also join "
    "the fusion layer, as the reference palette does, so a few points can move the whole palette. Zero "
    "without points and at the start.")
flags.DEFINE_float(
    "reference_probability", _default("reference_probability"),
    "With --hints: share of training examples given the reference (their crop's own a*b* histogram). "
    "Default 0.5 (Zhang et al. 2017 give the global hint to about half).")
flags.DEFINE_float(
    "automatic_probability", _default("automatic_probability"),
    "With --hints: share of training examples given neither points nor reference outright, on top of the "
    "1/8 whose geometric draw gives no points (automatic in all: a + (1 - a) / 8 * (1 - reference_probability)). "
    "Raise it to keep the unhinted colorization strong. Default 0.")
flags.DEFINE_string(
    "init_from", _default("init_from"),
    "Warm start: copy the weights of a trained model (a .keras path or a bundled name such as 'scenes') into "
    "the new model, layer by layer by name; new layers (the guidance layers of --hints) and layers whose "
    "shape differs (the class head when --num_classes changes) keep their initialization. Ignored when "
    "the work directory already has a checkpoint (the run resumes from it). Empty: random initialization.")
flags.DEFINE_string(
    "train_only", _default("train_only"),
    "Comma-separated layer-name prefixes (such as 'point,hint'): only the layers whose name starts with one "
    "of them train; every other layer is frozen (BatchNormalization then in inference mode), so what they "
    "compute stays exactly that of --init_from. Empty: every layer trains.")

# --- Loss and optimizer -----------------------------------------------------
flags.DEFINE_float(
    "class_loss_weight", _default("class_loss_weight"),
    "lambda in loss = MSE(ab) + lambda * CE(class): 1 for P1, P2, P4; 0.01 for P3 (class loss / 100). "
    "Default: the preset's (1; iizuka2016: 1/300, the paper's alpha).")
flags.DEFINE_enum(
    "ab_loss", _default("ab_loss"), list(models.AB_LOSSES),
    "a*b* loss: 'mse' (the paper's), 'l1' (mean absolute error: aims at the paper's MAE metric and is less "
    "grayish than MSE's conditional mean), 'huber', or 'rebalanced_ce' (Zhang et al. 2016: the model predicts "
    "a distribution over a*b* bins, trained with the class-rebalanced soft-encoded cross-entropy, decoded by "
    "the annealed mean; the U-Net presets get a bins head). Default: the preset's (rebalanced_ce for "
    "zhang2016, mse otherwise).")
flags.DEFINE_string(
    "ab_prior", _default("ab_prior"),
    "With --ab_loss=rebalanced_ce: the a*b* prior of the training data, a .npy written by "
    "`python -m keras_colorize.tools.ab_prior --train_data=GLOB --output=prior.npy`; stored in the model's "
    "config. Empty: uniform prior (no rebalancing).")
flags.DEFINE_enum(
    "optimizer", _default("optimizer"), list(config.OPTIMIZERS),
    "Optimizer (paper: adadelta for P1, adam otherwise).")
flags.DEFINE_float("learning_rate", _default("learning_rate"), "Peak learning rate.")
flags.DEFINE_enum(
    "lr_schedule", _default("lr_schedule"), list(config.LR_SCHEDULES),
    "'constant' (the paper's) or 'cosine' decay to 0 over the run, after --warmup_steps linear warm-up.")
flags.DEFINE_integer("warmup_steps", _default("warmup_steps"), "Linear learning-rate warm-up steps (0 = none).")
flags.DEFINE_float(
    "scale_jitter", _default("scale_jitter"),
    "Scale augmentation of the training crops: the short side is resized to a random size between "
    "--image_size and scale_jitter x --image_size before the random crop (a zoom of up to that factor). "
    "1 = off (the paper's: short side to --image_size, then crop; a square photo gets flips only).")
flags.DEFINE_integer(
    "batch_size", _default("batch_size"),
    "Global batch size, split evenly over all replicas of all workers (must be divisible by their number).")
flags.DEFINE_integer("epochs", _default("epochs"), "Epochs to train (the paper: 10).")
flags.DEFINE_integer(
    "steps_per_epoch", _default("steps_per_epoch"),
    "Optimizer steps per epoch; 0 = one pass over the training shards (example count / batch size).")
flags.DEFINE_integer(
    "val_steps", _default("val_steps"),
    "Validation batches per evaluation; 0 = the whole validation set.")
flags.DEFINE_integer("val_batch_size", _default("val_batch_size"), "Validation batch size; 0 = --batch_size.")
flags.DEFINE_integer("seed", _default("seed"), "Seed of weight initialization, data order and augmentation.")

# --- Hardware and speed -----------------------------------------------------
flags.DEFINE_enum(
    "precision", _default("precision"), list(config.PRECISIONS),
    "Keras dtype policy. mixed_float16 (GPU; dynamic loss scaling) or mixed_bfloat16 (TPU, recent "
    "GPUs/CPUs); the a*b* and class heads and the losses stay float32.")
flags.DEFINE_enum(
    "strategy", _default("strategy"), list(config.STRATEGIES),
    "tf.distribute strategy: default (one device), mirrored (all local GPUs, or the CPU split into "
    "--num_cpu_devices), multi_worker (MultiWorkerMirroredStrategy from the TF_CONFIG environment "
    "variable), tpu (TPUStrategy on --tpu).")
flags.DEFINE_string("tpu", _default("tpu"), "TPU name or grpc:// address for --strategy=tpu ('' = local).")
flags.DEFINE_integer(
    "num_cpu_devices", _default("num_cpu_devices"),
    "Split the CPU into this many logical devices (0 = do not), e.g. for --strategy=mirrored without GPUs.")
flags.DEFINE_bool("jit_compile", _default("jit_compile"), "Compile the train and eval steps with XLA.")
flags.DEFINE_bool(
    "fused_batch_norm", _default("fused_batch_norm"),
    "Run BatchNormalization on TensorFlow's fused kernel (same variables and results; ~11% less CPU time "
    "per training step). Falls back to Keras's own where the fused op does not apply (synchronized BN).")
flags.DEFINE_integer(
    "steps_per_execution", _default("steps_per_execution"),
    "Train steps run per tf.function call (fewer Python round trips on fast accelerators).")

# --- Work directory, checkpoints, logs --------------------------------------
flags.DEFINE_string(
    "work_dir", _default("work_dir"),
    "Run directory: flags.txt, checkpoints/, best.keras, final.keras, logs/ (TensorBoard), summary.json. "
    "Rerunning the same command resumes from its last checkpoint.")
flags.DEFINE_integer(
    "checkpoint_every_steps", _default("checkpoint_every_steps"),
    "Save a resumable checkpoint (weights, optimizer state, step) every N steps; one is also saved "
    "at the end of every epoch.")
flags.DEFINE_integer("keep_checkpoints", _default("keep_checkpoints"), "Resumable checkpoints kept on disk.")
flags.DEFINE_integer(
    "log_every_steps", _default("log_every_steps"),
    "Console line and TensorBoard step scalars (step time, images/s, learning rate) every N steps.")
flags.DEFINE_integer(
    "grid_images", _default("grid_images"),
    "Validation images in the per-epoch TensorBoard grid (gray input, prediction, ground truth).")


def train_config(flag_values=FLAGS):
    """The :class:`~keras_colorize.training.config.TrainConfig` of parsed flags.

    Raises:
      ValueError: a flag value is invalid (the message names the flag).
    """
    names = [f.name for f in dataclasses.fields(config.TrainConfig)]
    return config.TrainConfig(**{name: flag_values[name].value for name in names})
