"""Shared fixtures: paths to ../shared data, quiet TensorFlow."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Two xdist workers on two cores, and many tests start TensorFlow subprocesses: one intra-op thread per
# process (inherited by the subprocesses) keeps them from oversubscribing the cores. Two tiny training runs
# at once took 46 s instead of 52-57 s with TensorFlow's default of one thread per core (each alone: 47 s).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


#: Test files that take a worker a minute or more (longest first, from `--durations=0` of a full run on the
#: 2-core CI machine, 2026-12-04). They run first, so that the two xdist workers (``-n 2 --dist loadfile``)
#: finish together instead of one running a long file alone at the end; the other files keep their order.
LONGEST_FILES_FIRST = (
    "test_train_reliability.py", "test_train_distributed.py", "test_export_saved_model.py", "test_export_tflite.py",
    "test_model_battery.py", "test_train.py", "test_beam.py", "test_film.py", "test_quantization.py",
    "test_guided_model.py", "test_photos.py", "test_litert_runner.py", "test_evaluate.py", "test_inference.py",
    "test_console_scripts.py", "test_guidance_hints.py", "test_studio_browser.py",
)


def pytest_collection_modifyitems(items):
    """Longest files first (``LONGEST_FILES_FIRST``); a stable sort, so each file's tests stay together, in order."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _shared(sub):
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test data (../shared/data/{sub}) lies beside the project root in CI only")
    return path


@pytest.fixture(scope="session")
def landscapes_dir():
    """Real 512x512 colour landscape JPEGs (../shared/data/landscapes)."""
    return _shared("landscapes")


@pytest.fixture(scope="session")
def bw_dir():
    """Real historical black-and-white photos (../shared/data/bw)."""
    return _shared("bw")


@pytest.fixture(scope="session")
def video_path():
    """Real colour clip with audio (../shared/data/video/skyar_annarbor.mp4)."""
    return _shared("video/skyar_annarbor.mp4")


@pytest.fixture(scope="session")
def scenes_dir():
    """Real labelled outdoor photos, the training set of the bundled model (../shared/data/scenes)."""
    return _shared("scenes")


@pytest.fixture(scope="session")
def places365_dir():
    """Places365 category lists (../shared/data/places365)."""
    return _shared("places365")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A seeded, untrained tiny-preset colorizer saved as ``.keras`` (64 px, 4 classes)."""
    import keras

    from keras_colorize.models import build_colorizer, get_preset

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_colorizer(get_preset("tiny")).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_guided_model_path(tmp_path_factory):
    """A seeded tiny guided colorizer (``hints=True``) whose guidance layers are moved off their zero
    start, so hints and a reference change its output; untrained."""
    import keras

    from keras_colorize.models import build_colorizer, get_preset

    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("tiny", hints=True))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.name in ("hint_input_conv", "reference_fusion_dense"):
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in layer.get_weights()])
    path = tmp_path_factory.mktemp("guided_model") / "tiny_guided.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """For the training tests. A few small synthetic shards (5 classes, 64 px): 3 train shards, 1 val shard."""
    from keras_colorize.data import demo

    directory = tmp_path_factory.mktemp("demo_shards")
    return demo.ensure_demo_shards(str(directory), num_train=96, num_val=16, num_test=8, image_size=64,
                                   shard_size=32, progress=False)
