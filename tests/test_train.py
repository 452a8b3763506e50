"""Training: flagfiles, preflight errors, a tiny run's artefacts (checkpoints, TensorBoard, summary).

Crash-and-resume and distributed runs are in test_train_distributed.py.
"""

import glob
import json
import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

from keras_colorize import flags as kc_flags
from keras_colorize import train_lib
from keras_colorize.data import demo

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO_ROOT / "experiments"

# Section 4.1 and Table 2 of the paper: optimizer, learning rate, batch, class-loss weight, fusion, average MAE.
PAPER_CONFIGS = {
    "p1": ("adadelta", 0.03, 64, 1.0, True, "0.054470"),
    "p2": ("adam", 0.01, 16, 1.0, True, "0.044688"),
    "p3": ("adam", 0.01, 16, 0.01, True, "0.043767"),
    "p4": ("adam", 0.01, 64, 1.0, True, "0.045120"),
    "p2_nofusion": ("adam", 0.01, 16, 0.0, False, "0.040888"),
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A few small synthetic shards (5 classes, 64 px): 3 train shards, 1 val shard."""
    directory = tmp_path_factory.mktemp("demo_shards")
    return demo.ensure_demo_shards(str(directory), num_train=96, num_val=16, num_test=8, image_size=64,
                                   shard_size=32, progress=False)


def tiny_config(shards, work_dir, **overrides):
    values = dict(
        work_dir=str(work_dir), train_data=shards["train"], val_data=shards["val"], model_preset="tiny",
        num_classes=5, batch_size=4, epochs=2, steps_per_epoch=3, val_steps=2, val_batch_size=4,
        checkpoint_every_steps=2, log_every_steps=1, grid_images=3, learning_rate=0.003,
    )
    values.update(overrides)
    return train_lib.TrainConfig(**values)


def parse_flagfile(path):
    """Parses a flagfile with the binary's flags (from the repository root, like the README)."""
    flag_values = absl_flags.FLAGS
    flag_values.unparse_flags()
    flag_values(["train", f"--flagfile={path}"])
    try:
        return kc_flags.train_config(flag_values)
    finally:
        flag_values.unparse_flags()


# ---------------------------------------------------------------------------
# Flagfiles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_flagfiles_match_the_paper_and_validate(name, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    optimizer, lr, batch, class_weight, fusion, table2_mae = PAPER_CONFIGS[name]
    config = parse_flagfile(f"experiments/{name}.flags")
    assert (config.optimizer, config.learning_rate, config.batch_size) == (optimizer, lr, batch)
    assert (config.class_loss_weight, config.fusion) == (class_weight, fusion)
    assert (config.image_size, config.num_classes, config.width, config.epochs) == (256, 137, 1.0, 10)
    assert config.precision == "mixed_float16"
    assert config.encoder_weights.endswith(".weights.h5")
    assert config.work_dir == f"runs/{name}"
    # No data here: everything but the data and the encoder file must validate.
    train_lib.validate(config, check_data=False)
    header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
    assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
    assert table2_mae in header and "make_shards" in header and "GPU" in header


def test_every_flagfile_parses(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    names = sorted(p.name for p in EXPERIMENTS.glob("*.flags"))
    assert {"base.flags", "demo.flags", *(f"{n}.flags" for n in PAPER_CONFIGS)} <= set(names)
    for name in names:
        path = f"experiments/{name}"
        if name == "base.flags":  # shared settings only: no work_dir of its own
            absl_flags.FLAGS(["train", f"--flagfile={path}", "--work_dir=runs/base"])
            config = kc_flags.train_config()
            absl_flags.FLAGS.unparse_flags()
        else:
            config = parse_flagfile(path)
        train_lib.validate(config, check_data=False)


def test_demo_flagfile(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    config = parse_flagfile("experiments/demo.flags")
    assert config.work_dir == "runs/demo" and config.demo_data_dir
    assert config.precision == "float32" and config.strategy == "default"
    assert config.image_size <= 64 and config.num_classes >= demo.NUM_DEMO_CLASSES
    assert config.epochs * config.steps_per_epoch * config.batch_size <= 20000  # minutes on 2 cores, not hours


def test_resolved_flags_reproduce_the_config(tmp_path, monkeypatch, shards):
    config = tiny_config(shards, tmp_path / "run", lr_schedule="cosine", fusion=False, class_loss_weight=0.0)
    path = tmp_path / "flags.txt"
    path.write_text(config.to_flags())
    assert parse_flagfile(str(path)) == config


def test_every_flag_has_help_and_a_config_field():
    fields = {f for f in train_lib.TrainConfig.__dataclass_fields__}
    ours = {f.name: f for f in absl_flags.FLAGS.get_flags_for_module(kc_flags)}
    assert set(ours) == fields
    for flag in ours.values():
        assert len(flag.help) > 15, flag.name


# ---------------------------------------------------------------------------
# Bad input fails before training, naming the problem
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(optimizer="lamb"), r"optimizer='lamb'.*adam"),
        (dict(image_size=100), r"image_size=100.*multiple of 32"),
        (dict(precision="float16"), r"precision='float16'"),
        (dict(strategy="horovod"), r"strategy='horovod'"),
        (dict(batch_size=0), r"batch_size=0"),
        (dict(encoder_weights="resnet34.pth"), r"encoder_weights='resnet34.pth'"),
        (dict(work_dir=""), r"work_dir=''"),
    ],
)
def test_bad_config_is_rejected(overrides, message, shards, tmp_path):
    with pytest.raises(train_lib.ConfigError, match=message):
        tiny_config(shards, overrides.pop("work_dir", tmp_path / "run"), **overrides)


