"""Training runs: bad input fails before training naming the problem; a tiny run's artefacts (checkpoints,
TensorBoard, summary); resuming mid-epoch and after the end.

Flagfiles: test_train_flagfiles.py; divergence, locks and damaged checkpoints: test_train_reliability.py;
crash-and-resume and distributed runs: test_train_distributed.py.
"""

import glob
import json
import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_colorize.training import trainer
from train_helpers import assert_fails_before_training, parse_flagfile, tiny_config


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO_ROOT / "experiments"


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
        (dict(scale_jitter=0.5), r"--scale_jitter=0.5.*between 1"),
        (dict(hints=True, automatic_probability=1.5), r"--automatic_probability=1.5.*between 0 and 1"),
        (dict(reference_probability=0.2), r"--reference_probability=0.2.*needs --hints"),
    ],
)
def test_bad_config_is_rejected(overrides, message, shards, tmp_path):
    with pytest.raises(trainer.ConfigError, match=message):
        tiny_config(shards, overrides.pop("work_dir", tmp_path / "run"), **overrides)


def test_no_matching_shards(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", train_data=str(tmp_path / "nothing-*.tfrecord"))
    assert_fails_before_training(config, r"train_data=.*nothing-\*\.tfrecord.*matches no files")


def test_more_classes_in_data_than_in_model(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", num_classes=4)  # the demo data has 5 classes
    assert_fails_before_training(config, r"num_classes=4.*labels up to 4 \(5 classes\)")


def test_missing_encoder_weights(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", encoder_weights=str(tmp_path / "absent.weights.h5"))
    assert_fails_before_training(config, r"encoder_weights=.*absent\.weights\.h5.*does not exist")


def test_incompatible_work_dir(shards, tmp_path):
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    previous = tiny_config(shards, work_dir, image_size=96, optimizer="sgd")
    (work_dir / "config.json").write_text(json.dumps(previous.to_dict()))
    assert_fails_before_training(tiny_config(shards, work_dir),
                                  r"incompatible configuration.*image_size=96 there, 64 now.*optimizer='sgd' there")


def test_foreign_work_dir(shards, tmp_path):
    work_dir = tmp_path / "photos"
    work_dir.mkdir()
    (work_dir / "holiday.jpg").write_bytes(b"not ours")
    assert_fails_before_training(tiny_config(shards, work_dir), r"holds no config.json")
    assert (work_dir / "holiday.jpg").read_bytes() == b"not ours"


def test_fit_phases_resume_mid_epoch():
    assert trainer._fit_phases(0, 10, 3) == [(0, 3, 10)]
    assert trainer._fit_phases(14, 10, 3) == [(1, 2, 6), (2, 3, 10)]
    assert trainer._fit_phases(20, 10, 3) == [(2, 3, 10)]
    assert trainer._fit_phases(30, 10, 3) == []


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
    result = trainer.train(config)
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
    first = trainer.train(config)
    assert isinstance(first.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert first.model.get_layer("encoder").get_layer("stem_conv").compute_dtype == "float16"
    assert first.model.outputs[0].dtype == "float32"  # heads and losses stay float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    # Rerunning a finished run restores its last checkpoint (loss-scale state included) and trains nothing.
    again = trainer.train(config)
    assert again.summary["resumed_from_step"] == 2 and again.summary["steps"] == 2
    assert again.summary["history"] == {}
    assert again.summary["val"]["mae"] == pytest.approx(first.summary["val"]["mae"], rel=1e-5)


def test_multi_worker_without_tf_config_fails_before_training(shards, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert_fails_before_training(tiny_config(shards, tmp_path / "run", strategy="multi_worker"),
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
    assert shards_lib.summary_counts(files) == trainer._scan_shards(files) == (5, -1)
    assert shards_lib.summary_counts(files[:2]) is None  # the summary covers other files too


