r"""Benchmarks keras_colorize against the PyTorch reference; prints one table, writes JSON.

    python benchmarks/run.py                       # every row (about 30-40 min on 2 cores)
    python benchmarks/run.py --quick               # 128 px training, fewer rounds: a smoke run
    python benchmarks/run.py --rows=train --train_sizes=256 --repeats=7

Rows (issue #7): 1 training img/s (256 and 128 px, batch 16, fp32, MSE + 0.01 CE,
Adam), 2 peak RSS of a batch-64 training step, 3 inference latency (batch 1) and
throughput (batch 16) of Keras, the SavedModel and each TFLite variant against
the reference, 4 input pipeline against bare decode_jpeg, 5 end-to-end
12-megapixel JPEG. Each side runs in its own process; sides are timed in turns
(A, B, A, B, ...) and the table shows medians and the ratio ours / reference.
Rows whose module is missing print the reason and are skipped.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # workers/torch_reference, then keras_colorize

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import bench_lib  # noqa: E402

ROWS = flags.DEFINE_list("rows", list(bench_lib.ROWS), f"rows to run, any of {', '.join(bench_lib.ROWS)}")
TRAIN_SIZES = flags.DEFINE_list("train_sizes", ["256", "128"], "image sizes of the training rows")
REPEATS = flags.DEFINE_integer("repeats", 5, "interleaved rounds per row (medians are reported)")
TRAIN_STEPS = flags.DEFINE_integer("train_steps", 3, "timed training steps per side per round")
TRAIN_WARMUP = flags.DEFINE_integer("train_warmup", 2, "untimed training steps after building (tracing, XLA)")
MEMORY_BATCH = flags.DEFINE_integer("memory_batch", 64, "batch of the peak-memory row")
INFER_CALLS = flags.DEFINE_integer("infer_calls", 5, "timed batch-1 inference calls per side per round")
TORCH_CHANNELS_LAST = flags.DEFINE_bool("torch_channels_last", True, "PyTorch reference in channels-last (its faster layout)")
KERAS_SETUP = flags.DEFINE_enum(
    "keras_setup", "package", ["package", "tuned", "stock"],
    "package: measure what the trainer/colorizer set up; tuned/stock: force keras_colorize.training.perf's CPU "
    "settings (fused batch norm) on/off, for A/B runs")
QUICK = flags.DEFINE_bool("quick", False, "smoke run: 128 px training only, 3 rounds, batch-16 memory, 1 inference batch")
OUTPUT = flags.DEFINE_string("output", os.path.join(HERE, "results", "latest.json"), "where the JSON report goes")
WORK_DIR = flags.DEFINE_string("work_dir", "", "where models/shards are written (default: a temporary folder)")


def config_from_flags():
    config = bench_lib.BenchConfig(
        rows=tuple(ROWS.value),
        train_sizes=tuple(int(s) for s in TRAIN_SIZES.value),
        repeats=REPEATS.value,
        train_steps=TRAIN_STEPS.value,
        train_warmup=TRAIN_WARMUP.value,
        memory_batch=MEMORY_BATCH.value,
        infer_calls=INFER_CALLS.value,
        torch_channels_last=TORCH_CHANNELS_LAST.value,
        work_dir=WORK_DIR.value,
        keras_setup=KERAS_SETUP.value,
    )
    if QUICK.value:
        config.train_sizes = (128,)
        config.repeats = min(config.repeats, 3)
        config.train_steps = min(config.train_steps, 2)
        config.memory_batch, config.memory_size = 16, 128
        config.infer_batches = (1,)
        config.infer_calls = min(config.infer_calls, 3)
        config.pipeline_batches = 5
        config.shard_images = 64
    unknown = set(config.rows) - set(bench_lib.ROWS)
    if unknown:
        raise app.UsageError(f"--rows: unknown rows {sorted(unknown)}; choose from {bench_lib.ROWS}")
    if config.repeats < 1 or config.train_steps < 1:
        raise app.UsageError(f"--repeats and --train_steps must be >= 1, got {config.repeats}, {config.train_steps}")
    for size in config.train_sizes:
        if size % 32:
            raise app.UsageError(f"--train_sizes must be multiples of 32, got {size}")
    return config


def main(argv):
    del argv
    config = config_from_flags()
    rows, report = bench_lib.run(config, log=lambda text: print(text, flush=True))
    table = bench_lib.format_table(rows)
    machine = report["machine"]
    print()
    print(f"{machine.get('cpu', '?')}, {machine['cpus']} CPUs, {machine.get('memory_gb', '?')} GB; "
          f"load average {machine['load_average_start'][0]:.1f} -> {machine['load_average_end'][0]:.1f}; "
          f"{report['wall_seconds']:.0f} s")
    print(table)
    if report["busy_warning"]:
        print(report["busy_warning"])
    report["table"] = table
    bench_lib.write_json(report, OUTPUT.value)
    print(f"JSON: {OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
