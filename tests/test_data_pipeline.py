"""make_dataset over real shards written by the shard tool from a temporary folder."""


import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize import color
from keras_colorize.data import features
from keras_colorize.data import pipeline
from keras_colorize.data import preprocess
from keras_colorize.data import shards_lib
from keras_colorize.data import shard_writer
from keras_colorize.data import photo_repair

CLASSES = ["/c/coast", "/f/field/wild", "/s/sky"]
PER_CLASS = 9  # 27 images
IMAGE_SIZE = 48


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """An easy-format tree of colourful non-square JPEGs, written by make_shards into 4 shards."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        folder = root / "train" / name[3:].replace("/", "-")
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            h, w = (rng.integers(60, 90), rng.integers(90, 140)) if i % 2 else (rng.integers(90, 140), rng.integers(60, 90))
            y, x = np.mgrid[0:h, 0:w] / max(h, w)
            image = np.stack([np.sin(6 * x + label) * 0.5 + 0.5, y, np.cos(4 * (x + y) + i) * 0.5 + 0.5], -1)
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=95)
    classes = root / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    out = tmp_path_factory.mktemp("shards")
    config = shards_lib.MakeShardsConfig(source=str(root), output=str(out), split="train", classes=str(classes),
                                         test_per_class=0, shard_size=7, encode=photo_repair.EncodeConfig(short_side=64))
    stats, _ = shards_lib.make_shards(config, progress=False)
    assert stats.num_written == len(CLASSES) * PER_CLASS
    return shard_writer.file_pattern(str(out), "train")


def _check_batch(l_input, targets, batch, with_class=True):
    assert l_input.shape == (batch, IMAGE_SIZE, IMAGE_SIZE, 1) and l_input.dtype == tf.float32
    assert targets["ab"].shape == (batch, IMAGE_SIZE, IMAGE_SIZE, 2) and targets["ab"].dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(l_input)) and float(tf.reduce_max(l_input)) <= 1.0
    assert 0.0 <= float(tf.reduce_min(targets["ab"])) and float(tf.reduce_max(targets["ab"])) <= 1.0
    assert float(tf.math.reduce_std(targets["ab"])) > 0.01  # colourful sources give non-constant targets
    if with_class:
        assert targets["class"].shape == (batch,) and targets["class"].dtype == tf.int32
        assert set(targets["class"].numpy().tolist()) <= set(range(len(CLASSES)))
    else:
        assert set(targets) == {"ab"}


def test_train_batches(shards):
    ds = pipeline.make_dataset(shards, "train", IMAGE_SIZE, 5, seed=1)
    assert ds.element_spec[0].shape.as_list() == [5, IMAGE_SIZE, IMAGE_SIZE, 1]  # static batch: drop_remainder
    batches = list(ds)
    assert len(batches) == 27 // 5
    for l_input, targets in batches:
        _check_batch(l_input, targets, 5)


def test_scale_jitter_reaches_the_training_views(shards):
    """--scale_jitter changes the training crops (same seed), never the evaluation view."""
    plain = next(iter(pipeline.make_dataset(shards, "train", IMAGE_SIZE, 5, seed=1)))
    jittered = next(iter(pipeline.make_dataset(shards, "train", IMAGE_SIZE, 5, seed=1, scale_jitter=1.5)))
    _check_batch(*jittered, 5)
    np.testing.assert_array_equal(plain[1]["class"].numpy(), jittered[1]["class"].numpy())  # same photos
    assert float(tf.reduce_max(tf.abs(plain[0] - jittered[0]))) > 0.05
    val = [next(iter(pipeline.make_dataset(shards, "val", IMAGE_SIZE, 5, scale_jitter=j)))[0] for j in (1.0, 1.5)]
    np.testing.assert_array_equal(val[0].numpy(), val[1].numpy())


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_sees_every_image_once(shards, split):
    batches = list(pipeline.make_dataset(shards, split, IMAGE_SIZE, 5))
    assert [b[0].shape[0] for b in batches] == [5, 5, 5, 5, 5, 2]
    labels = np.concatenate([t["class"].numpy() for _, t in batches])
    assert sorted(labels.tolist()) == sorted(list(range(len(CLASSES))) * PER_CLASS)
    for l_input, targets in batches[:-1]:
        _check_batch(l_input, targets, 5)


def test_eval_targets_are_the_center_crop_in_lab(shards):
    """L and ab come from the same pixels: together they give back the stored image's center crop."""
    (l_input, targets), = pipeline.make_dataset(shards, "val", IMAGE_SIZE, 1).take(1)
    first_file = sorted(tf.io.gfile.glob(shards))[0]
    raw = next(iter(tf.data.TFRecordDataset(first_file)))
    expected = preprocess.eval_image(features.parse_example(raw)[features.IMAGE], IMAGE_SIZE)
    rgb = color.model_to_rgb(l_input[0], targets["ab"][0])
    np.testing.assert_allclose(rgb.numpy(), expected.numpy() / 255.0, atol=2e-3)


def test_without_class_target(shards):
    l_input, targets = next(iter(pipeline.make_dataset(shards, "train", IMAGE_SIZE, 4, seed=0, with_class=False)))
    _check_batch(l_input, targets, 4, with_class=False)


def test_seeded_training_is_reproducible(shards):
    def first_two(seed):
        return [(l.numpy(), t["class"].numpy()) for l, t in pipeline.make_dataset(shards, "train", IMAGE_SIZE, 4, seed=seed).take(2)]

    a, b, c = first_two(7), first_two(7), first_two(8)
    for (la, ca), (lb, cb) in zip(a, b):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ca, cb)
    assert any(not np.array_equal(la, lc) for (la, _), (lc, _) in zip(a, c))


def test_epochs_reshuffle_and_augment(shards):
    ds = pipeline.make_dataset(shards, "train", IMAGE_SIZE, 27 // 3, seed=3)
    epoch1 = [l.numpy() for l, _ in ds]
    epoch2 = [l.numpy() for l, _ in ds]
    assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2))


def test_repeat(shards):
    ds = pipeline.make_dataset(shards, "train", IMAGE_SIZE, 8, seed=0, repeat=True)
    assert sum(1 for _ in ds.take(10)) == 10  # 80 > 27 images: it repeats


def test_input_context_shards_files(shards):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    batches = list(pipeline.make_dataset(shards, "val", IMAGE_SIZE, 4, input_context=context))
    assert all(l.shape[0] <= 2 for l, _ in batches)  # per-replica batch = 4 / 2
    files = sorted(tf.io.gfile.glob(shards))
    expected = sum(sum(1 for _ in tf.data.TFRecordDataset(f)) for f in files[1::2])
    assert sum(l.shape[0] for l, _ in batches) == expected


def test_distribute_datasets_from_function(shards):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.make_dataset(shards, "train", IMAGE_SIZE, 4, seed=0, input_context=ctx)
    )
    l_input, targets = next(iter(dist))
    _check_batch(l_input, targets, 4)


def test_bad_arguments(shards, tmp_path):
    with pytest.raises(ValueError, match="split"):
        pipeline.make_dataset(shards, "training", IMAGE_SIZE, 4)
    with pytest.raises(ValueError, match="matches no files"):
        pipeline.make_dataset(str(tmp_path / "nothing-*"), "train", IMAGE_SIZE, 4)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.make_dataset(shards, "train", IMAGE_SIZE, 0)
    with pytest.raises(ValueError, match="image_size"):
        pipeline.make_dataset(shards, "train", 2.5, 4)
