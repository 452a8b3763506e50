"""Places365 layouts (easy format and original), class-name mapping, the paper's split, the class list."""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize.data import features
from keras_colorize.data import pipeline
from keras_colorize.data import places365
from keras_colorize.data import shards_lib
from keras_colorize.data import photo_repair

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Real Places365 indices; "/a/alley" is in the source but not in our class list.
CATEGORIES = {"/a/alley": 4, "/c/coast": 91, "/d/desert/sand": 116, "/f/field/wild": 141, "/m/mountain": 232}
CLASSES = ["/f/field/wild", "/m/mountain", "/d/desert/sand", "/c/coast"]  # label = this order
COLOURS = {"/a/alley": (90, 90, 200), "/c/coast": (30, 120, 200), "/d/desert/sand": (220, 180, 110),
           "/f/field/wild": (90, 170, 60), "/m/mountain": (120, 100, 90)}
NUM_TRAIN, NUM_VAL, TEST_PER_CLASS = 7, 3, 2


def _tiny_jpeg(path, name, i):
    """A small JPEG whose colour says its class (so labels can be checked from pixels)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(i)
    image = np.clip(np.array(COLOURS[name]) + rng.integers(-12, 12, (24, 32, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path, quality=92)


def _easy_name(name):
    return name[3:].replace("/", "-")


def _write_categories(path):
    with open(path, "w") as f:
        for name, index in sorted(CATEGORIES.items(), key=lambda kv: kv[1]):
            f.write(f"{name} {index}\n")


@pytest.fixture(scope="module")
def standard_tree(tmp_path_factory):
    """places365_standard/{train,val}/<class>/ with sub-categories joined by '-' (field-wild)."""
    root = tmp_path_factory.mktemp("easy")
    val_id = 0
    for name in CATEGORIES:
        for i in range(NUM_TRAIN):
            _tiny_jpeg(str(root / "places365_standard" / "train" / _easy_name(name) / f"{i + 1:08d}.jpg"), name, i)
        for i in range(NUM_VAL):
            val_id += 1
            _tiny_jpeg(str(root / "places365_standard" / "val" / _easy_name(name) / f"Places365_val_{val_id:08d}.jpg"), name, 100 + i)
    return root


@pytest.fixture(scope="module")
def original_tree(tmp_path_factory):
    """data_256/<letter>/<class>/, flat val_256/, file lists and categories in filelist_places365-standard/."""
    root = tmp_path_factory.mktemp("original")
    lists = root / "filelist_places365-standard"
    lists.mkdir()
    _write_categories(lists / "categories_places365.txt")
    train_lines, val_lines = [], []
    val_id = 0
    for name, index in CATEGORIES.items():
        for i in range(NUM_TRAIN):
            rel = f"{name}/{i + 1:08d}.jpg"
            _tiny_jpeg(str(root / "data_256" / rel.lstrip("/")), name, i)
            train_lines.append(f"{rel} {index}")
        for i in range(NUM_VAL):
            val_id += 1
            fname = f"Places365_val_{val_id:08d}.jpg"
            _tiny_jpeg(str(root / "val_256" / fname), name, 100 + i)
            val_lines.append(f"{fname} {index}")
    (lists / "places365_train_standard.txt").write_text("\n".join(train_lines) + "\n")
    (lists / "places365_val.txt").write_text("\n".join(val_lines) + "\n")
    return root


@pytest.fixture(scope="module")
def classes_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("classes") / "classes.txt"
    path.write_text("# test classes\n\n" + "\n".join(CLASSES) + "\n")
    return str(path)


def test_class_key_spellings():
    for spelling in ("/f/field/wild", "f/field/wild", "field/wild", "field-wild"):
        assert places365.class_key(spelling) == "field-wild"
    assert places365.class_key("/a/airfield") == places365.class_key("airfield") == "airfield"
    assert places365.class_key("/f/field_road") == "field_road"


@pytest.mark.parametrize("tree", ["standard_tree", "original_tree"])
def test_layout_detected(tree, request):
    root = request.getfixturevalue(tree)
    assert places365.detect_layout(str(root)) == tree.split("_")[0]


@pytest.mark.parametrize("tree", ["standard_tree", "original_tree"])
def test_labels_and_split(tree, request):
    root = str(request.getfixturevalue(tree))
    splits = {s: places365.list_records(root, s, class_names=CLASSES, test_per_class=TEST_PER_CLASS, seed=0)[1] for s in places365.SPLITS}
    for split, records in splits.items():
        for r in records:
            assert r.class_name == CLASSES[r.label]  # label = position in the class list
            if not (split == "val" and tree == "original_tree"):  # val_256/ is flat: no class in the path
                assert places365.class_key(r.class_name) in r.source.replace("/", "-")
            assert os.path.isfile(r.key)
            # The pixels agree with the label (the sub-category mapped to the right folder).
            pixel = np.asarray(Image.open(r.key)).reshape(-1, 3).mean(0)
            assert np.abs(pixel - COLOURS[r.class_name]).max() < 15, (r, pixel)
    per_class = {s: collections.Counter(r.class_name for r in recs) for s, recs in splits.items()}
    assert per_class["val"] == {n: NUM_VAL for n in CLASSES}
    assert per_class["test"] == {n: TEST_PER_CLASS for n in CLASSES}
    assert per_class["train"] == {n: NUM_TRAIN - TEST_PER_CLASS for n in CLASSES}
    train_keys = {r.key for r in splits["train"]}
    test_keys = {r.key for r in splits["test"]}
    assert not train_keys & test_keys
    all_train_side = {r.key for r in places365.list_records(root, "train", class_names=CLASSES, test_per_class=0)[1]}
    assert train_keys | test_keys == all_train_side
    assert "/a/alley" not in {r.class_name for recs in splits.values() for r in recs}


def test_split_is_deterministic_given_seed(standard_tree):
    def test_set(seed):
        return {r.source for r in places365.list_records(str(standard_tree), "test", class_names=CLASSES, test_per_class=TEST_PER_CLASS, seed=seed)[1]}

    assert test_set(0) == test_set(0)
    assert any(test_set(s) != test_set(0) for s in (1, 2, 3))


def test_nested_subcategory_folders(tmp_path):
    """A re-exported easy-format tree with field/wild as nested folders maps the same."""
    for i in range(3):
        _tiny_jpeg(str(tmp_path / "train" / "field" / "wild" / f"{i}.jpg"), "/f/field/wild", i)
        _tiny_jpeg(str(tmp_path / "train" / "mountain" / f"{i}.jpg"), "/m/mountain", i)
    layout, records = places365.list_records(str(tmp_path), "train", class_names=["/m/mountain", "/f/field/wild"], test_per_class=0)
    assert layout == "standard"
    assert collections.Counter((r.label, r.class_name) for r in records) == {(0, "/m/mountain"): 3, (1, "/f/field/wild"): 3}


@pytest.mark.parametrize("tree", ["standard_tree", "original_tree"])
def test_unknown_class_is_a_clear_error_before_work(tree, request, tmp_path):
    root = str(request.getfixturevalue(tree))
    classes = tmp_path / "classes.txt"
    classes.write_text("/m/mountain\n/f/field/wilde\n")
    config = shards_lib.MakeShardsConfig(source=root, output=str(tmp_path / "out"), split="train", classes=str(classes))
    with pytest.raises(ValueError, match=r"unknown class names.*field/wilde.*did you mean 'field-wild'"):
        shards_lib.make_shards(config, progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_class_list_and_source(standard_tree, tmp_path):
    with pytest.raises(ValueError, match="class list"):
        places365.list_records(str(standard_tree), "train")
    with pytest.raises(ValueError, match="source="):
        places365.list_records(str(tmp_path / "absent"), "train", class_names=CLASSES)
    with pytest.raises(ValueError, match="classes file"):
        places365.read_class_list(str(tmp_path / "absent.txt"))
    dup = tmp_path / "dup.txt"
    dup.write_text("/f/field/wild\nfield-wild\n")
    with pytest.raises(ValueError, match="more than once"):
        places365.read_class_list(str(dup))


def test_class_list_with_a_plain_folder_is_an_error(tmp_path, classes_file):
    Image.new("RGB", (40, 40), (200, 0, 0)).save(tmp_path / "red.jpg")
    config = shards_lib.MakeShardsConfig(source=str(tmp_path), output=str(tmp_path / "out"), classes=classes_file)
    with pytest.raises(ValueError, match="plain folder"):
        shards_lib.make_shards(config, progress=False)
    assert not (tmp_path / "out").exists()


def test_folder_layout_is_recursive_and_unlabelled(tmp_path):
    for rel in ("a.jpg", "x/b.png", "x/y/c.JPG", "x/notes.txt"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            path.write_text("hi")
        else:
            Image.new("RGB", (8, 8), (200, 0, 0)).save(path, format="PNG" if rel.endswith("png") else "JPEG")
    layout, records = places365.list_records(str(tmp_path), "val")
    assert layout == "folder"
    assert sorted(r.source for r in records) == ["a.jpg", "x/b.png", "x/y/c.JPG"]
    assert {r.label for r in records} == {-1}


@pytest.mark.parametrize("tree", ["standard_tree", "original_tree"])
def test_shards_from_fake_places365(tree, request, classes_file, tmp_path):
    """Writer and pipeline end to end on each layout: labels in the shards match the pixels."""
    root = str(request.getfixturevalue(tree))
    out = str(tmp_path / "out")
    for split in places365.SPLITS:
        config = shards_lib.MakeShardsConfig(source=root, output=out, split=split, classes=classes_file,
                                             test_per_class=TEST_PER_CLASS, shard_size=5,
                                             encode=photo_repair.EncodeConfig(short_side=32, min_side=8))
        stats, summary = shards_lib.make_shards(config, progress=False)
        expected = {"train": NUM_TRAIN - TEST_PER_CLASS, "val": NUM_VAL, "test": TEST_PER_CLASS}[split]
        assert stats.written == {n: expected for n in CLASSES}
        assert stats.skipped == {}
        for name in CLASSES:
            assert f"{name}" in summary
    batches = list(pipeline.make_dataset(os.path.join(out, "val-*"), "val", 32, 4))
    labels = np.concatenate([b[1]["class"].numpy() for b in batches])
    assert sorted(labels.tolist()) == sorted(list(range(len(CLASSES))) * NUM_VAL)
    for path in tf.io.gfile.glob(os.path.join(out, "train-*")):
        for raw in tf.data.TFRecordDataset(path):
            ex = features.parse_example(raw)
            name = ex[features.CLASS_NAME].numpy().decode()
            assert CLASSES[int(ex[features.LABEL])] == name
            pixel = tf.io.decode_jpeg(ex[features.IMAGE]).numpy().reshape(-1, 3).mean(0)
            assert np.abs(pixel - COLOURS[name]).max() < 15


def test_landscape_classes_file(places365_dir):
    """experiments/landscape_classes.txt: 137 distinct outdoor Places365 categories in Places365 spelling."""
    names = places365.read_class_list(os.path.join(REPO, "experiments", "landscape_classes.txt"))
    categories = list(places365.read_categories(places365_dir / "categories_places365.txt").values())
    assert len(categories) == 365
    io_flags = [int(line.split()[1]) for line in (places365_dir / "IO_places365.txt").read_text().splitlines() if line.strip()]
    outdoor = {name for name, flag in zip(categories, io_flags) if flag == 2}
    assert len(names) == 137 and len(set(names)) == 137
    assert set(names) <= set(categories), set(names) - set(categories)
    assert set(names) <= outdoor, set(names) - outdoor
    for must in ("/m/mountain", "/c/coast", "/f/field/wild", "/f/forest/broadleaf", "/d/desert/sand", "/s/sky", "/s/snowfield", "/l/lake/natural"):
        assert must in names
    assert names == sorted(names, key=categories.index)  # Places365 order, as the header says
