"""tf.data input pipeline: TFRecord shards -> ``(L, {"ab", "class"})`` batches.

Read (interleaved shards) -> decode (parse the Example) -> preprocess (decode
JPEG, crop/flip, uint8) -> batch -> Lab per batch (XLA) -> prefetch. Everything is TF graph code: no
Python-side state, nothing cached, memory bounded by the shuffle buffer and
the prefetch depth whatever the number of images, so it runs under any
``tf.distribute`` strategy (pass the ``tf.distribute.InputContext`` from
``distribute_datasets_from_function`` to shard by file per input pipeline).

Example::

    from keras_colorize.data import pipeline
    train = pipeline.make_dataset("shards/train-*", "train", image_size=256, batch_size=16, seed=0)
    for l_input, targets in train.take(1):
        l_input.shape, targets["ab"].shape, targets["class"].shape  # (16,256,256,1) (16,256,256,2) (16,)
"""

import dataclasses

import tensorflow as tf

from keras_colorize.data import features
from keras_colorize.data import preprocess
from keras_colorize.guidance import hint_ops

SPLITS = ("train", "val", "test")
AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Knobs with defaults that suit Places365 at 256 px; all optional for :func:`make_dataset`."""

    shuffle_buffer: int = 4096  # serialized records (~20 KB each at 256 px), not decoded images
    cycle_length: int = 16  # shards read at once
    block_length: int = 1
    prefetch: int = AUTOTUNE


def list_files(file_pattern):
    """Sorted files matching a glob pattern (or a list of patterns); ValueError if none."""
    patterns = [file_pattern] if isinstance(file_pattern, (str, bytes)) else list(file_pattern)
    if not patterns:
        raise ValueError(f"file_pattern must name at least one pattern, got {file_pattern!r}")
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise ValueError(f"file_pattern={file_pattern!r} matches no files")
    return files


def _to_model(with_class, hints=None, schedule=None):
    """Batch of uint8 crops and labels -> ``(L, {"ab"[, "class"]})``, Lab in one XLA kernel.

    ``hints``: None for an automatic model; ``"simulate"`` (training: simulated hints, the
    function then also takes a stateless seed) or ``"none"`` (validation: zero hints and no
    reference) for a guided model, whose inputs are then the dict {"L", "hints", "reference"}.
    ``schedule``: keyword arguments of :func:`hint_ops.simulate_hints` (its probabilities).
    """

    def _convert(images, labels, seed=None):
        l_input, ab = preprocess.to_model_units_batch(images)
        targets = {"ab": ab}
        if with_class:
            targets["class"] = tf.cast(labels, tf.int32)
        if hints is None:
            return l_input, targets
        batch = tf.shape(images)[0]
        if hints == "simulate":
            hint_map, reference = hint_ops.simulate_hints(ab * 255.0 - 128.0, images, seed, **(schedule or {}))
        else:
            hint_map, reference = hint_ops.no_hints(images.shape[1], batch), hint_ops.no_reference(batch)
        return {"L": l_input, "hints": hint_map, "reference": reference}, targets

    return _convert


def make_dataset(
    file_pattern,
    split,
    image_size,
    batch_size,
    *,
    seed=None,
    with_class=True,
    repeat=False,
    drop_remainder=None,
    input_context=None,
    scale_jitter=1.0,
    hints=False,
    hint_schedule=None,
    config=PipelineConfig(),
):
    """Batches of model inputs and targets from TFRecord shards.

    Args:
      file_pattern: glob (or list of globs) of shards written by ``make_shards``
        or :func:`keras_colorize.data.demo.ensure_demo_shards`.
      split: ``"train"`` (shuffle, random crop + horizontal flip, drop the last
        partial batch) or ``"val"`` / ``"test"`` (file order, resize short
        side + center crop, keep every image).
      image_size: side of the square crops (the model's input size).
      batch_size: examples per batch; the *global* batch when ``input_context``
        is given (each pipeline then yields ``input_context.get_per_replica_batch_size``).
      seed: int; makes file order, shuffling, crops and flips reproducible.
        ``None``: nondeterministic (fastest).
      with_class: if False the targets are ``{"ab"}`` only (the no-fusion model,
        which has no class head).
      repeat: repeat indefinitely (reshuffled every pass); otherwise one pass
        per iteration (Keras ``fit`` reshuffles between epochs anyway).
      drop_remainder: defaults to True for train, False otherwise.
      input_context: ``tf.distribute.InputContext`` for per-host file sharding.
      scale_jitter: training views only: zoom of up to this factor before the
        random crop (:func:`preprocess.train_image`); 1 = none.
      hints: inputs for a guided model (``hints=True`` in its config): the dict
        {"L", "hints", "reference"}. Training batches get hints simulated from their
        ground truth (:func:`keras_colorize.guidance.hint_ops.simulate_hints`, seeded
        per batch), validation batches none (the automatic case).
      hint_schedule: dict of ``reference_probability`` and ``automatic_probability`` for
        the simulation (None: :func:`hint_ops.simulate_hints`'s defaults).
      config: :class:`PipelineConfig`.

    Returns:
      ``tf.data.Dataset`` of ``(L, targets)``: ``L`` float32 ``(B, H, W, 1)`` =
      L/100 in [0, 1]; ``targets["ab"]`` float32 ``(B, H, W, 2)`` = (ab+128)/255
      in [0, 1]; ``targets["class"]`` int32 ``(B,)``, -1 where unlabelled.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    files = list_files(file_pattern)
    training = split == "train"
    if drop_remainder is None:
        drop_remainder = training
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)

    ds = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) < input_context.num_input_pipelines:
            raise ValueError(
                f"file_pattern={file_pattern!r} has {len(files)} shards, fewer than the "
                f"{input_context.num_input_pipelines} input pipelines"
            )
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    deterministic = (not training) or seed is not None
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(config.cycle_length, len(files)),
        block_length=config.block_length,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )

    if training:
        ds = ds.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        # One stateless seed pair per example, fresh on every pass.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

        def _map(serialized, example_seed):
            example = features.parse_example(serialized)
            view = preprocess.train_image(example[features.IMAGE], image_size, example_seed, scale_jitter)
            return view, example[features.LABEL]

    else:
        if repeat:
            ds = ds.repeat()

        def _map(serialized):
            example = features.parse_example(serialized)
            return preprocess.eval_image(example[features.IMAGE], image_size), example[features.LABEL]

    ds = ds.map(_map, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # Crops stay uint8 until batched; Lab is computed per batch (see preprocess.to_model_units_batch).
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if hints and training:
        batch_seeds = tf.data.Dataset.random(seed=None if seed is None else seed + 1,
                                             rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, batch_seeds)).map(
            lambda batch, batch_seed: _to_model(with_class, "simulate", hint_schedule)(*batch, batch_seed),
            num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        ds = ds.map(_to_model(with_class, ("none" if hints else None)), num_parallel_calls=AUTOTUNE,
                    deterministic=deterministic)
    ds = ds.prefetch(config.prefetch)
    options = tf.data.Options()
    options.deterministic = deterministic
    policy = tf.data.experimental.AutoShardPolicy
    # With an input context the files are already split per pipeline; otherwise let tf.distribute shard.
    options.experimental_distribute.auto_shard_policy = policy.OFF if input_context is not None else policy.AUTO
    return ds.with_options(options)
