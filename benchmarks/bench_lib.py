"""Benchmark orchestration: interleaved A/B timing, rows, table and JSON.

Every figure comes from worker processes (``workers.py``); this module never
imports TensorFlow or PyTorch itself. For each row the competing workers are
built and warmed up one after the other, then timed in turns
(A, B, A, B, ...): `repeats` rounds of `calls` timed calls each. A round's
figure is the items per second (or seconds per item) of its calls; the row
reports the median over rounds and the ratio of the medians. Background load
on a shared machine then hits both sides alike; trust ratios more than
absolute figures.
"""

import dataclasses
import io
import json
import multiprocessing
import os
import pathlib
import platform
import shutil
import statistics
import tempfile
import time
import traceback

import workers

READY_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 3600

ROWS = ("train", "memory", "inference", "pipeline", "e2e")


@dataclasses.dataclass
class BenchConfig:
    """What to run. Built from flags by run.py."""

    rows: tuple = ROWS
    train_sizes: tuple = (256, 128)
    train_batch: int = 16
    memory_batch: int = 64
    memory_size: int = 256
    infer_size: int = 256
    infer_batches: tuple = (1, 16)
    repeats: int = 5
    train_steps: int = 3
    train_warmup: int = 2
    infer_calls: int = 5
    pipeline_batches: int = 60
    torch_channels_last: bool = True
    tflite_threads: int = 2
    shard_images: int = 256
    work_dir: str = ""
    e2e_megapixels: float = 12.0
    keras_setup: str = "package"  # "package" | "tuned" | "stock": see workers.tf_train


@dataclasses.dataclass
class Row:
    """One line of the table: ours against a reference."""

    name: str
    unit: str
    better: str  # "higher" or "lower"
    ours_label: str = ""
    reference_label: str = ""
    ours: float = None
    reference: float = None
    target: str = ""
    ours_best: float = None
    reference_best: float = None
    skipped: str = ""
    samples: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def ratio(self):
        if self.ours is None or self.reference is None or not self.reference:
            return None
        return self.ours / self.reference

    @property
    def best_ratio(self):
        """Ratio of the best rounds: the least disturbed by background load."""
        if self.ours_best is None or self.reference_best is None or not self.reference_best:
            return None
        return self.ours_best / self.reference_best


# --------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------

_CTX = multiprocessing.get_context("spawn")


class WorkerError(RuntimeError):
    pass


class Worker:
    """A spawned worker process holding one warmed-up `workers.Runner`."""

    def __init__(self, label, factory, env=None, **kwargs):
        self.label = label
        self._conn, child = _CTX.Pipe()
        self._proc = _CTX.Process(
            target=workers.serve, args=(child, factory, kwargs, dict(env or {})), name=f"bench-{label}", daemon=True
        )
        self._proc.start()
        child.close()
        self.info = self._receive(READY_TIMEOUT_S, "ready")[1]

    def _receive(self, timeout, expected):
        if not self._conn.poll(timeout):
            self.close()
            raise WorkerError(f"{self.label}: no answer within {timeout} s")
        try:
            message = self._conn.recv()
        except EOFError:
            self._proc.join(5)
            raise WorkerError(f"{self.label}: worker died (exit code {self._proc.exitcode})") from None
        if message[0] == "error":
            self.close()
            raise WorkerError(f"{self.label}: {message[1].strip()}")
        if message[0] != expected:
            raise WorkerError(f"{self.label}: unexpected message {message[0]!r}")
        return message

    def run(self, calls):
        """Times `calls` calls; returns (seconds list, peak RSS bytes, CPU seconds, load average)."""
        self._conn.send(("run", calls))
        return self._receive(RUN_TIMEOUT_S, "ok")[1:]

    def close(self):
        if self._proc.is_alive():
            try:
                self._conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(30)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()


def short_error(error):
    """Last line of a worker traceback (the exception), for the skip reason."""
    text = str(error).strip().splitlines()
    return text[-1] if text else repr(error)


