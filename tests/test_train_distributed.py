"""Training in real subprocesses: crash and resume (SIGKILL), multi-worker and mirrored strategies.

Each test starts fresh Python processes (a killed process cannot be simulated in
the test's own, and logical devices / collectives must be configured before
TensorFlow starts), on the tiny preset with a few synthetic shards.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_colorize.data import demo

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 420

# Trains TrainConfig(**json argv[1]) and saves, for every weight, the value held by every local replica.
WORKER_SCRIPT = r"""
import json, sys
import numpy as np
from keras_colorize.training import trainer

config = trainer.TrainConfig(**json.loads(sys.argv[1]))
result = trainer.train(config)
arrays = {}
for i, weight in enumerate(result.model.weights):
    inner = getattr(weight, "_value", weight)
    values = getattr(inner, "values", None) or (inner,)
    for r, value in enumerate(values):
        arrays[f"{i:04d}_{r}_{weight.path.replace('/', '.')}"] = np.asarray(value)
arrays["replicas_in_sync"] = np.asarray(result.model.distribute_strategy.num_replicas_in_sync)
arrays["steps"] = np.asarray(result.summary["steps"])
np.savez(sys.argv[2], **arrays)
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo_shards")
    return demo.ensure_demo_shards(str(directory), num_train=96, num_val=8, num_test=8, image_size=64,
                                   shard_size=24, progress=False)


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra)
    return env


def _tiny(shards, work_dir, **overrides):
    config = dict(
        work_dir=str(work_dir), train_data=shards["train"], val_data=shards["val"], model_preset="tiny",
        num_classes=5, batch_size=4, epochs=1, steps_per_epoch=3, val_steps=1, val_batch_size=4,
        checkpoint_every_steps=0, log_every_steps=1, grid_images=2, learning_rate=0.003,
    )
    config.update(overrides)
    return config


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_worker(config, out, env):
    return subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, json.dumps(config), str(out)], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(process, what):
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"{what} did not finish in {TIMEOUT} s:\n{output[-3000:]}")
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{output[-5000:]}"
    return output


def _replica_values(npz):
    """{weight index and path: [value on each local replica]}."""
    values = {}
    for key in npz.files:
        match = re.match(r"(\d{4})_(\d+)_(.*)", key)
        if match:
            values.setdefault(f"{match.group(1)}_{match.group(3)}", []).append(npz[key])
    return values


def _latest_step(checkpoint_dir):
    state = pathlib.Path(checkpoint_dir) / "checkpoint"
    if not state.exists():
        return 0
    match = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', state.read_text(), re.M)
    return int(match.group(1)) if match else 0


@pytest.mark.slow
def test_sigkill_mid_epoch_then_same_command_resumes_at_the_checkpoint_step(shards, tmp_path):
    work_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_colorize.train", f"--work_dir={work_dir}",
        f"--train_data={shards['train']}", f"--val_data={shards['val']}", "--model_preset=tiny",
        "--num_classes=5", "--batch_size=4", "--epochs=2", "--steps_per_epoch=20", "--val_steps=1",
        "--checkpoint_every_steps=5", "--log_every_steps=5", "--grid_images=2", "--learning_rate=0.003",
    ]
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + TIMEOUT
    while _latest_step(work_dir / "checkpoints") < 5:
        assert first.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _latest_step(work_dir / "checkpoints")
    assert first.returncode == -signal.SIGKILL
    assert 0 < killed_at < 20 and killed_at % 5 == 0, killed_at  # inside the first epoch
    assert not (work_dir / "summary.json").exists()

    second = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    output = _wait(second, "the restarted run")
    assert re.search(rf"restored .*ckpt-{killed_at} \(step {killed_at}\)", output), output[-3000:]
    summary = json.loads((work_dir / "summary.json").read_text())
    assert summary["resumed_from_step"] == killed_at
    assert summary["steps"] == 40
    # The interrupted epoch was finished (20 - killed_at steps), then one full epoch: 2 epochs in all.
    assert len(summary["history"]["loss"]) == 2
    first_logged = int(re.search(r"step (\d+)/40", output).group(1))
    assert first_logged > killed_at  # the step counter continued; it did not restart at 0


@pytest.mark.slow
def test_multi_worker_processes_end_with_identical_weights(shards, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    config = _tiny(shards, tmp_path / "run", strategy="multi_worker")
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(_run_worker(config, tmp_path / f"worker{index}.npz", _env(TF_CONFIG=tf_config)))
    for index, worker in enumerate(workers):
        _wait(worker, f"worker {index}")
    chief, other = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert int(chief["replicas_in_sync"]) == 2 and int(chief["steps"]) == 3
    chief_values, other_values = _replica_values(chief), _replica_values(other)
    assert chief_values.keys() == other_values.keys() and len(chief_values) > 50
    for name, values in chief_values.items():
        np.testing.assert_array_equal(values[0], other_values[name][0], err_msg=name)
    # Only the chief writes the work directory; the other worker leaves no files behind.
    work_dir = tmp_path / "run"
    assert (work_dir / "summary.json").exists() and (work_dir / "final.keras").exists()
    assert not list(work_dir.glob(".worker-*/checkpoints/*.index"))


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_keeps_replicas_identical(shards, tmp_path):
    config = _tiny(shards, tmp_path / "run", strategy="mirrored", num_cpu_devices=2)
    _wait(_run_worker(config, tmp_path / "mirrored.npz", _env()), "the mirrored run")
    result = np.load(tmp_path / "mirrored.npz")
    assert int(result["replicas_in_sync"]) == 2 and int(result["steps"]) == 3
    values = _replica_values(result)
    assert all(len(v) == 2 for v in values.values()), {k: len(v) for k, v in values.items()}
    for name, (first, second) in values.items():
        np.testing.assert_array_equal(first, second, err_msg=name)
