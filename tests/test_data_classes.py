"""The class-per-folder layout (``make_shards --layout=classes``): labels from folder names, splits kept."""

import os
import pathlib

import pytest
from PIL import Image

from keras_colorize.data import places365
from keras_colorize.data import shards_lib
from keras_colorize.data import photo_repair

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _photo(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), colour).save(path)


@pytest.fixture
def tree(tmp_path):
    """collection_a/{train,test}/<class>/ (a dataset's own split) and collection_b/<class>/ (none)."""
    root = tmp_path / "src"
    for i in range(6):
        _photo(root / "a" / "train" / "forest" / f"f{i}.jpg", (20, 120 + i, 30))
        _photo(root / "a" / "train" / "sea" / f"s{i}.jpg", (20, 60, 150 + i))
    _photo(root / "a" / "test" / "forest" / "ft.jpg", (25, 110, 35))
    _photo(root / "a" / "test" / "sea" / "st.jpg", (25, 70, 140))
    for i in range(40):
        _photo(root / "b" / "desert" / f"d{i:02d}.jpg", (200, 170, 100 + i))
    return root


def test_labels_from_folder_names_and_own_split_kept(tree):
    _, train = places365.list_records(tree, "train", layout="classes", test_per_class=0, val_fraction=0.25)
    _, val = places365.list_records(tree, "val", layout="classes", test_per_class=0, val_fraction=0.25)
    names = places365.class_folder_names(tree)
    assert names == ["desert", "forest", "sea"]
    assert {r.class_name: r.label for r in train} == {"desert": 0, "forest": 1, "sea": 2}
    # The dataset's own test/ folder is the validation side, whatever the hash says.
    assert {r.source for r in val if r.class_name != "desert"} == {"a/test/forest/ft.jpg", "a/test/sea/st.jpg"}
    assert not any("/test/" in r.source for r in train)
    # Images with no split folder are shared out by the seeded hash: disjoint, complete, about val_fraction.
    desert_train = {r.source for r in train if r.class_name == "desert"}
    desert_val = {r.source for r in val if r.class_name == "desert"}
    assert not desert_train & desert_val and len(desert_train | desert_val) == 40
    assert 4 <= len(desert_val) <= 18
    # Deterministic given the seed, and another seed moves the split.
    _, again = places365.list_records(tree, "val", layout="classes", test_per_class=0, val_fraction=0.25)
    assert [r.source for r in again] == [r.source for r in val]
    _, other = places365.list_records(tree, "val", layout="classes", test_per_class=0, val_fraction=0.25, seed=7)
    assert {r.source for r in other if r.class_name == "desert"} != desert_val


def test_class_list_fixes_order_and_unknown_names_fail(tree):
    _, train = places365.list_records(tree, "train", layout="classes", class_names=["sea", "forest", "desert"],
                                      test_per_class=0)
    assert {r.class_name: r.label for r in train} == {"sea": 0, "forest": 1, "desert": 2}
    with pytest.raises(ValueError, match="glacier"):
        places365.list_records(tree, "train", layout="classes", class_names=["sea", "glacier"])


def test_test_split_is_held_out_of_train(tree):
    _, train = places365.list_records(tree, "train", layout="classes", test_per_class=2)
    _, test = places365.list_records(tree, "test", layout="classes", test_per_class=2)
    assert len(test) == 6 and not {r.source for r in test} & {r.source for r in train}


def test_symlinked_class_folders_are_followed_once(tmp_path, tree):
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(tree / "a", linked / "a")
    os.symlink(tree / "b", linked / "b")
    os.symlink(linked, linked / "b_loop")  # a loop back to the root
    _, records = places365.list_records(linked, "train", layout="classes", test_per_class=0, val_fraction=0.25)
    _, direct = places365.list_records(tree, "train", layout="classes", test_per_class=0, val_fraction=0.25)
    assert sorted(r.source for r in records) == sorted(r.source for r in direct)
    assert len(records) == len(direct) > 0


def test_make_shards_writes_class_list_and_refuses_another(tree, tmp_path):
    out = tmp_path / "shards"
    enc = photo_repair.EncodeConfig(short_side=0)
    config = shards_lib.MakeShardsConfig(source=str(tree), output=str(out), split="val", layout="classes",
                                         test_per_class=0, num_workers=1, shard_size=64, encode=enc)
    stats, _ = shards_lib.make_shards(config, progress=False)
    assert places365.read_class_list(out / "classes.txt") == ["desert", "forest", "sea"]
    assert stats.num_written > 0
    # The class list is accepted back, and a different one is refused before anything is written.
    again = shards_lib.MakeShardsConfig(**{**config.__dict__, "split": "train", "classes": str(out / "classes.txt")})
    shards_lib.make_shards(again, progress=False)
    other = tmp_path / "other.txt"
    other.write_text("sea\nforest\ndesert\n")
    bad = shards_lib.MakeShardsConfig(**{**config.__dict__, "split": "train", "classes": str(other)})
    with pytest.raises(ValueError, match="classes.txt"):
        shards_lib.make_shards(bad, progress=False)


def test_short_side_zero_keeps_the_photo_size(tree, tmp_path):
    import tensorflow as tf

    from keras_colorize.data import features

    out = tmp_path / "shards"
    config = shards_lib.MakeShardsConfig(source=str(tree), output=str(out), split="val", layout="classes",
                                         test_per_class=0, num_workers=1, encode=photo_repair.EncodeConfig(short_side=0))
    shards_lib.make_shards(config, progress=False)
    files = sorted(str(p) for p in out.glob("val-*.tfrecord"))
    sizes = {(int(e[features.HEIGHT]), int(e[features.WIDTH]))
             for e in (features.parse_example(s) for s in tf.data.TFRecordDataset(files))}
    assert sizes == {(40, 48)}  # not upscaled to 256


def test_scenes_split_and_class_list(scenes_dir):
    """The bundled model's data: Intel train/test kept, SUN split by seed, 12 classes as in experiments/."""
    listed = places365.read_class_list(REPO_ROOT / "experiments" / "scenes_classes.txt")
    # The 16-class list of the whole folder names every class folder; its first 12 are the bundled model's.
    sky = places365.read_class_folders(REPO_ROOT / "experiments" / "scenes_sky_classes.txt")
    assert places365.class_folder_names(scenes_dir) == sorted(f for folders in sky.values() for f in folders)
    assert list(sky)[:12] == listed and len(sky) == 16
    assert places365.read_class_list(REPO_ROOT / "keras_colorize" / "pretrained" / "scenes_classes.txt") == listed
    _, train = places365.list_records(scenes_dir, "train", layout="classes", class_names=listed)
    _, val = places365.list_records(scenes_dir, "val", layout="classes", class_names=listed)
    assert (len(train), len(val)) == (8450, 1983)
    assert all("intel/test/" in r.source or r.source.startswith("sun16720/") for r in val)
    assert not {r.source for r in train} & {r.source for r in val}
    _, train16 = places365.list_records(scenes_dir, "train", layout="classes", class_folders=sky)
    _, val16 = places365.list_records(scenes_dir, "val", layout="classes", class_folders=sky)
    assert (len(train16), len(val16)) == (11745, 2424)
    old = {r.source for r in val}  # the 12 classes keep their split
    assert {r.source for r in val16} & ({r.source for r in train} | old) == old