def interleave(specs, repeats, calls, log):
    """Starts every spec, then times them in turns.

    Args:
      specs: dict label -> (factory name, kwargs).
      repeats: rounds; calls: timed calls per worker per round.

    Returns:
      dict label -> {"rates": [items/s per round], "seconds_per_item": [...],
      "info": worker info} ; a label whose worker failed maps to {"error": text}.
    """
    results, alive = {}, {}
    try:
        for label, (factory, kwargs) in specs.items():
            log(f"  starting {label} ...")
            start = time.perf_counter()
            try:
                alive[label] = Worker(label, factory, **kwargs)
            except WorkerError as error:
                results[label] = {"error": str(error)}
                log(f"  {label}: FAILED {short_error(error)}")
                continue
            log(f"  {label} ready in {time.perf_counter() - start:.0f} s")
            results[label] = {"rates": [], "seconds_per_item": [], "cpu_seconds_per_item": [], "load": [],
                              "rss_bytes": 0, "info": alive[label].info}
        for round_index in range(repeats):
            for label, worker in list(alive.items()):
                try:
                    seconds, rss, cpu, load = worker.run(calls)
                except WorkerError as error:
                    results[label] = {"error": str(error)}
                    del alive[label]
                    continue
                items = worker.info["items_per_call"] * len(seconds)
                total = sum(seconds)
                results[label]["rates"].append(items / total)
                results[label]["seconds_per_item"].append(total / items)
                results[label]["cpu_seconds_per_item"].append(cpu / items)
                results[label]["load"].append(load)
                results[label]["rss_bytes"] = rss
            summary = ", ".join(
                f"{lab} {results[lab]['rates'][-1]:.2f}/s" for lab in alive if results[lab].get("rates")
            )
            log(f"  round {round_index + 1}/{repeats}: {summary}")
    finally:
        for worker in alive.values():
            worker.close()
    return results


def _median(values):
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------


def _fill(row, results, ours, reference, key="rates", scale=1.0):
    """Medians of `key` for the two labels into `row` (or the skip reason)."""
    for label in (ours, reference):
        if "error" in results.get(label, {"error": "not run"}):
            row.skipped = f"{label}: {short_error(results.get(label, {}).get('error', 'not run'))}"
    row.samples = {label: results.get(label) for label in (ours, reference)}
    if row.skipped:
        return row
    row.ours = _median(results[ours][key]) * scale
    row.reference = _median(results[reference][key]) * scale
    best = max if row.better == "higher" else min
    row.ours_best = best(results[ours][key]) * scale
    row.reference_best = best(results[reference][key]) * scale
    return row


def train_rows(config, log):
    rows = []
    for size in config.train_sizes:
        log(f"[train] {size} px, batch {config.train_batch}")
        common = dict(image_size=size, batch_size=config.train_batch, warmup=config.train_warmup)
        specs = {
            "keras": ("tf_train", dict(common, setup=config.keras_setup)),
            "torch": ("torch_train", dict(common, channels_last=config.torch_channels_last)),
        }
        results = interleave(specs, config.repeats, config.train_steps, log)
        row = Row(
            f"1. training {size} px, batch {config.train_batch}, fp32 (img/s)",
            "img/s", "higher", "Keras/TF", "PyTorch",
            target=">= 1.0x" if size == 256 else "",
        )
        rows.append(_fill(row, results, "keras", "torch"))
    return rows


def memory_rows(config, log):
    log(f"[memory] training step, batch {config.memory_batch}, {config.memory_size} px, one process each")
    results = {}
    for label, factory in (("keras", "tf_train"), ("torch", "torch_train")):
        kwargs = dict(image_size=config.memory_size, batch_size=config.memory_batch, warmup=1)
        if label == "torch":
            kwargs["channels_last"] = config.torch_channels_last
        else:
            kwargs["setup"] = config.keras_setup
        out = interleave({label: (factory, kwargs)}, 1, 1, log)[label]
        if "error" not in out:
            out["peak_gb"] = [out["rss_bytes"] / 2**30]
        results[label] = out
    row = Row(
        f"2. peak RSS, training step batch {config.memory_batch}, {config.memory_size} px (GB)",
        "GB", "lower", "Keras/TF", "PyTorch", target="<= 1.0x",
    )
    return [_fill(row, results, "keras", "torch", key="peak_gb")]


def _one_shot(name, factory, **kwargs):
    """Runs a worker whose factory does all the work; returns its info (or {"error": ...})."""
    worker = None
    try:
        worker = Worker(name, factory, **kwargs)
        return worker.info
    except WorkerError as error:
        return {"error": str(error)}
    finally:
        if worker is not None:
            worker.close()


