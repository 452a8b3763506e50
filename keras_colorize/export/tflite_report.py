"""The TFLite report: per variant, file size, LiteRT latency, and quality against Keras and ground truth.

For each ``.tflite`` variant, on this machine's CPU:

* ``size_mb`` and ``size_vs_float32`` (the int8 files should be <= 0.30);
* ``latency_ms`` / ``latency_min_ms``: median and minimum wall time of one
  1 x S x S x 1 inference with the LiteRT interpreter (``num_threads``
  threads, XNNPACK), after warm-up;
  ``latency_vs_saved_model`` divides it by the SavedModel's median on the
  same input in the same process (the ``colorize_l`` signature, batch 1, TF's
  default threads), the baseline the performance targets refer to. All
  runners are timed round-robin so they see the same machine load;
* ``ab_mae_vs_keras`` / ``ab_max_abs_vs_keras``: a*b* difference to the
  float32 Keras model on the photos (model units, (ab + 128) / 255). The
  reference is ``model`` rebuilt under the float32 policy
  (:func:`keras_colorize.export.bn_folding.as_float32`): that is what the files
  compute; a ``mixed_bfloat16`` model as loaded differs from it by up to 0.19;
* ``tolerance`` / ``recommended``: the variant's limit on the mean difference
  (:data:`keras_colorize.export.tflite.TOLERANCES`) and whether it is met.
  Only meaningful for a trained model on real photos: an untrained net predicts
  nearly the same colour everywhere, and any variant then looks exact;
* ``paper_mae``: the paper's average MAE against the photos' ground truth
  (:func:`keras_colorize.evaluation.metrics.paper_metrics`), and ``paper_mae_delta``, its
  difference to the Keras model's.

A guided model (``hints=True``) is measured twice: the columns above without
hints (its automatic case), and ``ab_mae_vs_keras_hints`` /
``ab_max_abs_vs_keras_hints`` with hints given (:func:`report_hints`: a fixed
number of points drawn from each photo's ground truth with a fixed seed, and
the photo's own reference histogram). ``recommended`` then needs both means
within the tolerance.

Photos are read with the evaluation view of the data pipeline (short side
resized to S, center crop; :func:`keras_colorize.data.preprocess.eval_image`).
Latencies come from this report, run by the exporter; they are measurements
on the machine that ran it, not claims.
"""

import dataclasses
import json
import os
import pathlib
import statistics
import tempfile
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_colorize import fileio
from keras_colorize.evaluation import metrics
from keras_colorize.data import preprocess
from keras_colorize.export import bn_folding
from keras_colorize.export import litert_runner
from keras_colorize.export import tflite as tflite_lib
from keras_colorize.export import saved_model as saved_model_lib
from keras_colorize.inference import images


def load_photos(paths, image_size):
    """``(L (N, S, S, 1), ab (N, S, S, 2))`` in model units from image files."""
    paths = [pathlib.Path(p) for p in paths]
    if not paths:
        raise ValueError("paths must name at least one photo")
    l_list, ab_list = [], []
    for path in paths:
        image = preprocess.eval_image(tf.io.read_file(str(path)), image_size)
        l_input, ab = preprocess.to_model_units(image)
        l_list.append(l_input.numpy())
        ab_list.append(ab.numpy())
    return np.stack(l_list), np.stack(ab_list)


def list_photos(directory, limit=None):
    """Sorted JPEG/PNG files of a folder (the first ``limit``); ValueError if none."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ValueError(f"photos directory {str(directory)!r} is not a folder")
    files = sorted(p for p in directory.iterdir() if images.is_image_path(p))
    if not files:
        raise ValueError(f"photos directory {str(directory)!r} has no .jpg/.png files")
    return files[:limit] if limit else files


def interleaved_latency_ms(runners, runs=20, warmup=3):
    """``(median ms, minimum ms)`` per runner, timing them round-robin.

    Interleaving (one run of each per round) exposes every runner to the same
    machine load, so their ratios stay meaningful on a shared CPU. The minimum
    estimates the uncontended time: on an oversubscribed CPU, LiteRT's
    statically partitioned thread pool waits for its slowest (descheduled)
    thread at every op, TF's work-stealing pool does not, so medians there
    favour TF by a margin that depends on the other jobs.

    Args:
      runners: dict name -> zero-argument callable running one inference.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (1000.0 * statistics.median(t), 1000.0 * min(t)) for name, t in times.items()}


@dataclasses.dataclass
class VariantRow:
    variant: str
    size_mb: float
    size_vs_float32: float
    latency_ms: float
    latency_min_ms: float
    latency_vs_saved_model: float
    latency_min_vs_saved_model: float
    ab_mae_vs_keras: float
    ab_max_abs_vs_keras: float
    paper_mae: float
    paper_mae_delta: float
    tolerance: float
    recommended: bool
    ab_mae_vs_keras_hints: Optional[float] = None  # guided models: with hints given (report_hints)
    ab_max_abs_vs_keras_hints: Optional[float] = None


#: Points per photo of the report's "with hints" measurement (and the seed they are drawn with).
REPORT_HINT_POINTS = 10
REPORT_HINT_SEED = (21, 2017)


