"""Training: flagfiles, preflight errors, a tiny run's artefacts (checkpoints, TensorBoard, summary).

Crash-and-resume and distributed runs are in test_train_distributed.py.
"""

import glob
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

from keras_colorize.training import flags as kc_flags
from keras_colorize.training import trainer
from keras_colorize.data import places365
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
    return trainer.TrainConfig(**values)


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
    trainer.validate(config, check_data=False)
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
        trainer.validate(config, check_data=False)


def test_scenes_flagfiles_are_the_fusion_ablation_of_one_recipe(monkeypatch):
    """The paper U-Net's recipe and its w/o-fusion twin: same data, budget and seed; runbook headers."""
    monkeypatch.chdir(REPO_ROOT)
    fusion = parse_flagfile("experiments/scenes_cpu.flags")
    nofusion = parse_flagfile("experiments/scenes_cpu_nofusion.flags")
    assert fusion.model_preset == "paper" and fusion.fusion and not nofusion.fusion
    assert fusion.num_classes == len(places365.read_class_list(EXPERIMENTS / "scenes_classes.txt")) == 12
    assert fusion.precision == "mixed_bfloat16" and fusion.encoder_weights == ""
    differ = {k for k, v in fusion.to_dict().items() if nofusion.to_dict()[k] != v}
    assert differ == {"work_dir", "fusion"}
    # 2 idle CPU cores ran 0.54 s/step: the step budget must fit 90 minutes with a 2x margin for load.
    steps = fusion.epochs * (8450 // fusion.batch_size)
    assert steps * 0.54 * 2 <= 90 * 60
    for name in ("scenes_cpu", "scenes_cpu_nofusion"):
        header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
        assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
        assert "Time (measured" in header and "Result (measured)" in header and "2 CPU cores" in header
        trainer.validate(parse_flagfile(f"experiments/{name}.flags"), check_data=False)


def test_scenes_loss_experiments_change_only_the_loss(monkeypatch):
    """The MSE and rebalanced-CE runs of the U-Net recipe differ from it in the a*b* loss alone."""
    monkeypatch.chdir(REPO_ROOT)
    base = parse_flagfile("experiments/scenes_cpu.flags").to_dict()
    expected = {"scenes_cpu_mse": {"work_dir", "ab_loss"},
                "scenes_cpu_rebalanced": {"work_dir", "ab_loss", "ab_prior"}}
    for name, fields in expected.items():
        config = parse_flagfile(f"experiments/{name}.flags")
        assert {k for k, v in config.to_dict().items() if base[k] != v} == fields, name
        header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
        assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
        assert "Time (measured" in header and "Result (measured)" in header and "PENDING" not in header
        trainer.validate(config, check_data=False)
    assert parse_flagfile("experiments/scenes_cpu_rebalanced.flags").ab_loss == "rebalanced_ce"


def test_iizuka_experiments_change_one_thing_of_the_bundled_recipe(monkeypatch):
    """The 32-epoch run, the w/o-global-features twin and the scale-jitter runs of the bundled recipe, runbooks measured."""
    monkeypatch.chdir(REPO_ROOT)
    base = parse_flagfile("experiments/scenes_cpu_iizuka2016.flags")
    assert base.model_preset == "iizuka2016" and base.fusion
    expected = {"scenes_cpu_iizuka2016_long": {"work_dir", "epochs"},
                "scenes_cpu_iizuka2016_nofusion": {"work_dir", "fusion"},
                "scenes_cpu_iizuka2016_jitter": {"work_dir", "scale_jitter"},
                "scenes_cpu_iizuka2016_jitter_long": {"work_dir", "scale_jitter", "epochs"},
                "scenes_cpu_iizuka2016_jitter_long_nofusion": {"work_dir", "scale_jitter", "epochs", "fusion"}}
    for name, fields in expected.items():
        config = parse_flagfile(f"experiments/{name}.flags")
        assert {k for k, v in config.to_dict().items() if base.to_dict()[k] != v} == fields, name
        header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
        assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
        assert "Time (measured" in header and "Result (measured)" in header and "to be measured" not in header
        trainer.validate(config, check_data=False)
    long_run = parse_flagfile("experiments/scenes_cpu_iizuka2016_long.flags")
    assert long_run.epochs == 2 * base.epochs
    assert not parse_flagfile("experiments/scenes_cpu_iizuka2016_nofusion.flags").fusion
    assert base.scale_jitter == 1.0 and parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter.flags").scale_jitter > 1
    jitter_long = parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter_long.flags")
    assert jitter_long.scale_jitter == parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter.flags").scale_jitter
    assert base.epochs < jitter_long.epochs < long_run.epochs
    twin = parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter_long_nofusion.flags")
    assert jitter_long.fusion and not twin.fusion
    assert {k for k, v in twin.to_dict().items() if jitter_long.to_dict()[k] != v} == {"work_dir", "fusion"}


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
    fields = {f for f in trainer.TrainConfig.__dataclass_fields__}
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
        (dict(scale_jitter=0.5), r"--scale_jitter=0.5.*between 1"),
    ],
)
def test_bad_config_is_rejected(overrides, message, shards, tmp_path):
    with pytest.raises(trainer.ConfigError, match=message):
        tiny_config(shards, overrides.pop("work_dir", tmp_path / "run"), **overrides)


