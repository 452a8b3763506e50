"""Training library: a typed :class:`TrainConfig` and :func:`train`.

``python -m keras_colorize.train`` turns flags into a :class:`TrainConfig`
and calls :func:`train`; tests call :func:`train` directly. Read top to bottom:

1. Configuration: :class:`TrainConfig`, checked when constructed (no TF work).
2. Preflight: distribution strategy, data (shards exist, class labels fit the
   model, enough examples), work directory (a rerun must match the run that
   made it). Every problem raises :class:`ConfigError` before any training.
3. Model, optimizer, losses, built in the strategy's scope under the dtype
   policy; datasets distributed by the strategy with the global batch size.
4. ``model.fit`` with the callbacks of :mod:`keras_colorize.training.validation`, :mod:`~keras_colorize.training.monitors` and :mod:`~keras_colorize.training.checkpoints`,
   resuming from the last checkpoint at its exact step.
5. Final evaluation of ``best.keras`` against the "predict gray" baseline on
   the validation set, ``final.keras`` and ``summary.json``.

Work directory::
    flags.txt            the resolved flags (a flagfile that reproduces the run)
    config.json          the same as JSON, checked when the directory is reused
    checkpoints/         ckpt-<step>: weights + optimizer state + step (resume)
    best.keras, best.json  best model by validation MAE, and its epoch and value
    final.keras          the model after the last step
    logs/train, logs/validation   TensorBoard
    summary.json         final metrics, gray baseline, timings

Reference: Zayd, Yudistira and Wihandika, "Image Colorization using U-Net with
Skip Connections and Fusion Layer on Landscape Images", Section 4.1 (training
configurations P1-P4) and Table 2 (metrics).
"""

import dataclasses
import glob
import json
import math
import os
import sys
import time


import keras
import tensorflow as tf
from absl import logging

from keras_colorize.training import checkpoints
from keras_colorize.training import monitors
from keras_colorize.training import validation
from keras_colorize import fileio
from keras_colorize import models
from keras_colorize.training import perf
from keras_colorize.training import run_lock
from keras_colorize.data import demo
from keras_colorize.data import features
from keras_colorize.data import pipeline
from keras_colorize.data import shards_lib
from keras_colorize.models import ab_bins

from keras_colorize.training.config import LEGACY_RESUME_VALUES, RESUME_FIELDS, ConfigError
from keras_colorize.training.config import TrainConfig  # noqa: F401 - train(config) takes one; tests build it here


# ---------------------------------------------------------------------------
# 2. Preflight: strategy, data, work directory
# ---------------------------------------------------------------------------


