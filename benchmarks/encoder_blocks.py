r"""Cost of the encoder's depth on the tiny preset: tracing the first train step, and a step after it.

    python benchmarks/encoder_blocks.py

Builds the ``tiny`` preset (64 px, width 0.25) with the encoder layouts below,
compiles it as the trainer does (Adam, the two-head loss, TensorFlow's fused
BatchNormalization), and times the first ``train_on_batch`` (tracing and graph
optimization: what every test that trains or exports a fresh model pays) and
the median of 20 later steps, batch 16. Prints a table with each layout's
times as ratios of ResNet34's (3, 4, 6, 3), measured in the same run.
Random weights and inputs: the time does not depend on them.
"""

import dataclasses
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

#: Encoder layouts timed; the first is the reference.
LAYOUTS = ((3, 4, 6, 3), (1, 1, 1, 1))
BATCH = 16
STEPS = 20


def measure(blocks):
    from keras_colorize import models  # noqa: PLC0415
    from keras_colorize.training import perf  # noqa: PLC0415

    config = dataclasses.replace(models.get_preset("tiny"), encoder_blocks=blocks)
    model = models.build_colorizer(config)
    model.compile(optimizer="adam", loss={"ab": "mse", "class": "sparse_categorical_crossentropy"})
    rng = np.random.default_rng(0)
    x = {"L": rng.random((BATCH, 64, 64, 1), np.float32)}
    y = {"ab": rng.random((BATCH, 64, 64, 2), np.float32),
         "class": rng.integers(0, config.num_classes, BATCH).astype(np.int32)}
    with perf.fused_batch_norm(True):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - start
        times = []
        for _ in range(STEPS):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
    return {"params": model.count_params(), "first_s": first, "step_s": statistics.median(times)}


def main():
    rows = {blocks: measure(blocks) for blocks in LAYOUTS}
    ref = rows[LAYOUTS[0]]
    print(f"tiny preset, batch {BATCH}, {os.cpu_count()} CPUs; ratios against {LAYOUTS[0]} in this run")
    print("| encoder_blocks | parameters | first train step | ratio | later step (median) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for blocks, row in rows.items():
        print(f"| {blocks} | {row['params']:,} | {row['first_s']:.1f} s | {row['first_s'] / ref['first_s']:.2f}x | "
              f"{row['step_s'] * 1000:.0f} ms | {row['step_s'] / ref['step_s']:.2f}x |")


if __name__ == "__main__":
    main()