def _assert_fails_before_training(config, message):
    with pytest.raises(trainer.ConfigError, match=message):
        trainer.train(config)
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
    assert shards_lib.summary_counts(files) == trainer._scan_shards(files) == (5, -1)
    assert shards_lib.summary_counts(files[:2]) is None  # the summary covers other files too


# ---------------------------------------------------------------------------
# Reliability: divergence, a locked work directory, damaged checkpoints, atomic saves
# ---------------------------------------------------------------------------


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _train_command(work_dir, *extra):
    return [sys.executable, "-m", "keras_colorize.train", f"--flagfile={work_dir / 'flags.txt'}", *extra]


@pytest.mark.slow
def test_diverged_run_exits_1_and_keeps_the_good_best_model(shards, tmp_path):
    import keras

    from keras_colorize.training import checkpoints, monitors

    work_dir = tmp_path / "run"
    good = trainer.train(tiny_config(shards, work_dir, epochs=1, checkpoint_every_steps=0))
    kept = {name: (work_dir / name).read_bytes() for name in ("best.keras", "best.json", "final.keras", "summary.json")}
    mtime = (work_dir / "best.keras").stat().st_mtime_ns
    weights = [w.copy() for w in keras.saving.load_model(work_dir / "best.keras").get_weights()]

    # Resume the good run for a second epoch with a learning rate that makes the loss NaN.
    process = subprocess.run(_train_command(work_dir, "--epochs=2", "--learning_rate=1e8"), cwd=REPO_ROOT,
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert process.returncode == 1, process.stderr[-3000:]
    error = process.stderr.strip().splitlines()[-1]
    assert re.search(r"error: training diverged: .* (?:at step|\(step) [4-6]\b.*ckpt-3 \(step 3\)", error), error
    assert "Traceback" not in process.stderr
    for name, content in kept.items():
        assert (work_dir / name).read_bytes() == content, name
    assert (work_dir / "best.keras").stat().st_mtime_ns == mtime
    for a, b in zip(weights, keras.saving.load_model(work_dir / "best.keras").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [s for s, _ in checkpoints.checkpoint_files(str(work_dir / "checkpoints"))] == [3]  # no NaN checkpoint
    assert good.summary["steps"] == 3

    # From scratch: no best.keras, final.keras or summary.json is written at all.
    fresh = tiny_config(shards, tmp_path / "fresh", learning_rate=1e8)
    with pytest.raises(monitors.TrainingDiverged, match=r"at step \d+ .*no checkpoint was saved"):
        trainer.train(fresh)
    assert not {"best.keras", "final.keras", "summary.json"} & set(os.listdir(fresh.work_dir))


def test_divergence_guard_and_best_saver_refuse_non_finite_values(tmp_path):
    import keras

    from keras_colorize.training import checkpoints, monitors

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    counter = monitors.StepCounter(7)
    guard = monitors.DivergenceGuard(counter)
    guard.set_model(model)
    guard.on_train_batch_end(0, {"loss": 0.5})
    for value in (float("nan"), float("inf")):
        with pytest.raises(monitors.TrainingDiverged, match=rf"training loss is {value} at step 7"):
            guard.on_train_batch_end(0, {"loss": value})
    with pytest.raises(monitors.TrainingDiverged, match=r"val_mae is nan at the end of epoch 2"):
        guard.on_epoch_end(1, {"loss": 0.5, "val_mae": float("nan")})
    saver = checkpoints.BestModelSaver(str(tmp_path / "best.keras"), counter)
    saver.set_model(model)
    saver.on_epoch_end(0, {"val_mae": float("nan")})
    assert not (tmp_path / "best.keras").exists() and saver.best is None
    saver.on_epoch_end(0, {"val_mae": 0.1})
    before = (tmp_path / "best.keras").read_bytes()
    saver.on_epoch_end(1, {"val_mae": float("nan")})  # NaN >= best is False: it must not count as better
    assert (tmp_path / "best.keras").read_bytes() == before and saver.best["val_mae"] == 0.1


def test_best_model_save_that_runs_out_of_space_leaves_the_previous_file(tmp_path):
    import resource
    import signal

    import keras

    from keras_colorize.training import checkpoints

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(64)])
    path = tmp_path / "best.keras"
    small = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])
    checkpoints.save_model_atomic(small, str(path))
    before = path.read_bytes()
    # A file-size limit makes writes fail with EFBIG past 64 KB, as a full disk fails them with ENOSPC.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError):
            checkpoints.save_model_atomic(model, str(path))  # ~1.2 MB of weights
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["best.keras"]  # no partial file left behind
    keras.saving.load_model(path)