def report_hints(l_photos, ab_photos, num_points=REPORT_HINT_POINTS):
    """``(hints (N, S, S, 3), reference (N, R))``: the guided inputs the report measures with.

    ``num_points`` points per photo drawn from its ground truth
    (:func:`keras_colorize.guidance.hint_ops.sample_hints`, fixed seed) and the
    photo's own reference histogram, so both kinds of hint are exercised.
    """
    from keras_colorize import color  # noqa: PLC0415
    from keras_colorize.guidance import hint_ops  # noqa: PLC0415

    ab_photos = tf.constant(np.asarray(ab_photos, np.float32))
    hints = hint_ops.sample_hints(color.target_to_ab(ab_photos), num_points, tf.constant(REPORT_HINT_SEED))
    reference = hint_ops.reference_histograms(color.model_to_rgb(np.asarray(l_photos, np.float32), ab_photos))
    return hints.numpy(), reference.numpy()


def keras_reference_ab(model, l_photos, batch_size=8, hints=None, reference=None):
    """a*b* of ``model`` rebuilt in float32 (what the ``.tflite`` files compute) on ``(N, S, S, 1)`` L/100.

    A guided model gets ``hints`` ``(N, S, S, 3)`` and ``reference`` ``(N, R)``
    (zeros when None); passing them for a model without hint inputs is a ValueError.
    """
    from keras_colorize.guidance import hint_ops  # noqa: PLC0415

    guided = saved_model_lib.is_guided(model)
    if not guided and (hints is not None or reference is not None):
        raise ValueError(f"model {model.name!r} has no hint inputs; hints and reference need a guided model")
    float_model = bn_folding.as_float32(model)
    l_photos = np.asarray(l_photos, np.float32)
    if guided:
        count, size = len(l_photos), l_photos.shape[1]
        hints = np.zeros((count, size, size, 3), np.float32) if hints is None else np.asarray(hints, np.float32)
        reference = (hint_ops.no_reference(count).numpy() if reference is None
                     else np.asarray(reference, np.float32))

    def inputs(i):
        chunk = l_photos[i:i + batch_size]
        return chunk if not guided else {"L": chunk, "hints": hints[i:i + batch_size],
                                         "reference": reference[i:i + batch_size]}

    return np.concatenate([np.asarray(float_model(inputs(i), training=False)["ab"])
                           for i in range(0, len(l_photos), batch_size)])


def ab_differences(paths, l_photos, reference_ab, num_threads=2, hints=None, reference=None):
    """variant -> ``(mean, max)`` |a*b* difference| of each ``.tflite`` file (LiteRT) to ``reference_ab``.

    ``hints``/``reference``: a guided model's inputs (as :func:`keras_reference_ab` was given them).
    """
    result = {}
    for variant, path in paths.items():
        ab = litert_runner.LiteRTPredictor(path, num_threads).predict(l_photos, hints, reference)["ab"]
        diff = np.abs(ab - reference_ab)
        result[variant] = (float(diff.mean()), float(diff.max()))
    return result


