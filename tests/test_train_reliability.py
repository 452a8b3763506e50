"""A training run that goes wrong loses nothing: divergence stops it before a broken model is saved, a locked
work directory is refused, damaged checkpoints are moved aside, saves are atomic."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_colorize.training import trainer
from train_helpers import assert_fails_before_training, tiny_config


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO_ROOT / "experiments"


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
def test_diverged_run_exits_1_and_keeps_the_good_best_model(finished_run, shards, tmp_path):
    import keras

    from keras_colorize.training import checkpoints, monitors

    work_dir = tmp_path / "run"
    shutil.copytree(finished_run, work_dir)  # a good run: 2 epochs, 6 steps
    kept = {name: (work_dir / name).read_bytes() for name in ("best.keras", "best.json", "final.keras", "summary.json")}
    mtime = (work_dir / "best.keras").stat().st_mtime_ns
    weights = [w.copy() for w in keras.saving.load_model(work_dir / "best.keras").get_weights()]
    saved = [s for s, _ in checkpoints.checkpoint_files(str(work_dir / "checkpoints"))]

    # Resume the good run for a third epoch with a learning rate that makes the loss NaN.
    process = subprocess.run(_train_command(work_dir, f"--work_dir={work_dir}", "--epochs=3", "--learning_rate=1e8"),
                             cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert process.returncode == 1, process.stderr[-3000:]
    error = process.stderr.strip().splitlines()[-1]
    assert re.search(r"error: training diverged: .* (?:at step|\(step) [7-9]\b.*ckpt-6 \(step 6\)", error), error
    assert "Traceback" not in process.stderr
    for name, content in kept.items():
        assert (work_dir / name).read_bytes() == content, name
    assert (work_dir / "best.keras").stat().st_mtime_ns == mtime
    for a, b in zip(weights, keras.saving.load_model(work_dir / "best.keras").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert max(saved) == 6
    assert [s for s, _ in checkpoints.checkpoint_files(str(work_dir / "checkpoints"))] == saved  # no NaN checkpoint

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
    assert_fails_before_training(tiny_config(shards, tmp_path / "notes.txt"), r"notes\.txt'.*is a file")
    assert_fails_before_training(tiny_config(shards, tmp_path / "notes.txt" / "run"),
                                  r"notes\.txt/run'.*cannot be created or written")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_unreadable_config_json(shards, tmp_path):
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    (work_dir / "config.json").write_text("")
    assert_fails_before_training(tiny_config(shards, work_dir), r"config\.json cannot be read")


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


def test_a_run_stopped_before_its_config_json_is_reported_as_in_use(shards, tmp_path):
    """The holder was stopped between taking the lock and renaming its config.json into place."""
    import socket

    from keras_colorize.training import run_lock

    work_dir = tmp_path / "run"
    work_dir.mkdir()
    (work_dir / "config.json.tmp-1234").write_text("{")
    config = tiny_config(shards, work_dir)
    with pytest.raises(trainer.ConfigError, match="holds no config.json"):
        trainer.check_work_dir(config)  # no holder: a foreign directory
    (work_dir / run_lock.LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(trainer.ConfigError, match=rf"in use by pid {os.getppid()}"):
        trainer.check_work_dir(config)


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