def test_work_dir_that_is_a_file_or_under_a_file(shards, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    _assert_fails_before_training(tiny_config(shards, tmp_path / "notes.txt"), r"notes\.txt'.*is a file")
    _assert_fails_before_training(tiny_config(shards, tmp_path / "notes.txt" / "run"),
                                  r"notes\.txt/run'.*cannot be created or written")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_unreadable_config_json(shards, tmp_path):
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    (work_dir / "config.json").write_text("")
    _assert_fails_before_training(tiny_config(shards, work_dir), r"config\.json cannot be read")


# --- The work directory's lock --------------------------------------------


def test_lock_records_of_live_and_dead_holders(tmp_path):
    import socket

    from keras_colorize.training import run_lock

    lock_path = tmp_path / run_lock.LOCK_NAME
    here = socket.gethostname()

    def record(**fields):
        lock_path.write_text(json.dumps(fields))

    # flock is free, but the record names a live process here (this test's parent): as on a filesystem
    # whose flock is not shared, the record refuses the lock.
    record(pid=os.getppid(), host=here, since="earlier")
    with pytest.raises(run_lock.WorkDirLocked, match=rf"in use by pid {os.getppid()} on host '{re.escape(here)}'"):
        run_lock.WorkDirLock(str(tmp_path)).acquire()
    # Another host that refreshed the file recently: refused; one silent for longer than STALE_SECONDS: taken.
    record(pid=1, host="elsewhere-host")
    with pytest.raises(run_lock.WorkDirLocked, match=r"pid 1 on host 'elsewhere-host'"):
        run_lock.WorkDirLock(str(tmp_path)).acquire()
    old = time.time() - run_lock.STALE_SECONDS - 5
    os.utime(lock_path, (old, old))
    with run_lock.WorkDirLock(str(tmp_path)):
        held = json.loads(lock_path.read_text())
        assert held["pid"] == os.getpid() and held["host"] == here
        # A second holder in the same process is refused too (flock is per open file).
        with pytest.raises(run_lock.WorkDirLocked, match=rf"pid {os.getpid()}"):
            run_lock.WorkDirLock(str(tmp_path)).acquire()
    assert lock_path.read_text() == ""  # released: emptied, and free again
    # A dead process here (a pid beyond pid_max) is stale.
    record(pid=2**22 + 1, host=here)
    run_lock.WorkDirLock(str(tmp_path)).acquire().release()


@pytest.mark.slow
def test_second_run_on_a_locked_work_dir_is_refused_and_a_killed_holder_does_not_block(shards, tmp_path):
    import signal

    from keras_colorize.training import run_lock

    work_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_colorize.train", f"--work_dir={work_dir}", f"--train_data={shards['train']}",
        f"--val_data={shards['val']}", "--model_preset=tiny", "--num_classes=5", "--batch_size=4", "--epochs=1",
        "--steps_per_epoch=3", "--val_steps=1", "--grid_images=0", "--log_every_steps=1",
    ]
    lock_path = work_dir / run_lock.LOCK_NAME
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (lock_path.exists() and f'"pid": {first.pid}' in lock_path.read_text()):
            assert first.poll() is None, "the first run ended before it took the lock"
            assert time.time() < deadline, "the first run never took the lock"
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)  # frozen while holding the lock
        second = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        assert re.search(rf"error: work_dir=.* is in use by pid {first.pid} on host '.+'", second.stderr), \
            second.stderr[-3000:]
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    assert f'"pid": {first.pid}' in lock_path.read_text()  # the killed holder's record stays behind
    rerun = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert re.search(rf"taking over .*\.lock from pid {first.pid}", rerun.stderr), rerun.stderr[-3000:]
    assert json.loads((work_dir / "summary.json").read_text())["steps"] == 3
    assert lock_path.read_text() == ""