def _assert_fails_before_training(config, message):
    with pytest.raises(train_lib.ConfigError, match=message):
        train_lib.train(config)
    assert not os.path.exists(os.path.join(config.work_dir, "checkpoints"))


def test_no_matching_shards(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", train_data=str(tmp_path / "nothing-*.tfrecord"))
    _assert_fails_before_training(config, r"train_data=.*nothing-\*\.tfrecord.*matches no files")


def test_more_classes_in_data_than_in_model(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", num_classes=4)  # the demo data has 5 classes
    _assert_fails_before_training(config, r"num_classes=4.*labels up to 4 \(5 classes\)")


def test_missing_encoder_weights(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", encoder_weights=str(tmp_path / "absent.weights.h5"))
    _assert_fails_before_training(config, r"encoder_weights=.*absent\.weights\.h5.*does not exist")


def test_incompatible_work_dir(shards, tmp_path):
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    previous = tiny_config(shards, work_dir, image_size=96, optimizer="sgd")
    (work_dir / "config.json").write_text(json.dumps(previous.to_dict()))
    _assert_fails_before_training(tiny_config(shards, work_dir),
                                  r"incompatible configuration.*image_size=96 there, 64 now.*optimizer='sgd' there")


def test_foreign_work_dir(shards, tmp_path):
    work_dir = tmp_path / "photos"
    work_dir.mkdir()
    (work_dir / "holiday.jpg").write_bytes(b"not ours")
    _assert_fails_before_training(tiny_config(shards, work_dir), r"holds no config.json")
    assert (work_dir / "holiday.jpg").read_bytes() == b"not ours"


def test_fit_phases_resume_mid_epoch():
    assert train_lib._fit_phases(0, 10, 3) == [(0, 3, 10)]
    assert train_lib._fit_phases(14, 10, 3) == [(1, 2, 6), (2, 3, 10)]
    assert train_lib._fit_phases(20, 10, 3) == [(2, 3, 10)]
    assert train_lib._fit_phases(30, 10, 3) == []


# ---------------------------------------------------------------------------
# A tiny run and what it leaves behind
# ---------------------------------------------------------------------------


def _event_tags(directory):
    tags = {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append((event.step, value))
    return tags


@pytest.mark.slow
def test_tiny_run_writes_checkpoints_tensorboard_and_summary(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run")
    result = train_lib.train(config)
    work_dir = pathlib.Path(config.work_dir)

    # Resolved flags: a flagfile that reproduces the run.
    assert parse_flagfile(str(work_dir / "flags.txt")) == config
    assert json.loads((work_dir / "config.json").read_text())["image_size"] == 64

    # Checkpoints every 2 steps and at the end of each 3-step epoch; the newest kept.
    steps = sorted(int(re.search(r"ckpt-(\d+)\.index", p).group(1)) for p in glob.glob(str(work_dir / "checkpoints/*.index")))
    assert steps == [3, 4, 6]
    assert tf.train.latest_checkpoint(str(work_dir / "checkpoints")).endswith("ckpt-6")

    # Best and final models load in this process and predict the right shapes.
    import keras

    for name in ("best.keras", "final.keras"):
        model = keras.saving.load_model(work_dir / name)
        out = model(np.zeros((1, 64, 64, 1), np.float32))
        assert out["ab"].shape == (1, 64, 64, 2) and out["class"].shape == (1, 5)
    best = json.loads((work_dir / "best.json").read_text())
    assert best["epoch"] in (1, 2) and best["val_mae"] == min(result.summary["history"]["val_mae"])

    # Summary: metrics of the kept model and of the gray baseline on the same images.
    summary = json.loads((work_dir / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_from_step"] == 0
    assert summary["val_images"] == 8
    for part in ("val", "gray_baseline"):
        assert set(summary[part]) >= {"mae", "mse_ab", "mse_lab"}
        assert all(0 < summary[part][k] < 1 for k in ("mae", "mse_ab", "mse_lab"))
    assert summary["beats_gray_baseline"] == (summary["val"]["mae"] < summary["gray_baseline"]["mae"])

    # TensorBoard: epoch scalars, step scalars, and the image grid.
    train_tags = _event_tags(work_dir / "logs/train")
    val_tags = _event_tags(work_dir / "logs/validation")
    for tag in ("epoch_loss", "epoch_ab_loss", "epoch_class_loss", "epoch_learning_rate",
                "epoch_images_per_second", "epoch_step_time_s"):
        assert [s for s, _ in train_tags[tag]] == [0, 1], tag
    for tag in ("step_time_s", "images_per_second", "learning_rate", "batch_loss"):
        assert [s for s, _ in train_tags[tag]] == [2, 3, 4, 5, 6], tag  # step 1 is the tracing call
    for tag in ("epoch_loss", "epoch_ab_loss", "epoch_class_loss", "epoch_mae", "epoch_mse_ab", "epoch_mse_lab",
                "epoch_gray_mae"):
        assert [s for s, _ in val_tags[tag]] == [0, 1], tag
    grids = val_tags["val_grid"]
    assert [s for s, _ in grids] == [0, 1]
    image = tf.io.decode_png(tf.make_ndarray(grids[-1][1].tensor)[2])  # [width, height, png]
    assert tuple(image.shape) == (3 * 64, 3 * 64, 3)  # rows: gray, prediction, truth; 3 images
    gray_row = image[:64].numpy().astype(int)
    assert np.abs(gray_row[..., 0] - gray_row[..., 1]).max() <= 1  # the input row is gray
    assert np.abs(image[128:].numpy().astype(int)[..., 0] - image[128:].numpy().astype(int)[..., 2]).max() > 20

    # The validation MAE logged per epoch is the paper metric the summary reports.
    mae = [float(tf.make_ndarray(v.tensor)) for _, v in val_tags["epoch_mae"]]
    np.testing.assert_allclose(mae, result.summary["history"]["val_mae"], rtol=1e-6)


@pytest.mark.slow
def test_mixed_float16_run_resumes_and_a_finished_run_only_reevaluates(shards, tmp_path):
    import keras

    config = tiny_config(shards, tmp_path / "run", precision="mixed_float16", epochs=1, steps_per_epoch=2,
                         checkpoint_every_steps=0)
    first = train_lib.train(config)
    assert isinstance(first.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert first.model.get_layer("encoder").get_layer("stem_conv").compute_dtype == "float16"
    assert first.model.outputs[0].dtype == "float32"  # heads and losses stay float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    # Rerunning a finished run restores its last checkpoint (loss-scale state included) and trains nothing.
    again = train_lib.train(config)
    assert again.summary["resumed_from_step"] == 2 and again.summary["steps"] == 2
    assert again.summary["history"] == {}
    assert again.summary["val"]["mae"] == pytest.approx(first.summary["val"]["mae"], rel=1e-5)


def test_multi_worker_without_tf_config_fails_before_training(shards, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    _assert_fails_before_training(tiny_config(shards, tmp_path / "run", strategy="multi_worker"),
                                  r"strategy='multi_worker' needs the TF_CONFIG environment variable")


def test_shard_summary_gives_the_same_counts_as_a_scan(tmp_path):
    from PIL import Image

    from keras_colorize.data import shards_lib

    source = tmp_path / "photos"
    source.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(source / f"{i}.jpg")
    shards_lib.make_shards(shards_lib.MakeShardsConfig(source=str(source), output=str(tmp_path / "out"),
                                                       split="val", shard_size=2), progress=False)
    files = tuple(sorted(glob.glob(str(tmp_path / "out" / "val-*.tfrecord"))))
    assert len(files) == 3
    assert train_lib._shard_stats_from_summary(files) == train_lib._scan_shards(files) == (5, -1)
    assert train_lib._shard_stats_from_summary(files[:2]) is None  # the summary covers other files too