def prepare_artifacts(config, work_dir, log):
    """Random-init paper model -> .keras, SavedModel, TFLite variants (in a worker)."""
    log("[inference] exporting a random-init paper model (.keras, SavedModel, TFLite)")
    return _one_shot("export", "export_artifacts", out_dir=str(work_dir), image_size=config.infer_size)


def inference_rows(config, work_dir, log):
    artifacts = prepare_artifacts(config, work_dir, log)
    log(f"  artifacts: { {k: v for k, v in artifacts.items() if k != 'error'} }")
    rows = []
    for batch in config.infer_batches:
        log(f"[inference] {config.infer_size} px, batch {batch}")
        common = dict(batch_size=batch, warmup=2)
        specs = {"torch": ("torch_infer", dict(common, image_size=config.infer_size,
                                                channels_last=config.torch_channels_last))}
        if artifacts.get("keras_path"):
            specs["keras"] = ("tf_keras_infer", dict(common, model_path=artifacts["keras_path"],
                                                     setup=config.keras_setup))
        if artifacts.get("saved_model_dir"):
            specs["saved_model"] = ("tf_saved_model_infer", dict(common, saved_model_dir=artifacts["saved_model_dir"]))
        for variant, path in sorted(artifacts.get("tflite", {}).items()):
            specs[f"tflite_{variant}"] = ("litert_infer", dict(common, tflite_path=path, threads=config.tflite_threads))
        results = interleave(specs, config.repeats, config.infer_calls if batch == 1 else max(1, config.infer_calls // 4), log)
        missing = artifacts.get("error") or "; ".join(artifacts.get("errors", []))
        for label, ref in [("keras", "torch"), ("saved_model", "torch")] + [
            (f"tflite_{v}", "saved_model") for v in ("float32", "float16", "dynamic_int8", "int8")
        ]:
            if batch == 1:
                row = Row(f"3. latency batch 1, {label} vs {ref} (ms/img)", "ms", "lower", label, ref)
                key, scale = "seconds_per_item", 1000.0
            else:
                row = Row(f"3. throughput batch {batch}, {label} vs {ref} (img/s)", "img/s", "higher", label, ref)
                key, scale = "rates", 1.0
            row.target = {"saved_model": "<= 1.0x", "tflite_float32": "<= 1.0x", "tflite_dynamic_int8": "<= 0.7x"}.get(
                label, "") if batch == 1 else ""
            if label not in results and missing:
                results[label] = {"error": f"artifact not available: {missing}"}
            rows.append(_fill(row, results, label, ref, key=key, scale=scale))
    return rows


def make_shards(config, work_dir, log):
    """256 px JPEG shards written with the package's Example codec (in a worker)."""
    return _one_shot("shards", "write_shards", out_dir=str(work_dir), count=config.shard_images)


def pipeline_rows(config, work_dir, log):
    log("[pipeline] writing 256 px shards")
    shards = make_shards(config, work_dir, log)
    row = Row("4. input pipeline 256 px, full preprocessing vs bare decode_jpeg (img/s)", "img/s", "higher",
              "make_dataset", "decode_jpeg", target=">= 0.7x")
    if "error" in shards:
        row.skipped = short_error(shards["error"])
        return [row]
    log(f"  {shards['count']} images in {shards['pattern']} ({shards['source']})")
    common = dict(file_pattern=shards["pattern"], image_size=256, batch_size=16,
                  batches_per_call=config.pipeline_batches)
    specs = {"make_dataset": ("tf_pipeline", dict(common, full=True)),
             "decode_jpeg": ("tf_pipeline", dict(common, full=False))}
    results = interleave(specs, config.repeats, 1, log)
    return [_fill(row, results, "make_dataset", "decode_jpeg")]


def e2e_rows(config, work_dir, log):
    log(f"[e2e] {config.e2e_megapixels:g}-megapixel JPEG through keras_colorize.inference.api.Colorizer")
    row = Row(f"5. end to end {config.e2e_megapixels:g} MP JPEG (s/image)", "s", "lower", "Colorizer",
              "2 s target", target="<= 1.0x (under 2 s)")
    artifacts = {}
    worker = None
    try:
        worker = Worker("e2e-setup", "e2e_inputs", out_dir=str(work_dir), megapixels=config.e2e_megapixels)
        artifacts = worker.info
    except WorkerError as error:
        row.skipped = short_error(error)
        return [row]
    finally:
        if worker is not None:
            worker.close()
    results = interleave(
        {"colorize": ("colorize_file", dict(model_path=artifacts["keras_path"], image_path=artifacts["image_path"],
                                            output_dir=str(work_dir), warmup=1))},
        config.repeats, 1, log)
    results["target"] = {"seconds_per_item": [2.0]}
    row.info = {"image": artifacts.get("image_shape")}
    return [_fill(row, results, "colorize", "target", key="seconds_per_item")]


# --------------------------------------------------------------------------
# Table and JSON
# --------------------------------------------------------------------------


def _fmt(value, unit):
    if value is None:
        return "-"
    if unit == "ms" or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}"


def format_table(rows):
    out = io.StringIO()
    header = f"{'row':74s} {'ours':>8s} {'ref':>8s} {'ratio':>6s} {'best':>6s}  {'target':10s} note"
    out.write(header + "\n" + "-" * len(header) + "\n")
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        best = "-" if row.best_ratio is None else f"{row.best_ratio:.2f}x"
        note = f"skipped: {row.skipped}" if row.skipped else f"{row.ours_label} vs {row.reference_label}"
        out.write(f"{row.name:74s} {_fmt(row.ours, row.unit):>8s} {_fmt(row.reference, row.unit):>8s} "
                  f"{ratio:>6s} {best:>6s}  {row.target:10s} {note}\n")
    return out.getvalue()


#: Load average above which other processes were competing for the 2 cores (the
#: benchmark itself accounts for about 2). PyTorch's OpenMP threads degrade badly
#: when oversubscribed (measured here: 5-10x slower at load 5-6, TF about 2x), so
#: ratios against the reference taken above it flatter us.
BUSY_LOAD = 3.0


def busy_warning(rows):
    """A warning line when the machine was busy during the timed rounds, else ""."""
    loads = [load for row in rows for sample in row.samples.values() if isinstance(sample, dict)
             for load in sample.get("load", [])]
    if not loads or max(loads) <= BUSY_LOAD:
        return ""
    return (f"WARNING: load average reached {max(loads):.1f} (median {statistics.median(loads):.1f}) during the "
            f"timed rounds: other processes shared the CPU. PyTorch's OpenMP threads slow down far more than "
            f"TensorFlow's under oversubscription, so ratios against the reference are too favourable to us; "
            f"rerun on an idle machine for figures to quote.")


def machine_info():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["load_average_start"] = os.getloadavg()
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def run(config, log=print):
    """Runs the selected rows; returns (rows, report dict)."""
    started = time.time()
    machine = machine_info()
    work_dir = pathlib.Path(config.work_dir or tempfile.mkdtemp(prefix="kc-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    builders = {
        "train": lambda: train_rows(config, log),
        "memory": lambda: memory_rows(config, log),
        "inference": lambda: inference_rows(config, work_dir / "inference", log),
        "pipeline": lambda: pipeline_rows(config, work_dir / "shards", log),
        "e2e": lambda: e2e_rows(config, work_dir / "e2e", log),
    }
    for name in config.rows:
        try:
            rows.extend(builders[name]())
        except Exception:  # noqa: BLE001 -- one broken row must not lose the others
            rows.append(Row(f"{name}", "", "", skipped=traceback.format_exc(limit=3).strip().splitlines()[-1]))
    machine["load_average_end"] = os.getloadavg()
    if not config.work_dir:  # models, exports and shards written for this run only
        shutil.rmtree(work_dir, ignore_errors=True)
    report = {
        "busy_warning": busy_warning(rows),
        "config": dataclasses.asdict(config),
        "machine": machine,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "rows": [dict(dataclasses.asdict(row), ratio=row.ratio, best_ratio=row.best_ratio) for row in rows],
    }
    return rows, report


def write_json(report, path):
    from keras_colorize import fileio  # noqa: PLC0415 - light (no TensorFlow), like this module

    fileio.atomic_write_text(path, json.dumps(report, indent=1, default=str))