# --- Damaged checkpoints ----------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(shards, tmp_path_factory):
    """A finished tiny run (checkpoints at steps 3, 4 and 6), copied by the tests that damage it."""
    work_dir = tmp_path_factory.mktemp("finished") / "run"
    trainer.train(tiny_config(shards, work_dir))
    return work_dir


def _damage(checkpoints, kind):
    if kind == "truncated_data":
        data = checkpoints / "ckpt-6.data-00000-of-00001"
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif kind == "empty_index":
        (checkpoints / "ckpt-6.index").write_bytes(b"")
    elif kind == "empty_state_file":
        (checkpoints / "checkpoint").write_bytes(b"")
    elif kind == "state_behind":  # killed after writing ckpt-6, before the state file named it
        tf.compat.v1.train.update_checkpoint_state(str(checkpoints), "ckpt-4", ["ckpt-3", "ckpt-4"])


@pytest.mark.slow
@pytest.mark.parametrize("kind, resumed_from", [("truncated_data", 4), ("empty_index", 4), ("empty_state_file", 6),
                                                ("state_behind", 6)])
def test_damaged_checkpoint_falls_back_and_is_moved_aside(kind, resumed_from, finished_run, shards, tmp_path, caplog):
    import shutil

    from keras_colorize.training import checkpoints as checkpoint_lib

    work_dir = tmp_path / "run"
    shutil.copytree(finished_run, work_dir)
    checkpoints = work_dir / "checkpoints"
    _damage(checkpoints, kind)
    damaged_files = sorted(p.name for p in checkpoints.iterdir()
                           if p.name.startswith("ckpt-6." if kind != "empty_state_file" else "checkpoint"))
    if kind == "state_behind":
        damaged_files = []  # nothing is damaged: the newest complete checkpoint wins over the state file
    damaged_bytes = {name: (checkpoints / name).read_bytes() for name in damaged_files}
    # The absl logger's own level depends on what ran before (absl flag parsing sets it): set it here.
    with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
        result = trainer.train(tiny_config(shards, work_dir))
    assert result.summary["resumed_from_step"] == resumed_from and result.summary["steps"] == 6
    log = caplog.text
    assert re.search(rf"restored .*ckpt-{resumed_from} \(step {resumed_from}\)", log), log
    moved = list((checkpoints / "damaged").iterdir()) if damaged_files else []
    assert not damaged_files or len(moved) == 1
    if kind == "state_behind":
        assert not (checkpoints / "damaged").exists() and "skipped" not in log
    elif kind == "empty_state_file":
        assert re.fullmatch(r"checkpoint-\d{8}T\d{6}", moved[0].name)
        assert "skipped" not in log
    else:
        assert re.fullmatch(r"ckpt-6-\d{8}T\d{6}", moved[0].name)
        assert len(re.findall(r"checkpoint .*ckpt-6 skipped: \w+", log)) == 1, log
    if moved:  # moved, not deleted: the same bytes, with the reason beside them
        assert {name: (moved[0] / name).read_bytes() for name in damaged_files} == damaged_bytes
        assert (moved[0] / "REASON.txt").read_text().strip()
    # The state file is readable again and names the newest checkpoint; a rerun restores that without skipping.
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-6")
    assert [s for s, _ in checkpoint_lib.checkpoint_files(str(checkpoints))][0] == 6


@pytest.mark.slow
def test_no_checkpoint_loads_refuses_and_moves_nothing(finished_run, shards, tmp_path):
    import shutil

    work_dir = tmp_path / "run"
    shutil.copytree(finished_run, work_dir)
    checkpoints = work_dir / "checkpoints"
    for index in checkpoints.glob("ckpt-*.index"):
        index.write_bytes(b"")
    before = sorted(p.name for p in checkpoints.iterdir())
    with pytest.raises(trainer.ConfigError, match=r"no checkpoint in .*checkpoints loads \(ckpt-6: .*; ckpt-4: "
                                                     r".*; ckpt-3: .*\); nothing was moved.*start this run over"):
        trainer.train(tiny_config(shards, work_dir))
    assert sorted(p.name for p in checkpoints.iterdir()) == before