def make_strategy(config):
    """The ``tf.distribute`` strategy of ``config.strategy``.

    Must run before any other TensorFlow op (multi-worker collectives and
    logical CPU devices are configured when the runtime starts).
    """
    if config.num_cpu_devices:
        _split_cpu(config.num_cpu_devices)
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    if config.strategy == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if config.strategy == "multi_worker":
        _check_tf_config()
        return _MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` with a ``reduce`` that Keras 3's ``fit`` can use.

    Keras 3 calls ``strategy.reduce`` on the first ``(x, y)`` batch (to build
    the model symbolically) and with ``axis=0`` on the scalar losses of every
    step. ``MirroredStrategy`` accepts both; the multi-worker strategy fails
    on nested values and on ``axis=0`` of a scalar (keras-team/keras#20585).
    This reduces leaf by leaf, scalars across replicas only.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def reduce_leaf(leaf):
            local = self.experimental_local_results(leaf)[0]
            leaf_axis = axis if axis is not None and tf.convert_to_tensor(local).shape.rank else None
            return parent.reduce(reduce_op, leaf, leaf_axis)

        return tf.nest.map_structure(reduce_leaf, value)


def _split_cpu(count):
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as e:
        raise ConfigError(
            f"--num_cpu_devices={count}: the TensorFlow runtime is already initialized, so the CPU can no "
            "longer be split; set it in a fresh process") from e


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("strategy='multi_worker' needs the TF_CONFIG environment variable "
                          '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                          '"task": {"type": "worker", "index": 0}})')
    try:
        tf_config = json.loads(raw)
        tf_config["cluster"]["worker"], tf_config["task"]["type"], tf_config["task"]["index"]  # pylint: disable=pointless-statement
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"TF_CONFIG={raw!r} is not a valid cluster spec ({e!r})") from None


def is_chief(strategy):
    """True on the worker that writes files (always, except non-chief multi-worker tasks)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The shards a run reads, and what was learned about them."""
    train_files: tuple
    val_files: tuple
    train_examples: int
    val_examples: int
    max_label: int  # -1 if no example has a class label


def _match(name, pattern):
    files = sorted(glob.glob(os.path.expanduser(pattern)))
    if not files:
        raise ConfigError(f"--{name}={pattern!r} matches no files (expected TFRecord shards from make_shards)")
    return tuple(files)


def _scan_shards(files):
    """(examples, max label) by reading every record's label."""
    size_gb = sum(os.path.getsize(f) for f in files) / 1e9
    if size_gb > 1:
        logging.info("scanning %.1f GB of shards for the example count and labels", size_gb)
    spec = {features.LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=features.NO_LABEL)}
    labels = (tf.data.TFRecordDataset(list(files), num_parallel_reads=tf.data.AUTOTUNE)
              .batch(1024).map(lambda s: tf.io.parse_example(s, spec)[features.LABEL]))
    examples, max_label = 0, -1
    for batch in labels:
        examples += int(batch.shape[0])
        max_label = max(max_label, int(tf.reduce_max(batch)))
    return examples, max_label


def _shard_stats(files):
    return shards_lib.summary_counts(files) or _scan_shards(files)


def resolve_data(config):
    """Checks the data of ``config`` (building the demo shards if asked) -> :class:`DataSpec`."""
    train_pattern, val_pattern = config.train_data, config.val_data
    if config.demo_data_dir and not (train_pattern and val_pattern):
        start = time.time()
        patterns = demo.ensure_demo_shards(os.path.expanduser(config.demo_data_dir))
        logging.info("demo shards ready in %s (%.1f s)", config.demo_data_dir, time.time() - start)
        train_pattern = train_pattern or patterns["train"]
        val_pattern = val_pattern or patterns["val"]
    train_files = _match("train_data", train_pattern)
    val_files = _match("val_data", val_pattern)
    train_examples, train_max = _shard_stats(train_files)
    val_examples, val_max = _shard_stats(val_files)
    max_label = max(train_max, val_max)
    if config.fusion and max_label >= config.num_classes:
        raise ConfigError(
            f"--num_classes={config.num_classes}: the data has class labels up to {max_label} "
            f"({max_label + 1} classes), more than the model's class head; set --num_classes={max_label + 1} "
            "or more")
    if config.fusion and max_label < 0 and config.class_loss_weight > 0:
        logging.warning("no example has a class label: the class loss is 0 throughout")
    if config.steps_per_epoch == 0 and train_examples < config.batch_size:
        raise ConfigError(
            f"--batch_size={config.batch_size}: the training data has only {train_examples} examples, fewer "
            "than one batch")
    if val_examples == 0:
        raise ConfigError(f"--val_data={val_pattern!r}: the validation shards hold no examples")
    return DataSpec(train_files, val_files, train_examples, val_examples, max_label)


def _run_files(names):
    """The names in a work directory that belong to a run: all but the lock file and ``*.log``/``nohup.out``."""
    return {n for n in names if n != run_lock.LOCK_NAME and not n.endswith(".log") and n != "nohup.out"}


def check_work_dir(config):
    """Raises :class:`ConfigError` if ``config.work_dir`` holds an incompatible run; returns whether it holds one."""
    config_path = os.path.join(config.work_dir, "config.json")
    if os.path.exists(config.work_dir) and not os.path.isdir(config.work_dir):
        raise ConfigError(f"--work_dir={config.work_dir!r} is a file, not a directory; use a new or empty directory")
    held = run_lock.held_by_another(config.work_dir) if os.path.isdir(config.work_dir) else None
    if held:
        raise ConfigError(held)
    # The lock file alone (a run killed right after taking it) does not make a directory a run's, nor
    # does the log of a background start (`nohup python -m keras_colorize.train ... > WORK_DIR/train.log`).
    if not os.path.isdir(config.work_dir) or not _run_files(os.listdir(config.work_dir)):
        return False
    if not os.path.exists(config_path):
        raise ConfigError(
            f"--work_dir={config.work_dir!r} exists and is not empty, but holds no config.json of a keras_colorize "
            "training run; use a new or empty directory")
    try:
        with open(config_path) as f:
            previous = json.load(f)
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"--work_dir={config.work_dir!r}: its config.json cannot be read ({e}); repair it (flags.txt beside it "
            "holds the same settings) or use another --work_dir") from None
    current = config.to_dict()
    def before(name):
        return previous.get(name, LEGACY_RESUME_VALUES.get(name))

    changed = [f"{name}={before(name)!r} there, {current[name]!r} now"
               for name in RESUME_FIELDS if before(name) != current[name]]
    if changed:
        raise ConfigError(
            f"--work_dir={config.work_dir!r} holds a run with an incompatible configuration ({'; '.join(changed)}); "
            "use another --work_dir, or delete this one to start over")
    other = [name for name in current if name not in RESUME_FIELDS and previous.get(name) != current[name]]
    if other:
        logging.warning("resuming %s with changed settings: %s", config.work_dir,
                        ", ".join(f"{n}: {previous.get(n)!r} -> {current[n]!r}" for n in other))
    return True


def validate(config, check_data=True, check_dir=True):
    """All checks that need no training: work directory, and the data if ``check_data``.

    Flagfile tests call it with ``check_data=False`` (the Places365 shards are
    not on the CI machine). Non-chief workers skip ``check_dir`` (the chief
    writes the directory while they would read it).
    """
    if check_dir:
        check_work_dir(config)
    if config.encoder_weights and check_data and not os.path.exists(config.encoder_weights):
        raise ConfigError(
            f"--encoder_weights={config.encoder_weights!r} does not exist; write it with "
            "`python -m keras_colorize.tools.port_resnet34`")
    if config.init_from and check_data:
        from keras_colorize.inference import model_spec  # noqa: PLC0415

        try:
            model_spec.locate(config.init_from, kinds=(model_spec.KERAS,), label="--init_from=")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return resolve_data(config) if check_data else None


def _write_run_files(config):
    os.makedirs(config.work_dir, exist_ok=True)
    fileio.atomic_write_text(os.path.join(config.work_dir, "config.json"), json.dumps(config.to_dict(), indent=1) + "\n")
    header = (f"# Resolved flags of the run in {config.work_dir} (rerun: python -m keras_colorize.train "
              f"--flagfile={os.path.join(config.work_dir, 'flags.txt')})\n")
    fileio.atomic_write_text(os.path.join(config.work_dir, "flags.txt"), header + config.to_flags())


# ---------------------------------------------------------------------------
# 3. Model, optimizer, datasets
# ---------------------------------------------------------------------------


def make_optimizer(config, total_steps):
    """The optimizer of ``config`` with its learning-rate schedule."""
    lr = config.learning_rate
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    if config.lr_schedule == "cosine" or warmup:
        # alpha=1 keeps the rate constant after the warm-up ("constant" schedule).
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else lr, decay_steps=max(total_steps - warmup, 1),
            alpha=0.0 if config.lr_schedule == "cosine" else 1.0,
            warmup_target=lr if warmup else None, warmup_steps=warmup)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr)
    if config.optimizer == "adadelta":
        return keras.optimizers.Adadelta(lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9)
    return keras.optimizers.RMSprop(lr)


def build_and_compile(config, strategy, total_steps):
    """The compiled colorizer, with optimizer variables built (so checkpoints restore)."""
    prior = None
    if config.ab_prior:
        try:
            prior = ab_bins.load_prior(config.ab_prior)
        except ValueError as e:
            raise ConfigError(f"--ab_prior={config.ab_prior!r}: {e}") from None
    elif config.ab_loss == models.BINS_LOSS:
        logging.warning("--ab_prior is not set: uniform a*b* prior, so the bins loss is not rebalanced")
    model_config = config.model_config(prior=prior)
    previous_policy = keras.config.dtype_policy()
    warning = perf.check_precision(config.precision) if not tf.config.list_physical_devices("GPU") else None
    if warning:
        logging.warning(warning)
    keras.config.set_dtype_policy(config.precision)
    try:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = models.build_colorizer(model_config)
            logging.info("%s: %s trainable parameters per block", model.name, models.parameter_counts(model))
            if config.encoder_weights:
                models.load_encoder_weights(
                    model if isinstance(model, models.ColorizerModel) else model.get_layer("encoder"),
                    config.encoder_weights)
                logging.info("encoder initialized from %s", config.encoder_weights)
            if config.init_from:
                _warm_start(model, config.init_from)
            if config.train_only:
                _train_only(model, config.train_only_prefixes())
            if strategy.num_replicas_in_sync > 1:
                _synchronize_batch_norm(model)
            loss, loss_weights = models.colorizer_losses(model_config, class_weight=config.class_loss_weight,
                                                    ab_kind=config.ab_loss)
            model.compile(optimizer=make_optimizer(config, total_steps), loss=loss, loss_weights=loss_weights,
                          jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
            model.optimizer.build(model.trainable_variables)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return model, loss


def _warm_start(model, spec):
    """Copies a trained model's weights into ``model`` by layer name (``--init_from``)."""
    from keras_colorize.inference import api  # noqa: PLC0415 - the checked loader (bundled names too)

    try:
        source = api.load_keras_model(spec)
    except ValueError as e:
        raise ConfigError(f"--init_from={spec!r}: {e}") from None
    try:
        report = models.transfer_weights(source, model)
    except ValueError as e:
        raise ConfigError(f"--init_from={spec!r}: {e}") from None
    logging.info("warm start from %s: %s", spec, report.summary())


def _train_only(model, prefixes):
    """Freezes every top-level layer whose name starts with none of ``prefixes`` (``--train_only``)."""
    chosen = [layer for layer in model.layers if layer.weights and layer.name.startswith(prefixes)]
    if not chosen:
        raise ConfigError(f"--train_only={','.join(prefixes)!r}: no layer with weights of {model.name} starts with "
                          f"it (its layers: {', '.join(sorted({l.name.split('_')[0] for l in model.layers}))})")
    for layer in model.layers:
        layer.trainable = layer in chosen
    logging.info("--train_only: %d layers train (%s parameters), the others are frozen", len(chosen),
                 f"{sum(math.prod(w.shape) for l in chosen for w in l.trainable_weights):,}")


def _synchronize_batch_norm(model):
    """Makes every BatchNormalization use the statistics of the global batch.

    With several replicas each would otherwise normalize with, and update its
    moving averages from, its own slice of the batch: the replicas' moving
    statistics drift apart (seen here on two CPU replicas), and small
    per-replica batches give noisy statistics. Synchronized, training matches
    one device with the global batch, and all replicas hold identical weights.
    """
    count = 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
        stack.extend(getattr(layer, "layers", []))
    logging.info("%d BatchNormalization layers synchronized across replicas", count)


def _train_dataset(config, data, strategy, seed):
    def dataset_fn(input_context):
        return pipeline.make_dataset(list(data.train_files), "train", config.image_size, config.batch_size,
                                     seed=seed, with_class=config.fusion, repeat=True,
                                     input_context=input_context, scale_jitter=config.scale_jitter,
                                     hints=config.hints, hint_schedule=config.hint_schedule())
    return strategy.distribute_datasets_from_function(dataset_fn)


def _val_dataset(config, data):
    batch = config.val_batch_size or config.batch_size
    ds = pipeline.make_dataset(list(data.val_files), "val", config.image_size, batch, with_class=config.fusion,
                               hints=config.hints)
    images = data.val_examples if not config.val_steps else min(data.val_examples, config.val_steps * batch)
    if config.val_steps:
        ds = ds.take(config.val_steps)
    # Small validation sets are decoded once and kept in memory (L + ab: 12 bytes per pixel).
    if images * config.image_size**2 * 12 < 512 * 2**20:
        ds = ds.cache()
    return ds


def _grid_batch(val_ds, count):
    if not count:
        return None
    for l_input, targets in val_ds.unbatch().take(count).batch(count):
        return l_input, targets["ab"]
    return None


# ---------------------------------------------------------------------------
# 4. Training
# ---------------------------------------------------------------------------


def _callbacks(config, model, loss, val_ds, chief, worker_index, total_steps):
    log_dir = os.path.join(config.work_dir, "logs")
    evaluator = validation.ValidationEvaluator(val_ds, loss["ab"], loss.get("class"), config.class_loss_weight,
                                              jit_compile=config.jit_compile)
    counter = monitors.StepCounter()
    checkpoint = checkpoints.ResumableCheckpoint(
        os.path.join(config.work_dir, "checkpoints"), counter, config.checkpoint_every_steps,
        keep=config.keep_checkpoints,
        is_chief=chief, worker_dir=os.path.join(config.work_dir, f".worker-{worker_index}", "checkpoints"),
    ).attach(model)
    run_callbacks = [
        counter,
        monitors.ThroughputMonitor(counter, config.batch_size, config.steps_per_execution, total_steps,
                                    config.log_every_steps, log_dir=os.path.join(log_dir, "train") if chief else None),
        validation.PaperValidation(evaluator, _grid_batch(val_ds, config.grid_images),
                                  log_dir=os.path.join(log_dir, "validation") if chief else None),
        # Before the savers: a non-finite loss or validation figure ends fit before they see the model.
        monitors.DivergenceGuard(counter, checkpoint),
        checkpoints.BestModelSaver(os.path.join(config.work_dir, "best.keras"), counter, monitor="val_mae",
                                 enabled=chief),
        checkpoint,
        monitors.EpochConsoleLogger(config.epochs),
    ]
    if chief:
        run_callbacks.append(keras.callbacks.TensorBoard(log_dir, update_freq="epoch", write_graph=False,
                                                         profile_batch=0))
    return run_callbacks, checkpoint, evaluator


def _resume_learning_rate(model, config):
    """Gives a constant learning rate the flag's value after a restore.

    The checkpoint restores the optimizer's learning-rate variable too, so a
    rerun with a changed ``--learning_rate`` (which check_work_dir announces)
    would silently keep the old one. Schedules are not in the checkpoint: the
    one built from the flags already applies.
    """
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    variable = getattr(optimizer, "_learning_rate", None)
    if not isinstance(variable, keras.Variable):
        return
    restored = float(keras.ops.convert_to_numpy(variable))
    if abs(restored - config.learning_rate) > 1e-6 * config.learning_rate:  # float32 vs the flag's float
        logging.info("learning rate %g from the flags replaces the checkpoint's %g", config.learning_rate, restored)
        variable.assign(config.learning_rate)


def _fit_phases(start_step, steps_per_epoch, epochs):
    """``(initial_epoch, epochs, steps_per_epoch)`` of the ``fit`` calls that finish a run from ``start_step``.

    Resuming in the middle of an epoch first finishes that epoch's remaining
    steps, so epochs end at the same steps as in an uninterrupted run.
    """
    epoch, offset = divmod(start_step, steps_per_epoch)
    phases = []
    if offset and epoch < epochs:
        phases.append((epoch, epoch + 1, steps_per_epoch - offset))
        epoch += 1
    if epoch < epochs:
        phases.append((epoch, epochs, steps_per_epoch))
    return phases


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the summary (also in ``summary.json``) and the trained model."""
    summary: dict
    model: object


def train(config):
    """Trains (or resumes) the run of ``config``; returns a :class:`TrainResult`.

    With ``config.fused_batch_norm`` (the default) BatchNormalization runs on
    TensorFlow's fused kernel for the duration of the run
    (:func:`keras_colorize.training.perf.fused_batch_norm`: same variables and results,
    about 11 % less CPU time per training step, see BUILD_NOTES.md "Performance").

    Raises:
      ConfigError: before any training, for bad flags, data or work directory (one held by another
        run, checkpoints none of which loads).
      keras_colorize.training.monitors.TrainingDiverged: the loss or the weights became non-finite; training
        stopped there, and neither a checkpoint, ``best.keras`` nor ``final.keras`` was written after it.
    """
    if not perf.onednn_enabled():
        logging.warning("TF_ENABLE_ONEDNN_OPTS=0: oneDNN is off; CPU training runs about 2x slower")
    with perf.fused_batch_norm(config.fused_batch_norm):
        return _train(config)


def _train(config):
    run_start = time.time()
    strategy = make_strategy(config)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"--batch_size={config.batch_size} is the global batch and must be divisible by the "
                          f"{replicas} replicas of strategy={config.strategy!r}")
    chief = is_chief(strategy)
    data = validate(config, check_dir=chief)
    # Only the chief writes the work directory, so only the chief locks it.
    lock = _lock_work_dir(config) if chief else None
    try:
        if chief:
            check_work_dir(config)  # again: a run that held the lock until now may have written it
            _write_run_files(config)
        return _fit_and_finish(config, strategy, chief, data, run_start)
    finally:
        if lock is not None:
            lock.release()


def _lock_work_dir(config):
    """Takes ``<work_dir>/.lock`` (:mod:`keras_colorize.training.run_lock`); ConfigError if held or not writable."""
    try:
        return run_lock.WorkDirLock(config.work_dir).acquire()
    except run_lock.WorkDirLocked as e:
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise ConfigError(f"--work_dir={config.work_dir!r} cannot be created or written ({e.strerror or e})") from None


def _fit_and_finish(config, strategy, chief, data, run_start):
    """Builds the model, resumes from the last checkpoint that loads, trains, evaluates (under the lock)."""
    replicas = strategy.num_replicas_in_sync
    resolver = getattr(strategy, "cluster_resolver", None)
    worker_index = getattr(resolver, "task_id", 0) or 0
    steps_per_epoch = config.steps_per_epoch or data.train_examples // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    logging.info("%s: %d train / %d val examples, %d replicas, global batch %d, %d steps/epoch, %d epochs",
                 config.work_dir, data.train_examples, data.val_examples, replicas, config.batch_size,
                 steps_per_epoch, config.epochs)
    model, loss = build_and_compile(config, strategy, total_steps)
    val_ds = _val_dataset(config, data)
    run_callbacks, checkpoint, evaluator = _callbacks(config, model, loss, val_ds, chief, worker_index, total_steps)
    try:
        start_step = checkpoint.restore()
    except checkpoints.CheckpointError as e:
        raise ConfigError(f"--work_dir={config.work_dir!r}: {e}") from None
    if start_step:
        _resume_learning_rate(model, config)
    if start_step >= total_steps:
        logging.info("%s already finished (step %d of %d)", config.work_dir, start_step, total_steps)
    verbose = 1 if chief and sys.stdout.isatty() else 0
    history = {}
    train_start = time.time()
    for initial_epoch, epochs, steps in _fit_phases(start_step, steps_per_epoch, config.epochs):
        step = checkpoint.counter.value
        # A resumed run reshuffles from a seed tied to its step: reproducible, and not a replay.
        train_ds = _train_dataset(config, data, strategy, seed=config.seed + step)
        result = model.fit(train_ds, initial_epoch=initial_epoch, epochs=epochs, steps_per_epoch=steps,
                           callbacks=run_callbacks, verbose=verbose, shuffle=False)
        for name, values in result.history.items():
            history.setdefault(name, []).extend(float(v) for v in values)
    train_seconds = time.time() - train_start
    summary = _finish(config, model, evaluator, history, chief, start_step, checkpoint.counter.value, total_steps,
                      train_seconds)
    summary["wall_time_s"] = round(time.time() - run_start, 1)
    if chief:
        fileio.atomic_write_text(os.path.join(config.work_dir, "summary.json"), json.dumps(summary, indent=1) + "\n")
    if config.strategy == "multi_worker":
        # Workers leave together: one that exits while the chief still evaluates looks crashed to it.
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
    return TrainResult(summary, model)


# ---------------------------------------------------------------------------
# 5. Final evaluation and summary
# ---------------------------------------------------------------------------


def _finish(config, model, evaluator, history, chief, start_step, steps, total_steps, train_seconds):
    final_path = os.path.join(config.work_dir, "final.keras")
    best_path = os.path.join(config.work_dir, "best.keras")
    summary = {
        "work_dir": os.path.abspath(config.work_dir),
        "steps": steps,
        "total_steps": total_steps,
        "resumed_from_step": start_step,
        "train_seconds": round(train_seconds, 1),
        "history": history,
    }
    if not chief:
        return summary
    checkpoints.save_model_atomic(model, final_path)
    evaluated = best_path if os.path.exists(best_path) else final_path
    result = evaluator.evaluate(keras.saving.load_model(evaluated))
    gray = evaluator.gray_baseline()
    best = None
    if evaluated == best_path:
        with open(os.path.splitext(best_path)[0] + ".json") as f:
            best = json.load(f)
    summary.update({
        "evaluated_model": evaluated,
        "best": best,
        "val_images": result["images"],
        "val": {k: result[k] for k in ("mae", "mse_ab", "mse_lab", "loss")},
        "gray_baseline": gray,
        "beats_gray_baseline": result["mae"] < gray["mae"],
    })
    _print_result(config, evaluated, result, gray)
    return summary


def _print_result(config, evaluated, result, gray):
    rows = [("model", result), ("gray (a*=b*=0)", gray)]
    lines = [
        f"Validation on {result['images']} images, {evaluated} (the paper's Table 2 metrics, normalized units):",
        f"  {'':16} {'MAE':>10} {'MSE a*b*':>10} {'MSE La*b*':>10}",
    ]
    lines += [f"  {name:16} {r['mae']:10.6f} {r['mse_ab']:10.6f} {r['mse_lab']:10.6f}" for name, r in rows]
    verdict = "below" if result["mae"] < gray["mae"] else "NOT below"
    lines.append(f"  validation MAE {result['mae']:.6f} is {verdict} the gray baseline MAE {gray['mae']:.6f}")
    lines.append(f"  TensorBoard: tensorboard --logdir {os.path.join(config.work_dir, 'logs')}")
    print("\n".join(lines), flush=True)