def build_report(model, paths, l_photos, ab_photos, saved_model_dir=None, num_threads=2, runs=20, notes=""):
    """The report dict (rows per variant plus the Keras/SavedModel reference).

    Args:
      model: the Keras colorizer the files were converted from (any dtype
        policy; compared as float32).
      paths: dict variant -> ``.tflite`` path (must include ``"float32"`` for
        the size ratio; otherwise ratios are against the largest file).
      l_photos, ab_photos: real photos in model units (:func:`load_photos`).
      saved_model_dir: an exported serving SavedModel of ``model`` (version
        folder); if None, one is written to a temporary folder.
      num_threads: LiteRT threads.
      runs: timed runs per latency (median reported).
      notes: free text recorded in the report (e.g. where the weights came from).
    """
    l_photos = np.asarray(l_photos, np.float32)
    ab_photos = np.asarray(ab_photos, np.float32)
    l_one = l_photos[:1]
    keras_ab = keras_reference_ab(model, l_photos)
    keras_mae = float(np.mean(metrics.paper_metrics(l_photos, ab_photos, keras_ab)["mae"]))
    guided = saved_model_lib.is_guided(model)
    with_hints = {}
    if guided:
        hints, reference = report_hints(l_photos, ab_photos)
        keras_ab_hints = keras_reference_ab(model, l_photos, hints=hints, reference=reference)
        with_hints = ab_differences(paths, l_photos, keras_ab_hints, num_threads, hints, reference)

    sizes = {v: pathlib.Path(p).stat().st_size for v, p in paths.items()}
    reference_size = sizes.get("float32", max(sizes.values()))
    predictors = {v: litert_runner.LiteRTPredictor(p, num_threads) for v, p in paths.items()}
    with tempfile.TemporaryDirectory(prefix="kc-report-") as tmp:
        if saved_model_dir is None:
            saved_model_dir = saved_model_lib.export_saved_model(model, pathlib.Path(tmp) / "colorizer", 1,
                                                                 warmup=False)
        serving_fn = tf.saved_model.load(str(saved_model_dir)).signatures[saved_model_lib.TENSOR_SIGNATURE]
        l_one_tensor = tf.constant(l_one)
        runners = {"saved_model": lambda: serving_fn(L=l_one_tensor)["ab"].numpy()}
        for variant, predictor in predictors.items():
            runners[variant] = lambda predictor=predictor: predictor.predict(l_one)
        load_before = os.getloadavg()[0]
        latencies = interleaved_latency_ms(runners, runs)
        load_after = os.getloadavg()[0]
    saved_model_ms, saved_model_min_ms = latencies["saved_model"]

    rows = []
    for variant, predictor in predictors.items():
        ab = predictor.predict(l_photos)["ab"]
        diff = np.abs(ab - keras_ab)
        mae = float(np.mean(metrics.paper_metrics(l_photos, ab_photos, ab)["mae"]))
        tolerance = tflite_lib.TOLERANCES.get(variant, tflite_lib.TOLERANCES["int8"])
        hinted_mean, hinted_max = with_hints.get(variant, (None, None))
        rows.append(VariantRow(
            variant=variant,
            size_mb=sizes[variant] / 1e6,
            size_vs_float32=sizes[variant] / reference_size,
            latency_ms=latencies[variant][0],
            latency_min_ms=latencies[variant][1],
            latency_vs_saved_model=latencies[variant][0] / saved_model_ms,
            latency_min_vs_saved_model=latencies[variant][1] / saved_model_min_ms,
            ab_mae_vs_keras=float(diff.mean()),
            ab_max_abs_vs_keras=float(diff.max()),
            paper_mae=mae,
            paper_mae_delta=mae - keras_mae,
            tolerance=tolerance,
            recommended=bool(diff.mean() <= tolerance and (hinted_mean is None or hinted_mean <= tolerance)),
            ab_mae_vs_keras_hints=hinted_mean,
            ab_max_abs_vs_keras_hints=hinted_max,
        ))
    image_size = int(l_photos.shape[1])
    return {
        "image_size": image_size,
        "num_photos": int(len(l_photos)),
        "num_threads": num_threads,
        "timed_runs": runs,
        "keras_paper_mae": keras_mae,
        "guided": guided,
        "hints": (f"{REPORT_HINT_POINTS} points per photo from its ground truth (hint_ops.sample_hints, seed "
                  f"{list(REPORT_HINT_SEED)}) and its own reference histogram") if guided else None,
        "saved_model_latency_ms": saved_model_ms,
        "saved_model_latency_min_ms": saved_model_min_ms,
        "load_average_1min": [load_before, load_after],
        "cpu_count": os.cpu_count(),
        "notes": notes,
        "variants": [dataclasses.asdict(r) for r in rows],
    }


def format_table(report):
    """The report as a Markdown table."""
    guided = bool(report.get("guided"))
    lines = [
        f"TFLite report: {report['image_size']} px, {report['num_photos']} photos, LiteRT {report['num_threads']} threads, "
        f"{report['timed_runs']} runs each, round-robin; 1-min load average "
        f"{report['load_average_1min'][0]:.1f} -> {report['load_average_1min'][1]:.1f} on {report['cpu_count']} CPUs",
        f"SavedModel (colorize_l, batch 1): median {report['saved_model_latency_ms']:.1f} ms, "
        f"min {report['saved_model_latency_min_ms']:.1f} ms; Keras float32 paper MAE {report['keras_paper_mae']:.5f}",
    ]
    if guided:
        lines.append(f"Guided model: without hints, and with hints ({report['hints']})")
    hint_columns = " | a*b* MAE vs Keras, hints | max abs, hints" if guided else ""
    lines += [
        "",
        "| variant | size MB | size / f32 | latency ms median (min) | / SavedModel median (min) "
        f"| a*b* MAE vs Keras | max abs vs Keras{hint_columns} | paper MAE | delta | tolerance | recommended |",
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if guided else "") + "---:|---:|---:|---|",
    ]
    for r in report["variants"]:
        hinted = (f"{r['ab_mae_vs_keras_hints']:.2e} | {r['ab_max_abs_vs_keras_hints']:.2e} | " if guided else "")
        lines.append(
            f"| {r['variant']} | {r['size_mb']:.1f} | {r['size_vs_float32']:.3f} | "
            f"{r['latency_ms']:.1f} ({r['latency_min_ms']:.1f}) | "
            f"{r['latency_vs_saved_model']:.2f}x ({r['latency_min_vs_saved_model']:.2f}x) | "
            f"{r['ab_mae_vs_keras']:.2e} | {r['ab_max_abs_vs_keras']:.2e} | {hinted}{r['paper_mae']:.5f} | "
            f"{r['paper_mae_delta']:+.5f} | {r['tolerance']:.0e} | {'yes' if r['recommended'] else 'no'} |"
        )
    if report.get("notes"):
        lines += ["", report["notes"]]
    return "\n".join(lines)


def write_report(report, path):
    """Writes the report as JSON (atomically)."""
    return fileio.atomic_write_text(path, json.dumps(report, indent=1))
