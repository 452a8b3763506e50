"""Built-in demo data: deterministic, cached, balanced, readable by the pipeline, class-dependent colour."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_colorize import color
from keras_colorize.data import demo
from keras_colorize.data import features
from keras_colorize.data import pipeline

SMALL = dict(num_train=30, num_val=10, num_test=5, image_size=32, shard_size=8, progress=False)


def _serialized(pattern):
    return [r.numpy() for f in sorted(tf.io.gfile.glob(pattern)) for r in tf.data.TFRecordDataset(f)]


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return demo.ensure_demo_shards(str(tmp_path_factory.mktemp("demo")), seed=0, **SMALL)


def test_writes_all_splits(small_demo):
    assert small_demo["classes"] == demo.DEMO_CLASSES and len(demo.DEMO_CLASSES) == 5
    for split, count in (("train", 30), ("val", 10), ("test", 5)):
        examples = [features.parse_example(s) for s in _serialized(small_demo[split])]
        assert len(examples) == count
        labels = [int(e[features.LABEL]) for e in examples]
        assert sorted(labels) == sorted(i % 5 for i in range(count))  # balanced
        for e in examples:
            assert demo.DEMO_CLASSES[int(e[features.LABEL])] == e[features.CLASS_NAME].numpy().decode()
            image = tf.io.decode_jpeg(e[features.IMAGE])
            assert image.shape == (32, 43, 3)
        summary = json.load(open(os.path.join(small_demo["directory"], f"summary-{split}.json")))
        assert sum(summary["written"].values()) == count and summary["class_names"] == demo.DEMO_CLASSES
        assert sorted(tf.io.gfile.glob(summary["file_pattern"])) == sorted(tf.io.gfile.glob(small_demo[split]))


def test_cached_second_call_writes_nothing(small_demo):
    folder = small_demo["directory"]
    before = {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)}
    again = demo.ensure_demo_shards(os.path.dirname(folder), seed=0, **SMALL)
    assert again == small_demo
    assert {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)} == before


def test_deterministic_given_seed(small_demo, tmp_path):
    same = demo.ensure_demo_shards(str(tmp_path / "a"), seed=0, **SMALL)
    other = demo.ensure_demo_shards(str(tmp_path / "b"), seed=1, **SMALL)
    assert _serialized(same["val"]) == _serialized(small_demo["val"])
    assert _serialized(other["val"]) != _serialized(small_demo["val"])


def test_pipeline_reads_demo(small_demo):
    l_input, targets = next(iter(pipeline.make_dataset(small_demo["train"], "train", 32, 6, seed=0)))
    assert l_input.shape == (6, 32, 32, 1) and targets["ab"].shape == (6, 32, 32, 2)
    assert set(targets["class"].numpy().tolist()) <= set(range(5))


def test_palettes_differ_while_luminance_structure_is_alike():
    """Same geometry, different class: the L maps correlate strongly, the mean colours do not match."""
    size = (48, 64)
    mean_ab = {}
    correlations = []
    for i in range(4):
        lightness = {}
        for name in demo.DEMO_CLASSES:
            rgb = demo.render_scene(np.random.default_rng([5, i]), demo.PALETTES[name], *size)
            lab = color.rgb_to_lab(rgb).numpy()
            lightness[name] = lab[..., 0].ravel()
            mean_ab.setdefault(name, []).append(lab[..., 1:].reshape(-1, 2).mean(0))
        correlations.append(np.corrcoef(lightness["day_meadow"], lightness["sunset"])[0, 1])
        correlations.append(np.corrcoef(lightness["day_meadow"], lightness["autumn"])[0, 1])
    assert min(correlations) > 0.6, correlations
    centres = {n: np.mean(v, axis=0) for n, v in mean_ab.items()}
    names = list(centres)
    gaps = [np.linalg.norm(centres[a] - centres[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    assert min(gaps) > 4.0, dict(zip([(a, b) for i, a in enumerate(names) for b in names[i + 1 :]], gaps))


def test_scenes_vary_within_a_class():
    a = demo.render_scene(np.random.default_rng(1), demo.PALETTES["sunset"], 32, 43)
    b = demo.render_scene(np.random.default_rng(2), demo.PALETTES["sunset"], 32, 43)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_train"):
        demo.ensure_demo_shards(str(tmp_path), num_train=-1)
    with pytest.raises(ValueError, match="image_size"):
        demo.ensure_demo_shards(str(tmp_path), image_size=4)
