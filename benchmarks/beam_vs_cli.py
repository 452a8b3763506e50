r"""The Beam pipeline on the DirectRunner (2 worker processes) against ``kc-colorize``, on the same photos.

    python benchmarks/beam_vs_cli.py --output=benchmarks/results/beam_vs_cli.json
    python benchmarks/beam_vs_cli.py --quick      # 3 smallest photos: checks the script runs, measures nothing

Both commands run as users run them, one after the other in this one run, on
a copy of the same folder (default: the real B&W scans of ../shared/data/bw),
with the bundled model and the same ``--batch_size``:

* ``kc-colorize --input=photos --output=cli`` (``python -m keras_colorize.colorize``);
* ``kc-beam-colorize --input=photos --output=beam --num_workers=2``
  (DirectRunner, ``direct_running_mode=multi_processing``).

Two rows: images per second over the command's whole wall time (Python,
TensorFlow and model start-up included, what a user waits for), and over
the run time the command reports itself (``colorize_report.json``
``seconds``: for ``kc-colorize`` the colorization loop after the model is
loaded; for Beam the pipeline, worker start-up included). The ratio is
Beam / ``kc-colorize`` (> 1: Beam faster). It also counts the outputs that
are byte-identical, and for the others how far their decoded pixels are apart
(see docs/beam.md, "Equal outputs"). The load average before and after is recorded: on a
shared machine the numbers move with whatever else runs.
"""

import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

flags.DEFINE_string("photos", str(SHARED / "bw"), "Folder of photos to colorize (its image files, not recursive).")
flags.DEFINE_integer("batch_size", 4, "Images per network call, for both commands.")
flags.DEFINE_integer("num_workers", 2, "DirectRunner worker processes.")
flags.DEFINE_string("output", None, "Write the results as JSON here.")
flags.DEFINE_bool("quick", False, "Only the 3 smallest photos: a check that the script runs, not a measurement "
                  "(the JSON says so).")
FLAGS = flags.FLAGS

_IMAGES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")


def _timed(command, env):
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def _row(name, count, cli_seconds, beam_seconds):
    cli_rate, beam_rate = count / cli_seconds, count / beam_seconds
    return {"name": name, "images": count, "kc_colorize_s": round(cli_seconds, 2), "beam_s": round(beam_seconds, 2),
            "kc_colorize_img_s": round(cli_rate, 3), "beam_img_s": round(beam_rate, 3),
            "ratio_beam_over_cli": round(beam_rate / cli_rate, 3)}


def _difference(a, b):
    """How far two outputs' decoded pixels are apart: largest difference and share of values that differ."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    with Image.open(a) as x, Image.open(b) as y:
        x, y = np.asarray(x.convert("RGB"), np.int16), np.asarray(y.convert("RGB"), np.int16)
    diff = np.abs(x - y)
    return {"file": a.name, "max_level_difference": int(diff.max()), "values_differing": float((diff > 0).mean())}


def main(argv):
    del argv
    if not pathlib.Path(FLAGS.photos).is_dir():
        raise SystemExit(f"--photos={FLAGS.photos} is not a folder (the default is ../shared/data/bw)")
    photos = sorted(p for p in pathlib.Path(FLAGS.photos).iterdir() if p.suffix.lower() in _IMAGES)
    if FLAGS.quick:
        photos = sorted(sorted(photos, key=lambda p: p.stat().st_size)[:3])
    if not photos:
        raise SystemExit(f"no photos in {FLAGS.photos}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="beam_vs_cli-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "photos").mkdir()
        for path in photos:
            shutil.copy(path, tmp / "photos" / path.name)
        megapixels = 0.0
        from PIL import Image  # noqa: PLC0415

        for path in photos:
            with Image.open(path) as image:
                megapixels += image.width * image.height / 1e6
        common = [f"--input={tmp / 'photos'}", f"--batch_size={FLAGS.batch_size}"]
        cli_wall, _ = _timed([sys.executable, "-m", "keras_colorize.colorize", *common, f"--output={tmp / 'cli'}",
                              "--noprogress"], env)
        beam_wall, _ = _timed([sys.executable, "-m", "keras_colorize.beam.colorize", *common,
                               f"--output={tmp / 'beam'}", f"--num_workers={FLAGS.num_workers}"], env)
        cli_report = json.loads((tmp / "cli" / "colorize_report.json").read_text())
        beam_report = json.loads((tmp / "beam" / "colorize_report.json").read_text())
        done = sorted(set(cli_report["colorized"]) & set(beam_report["colorized"]))
        identical = sum((tmp / "cli" / n).read_bytes() == (tmp / "beam" / n).read_bytes() for n in done)
        differing = [_difference(tmp / "cli" / n, tmp / "beam" / n) for n in done
                     if (tmp / "cli" / n).read_bytes() != (tmp / "beam" / n).read_bytes()]
    count = len(done)
    rows = [_row("whole command (start-up included)", count, cli_wall, beam_wall),
            _row("run reported by the command", count, cli_report["seconds"], beam_report["seconds"])]
    result = {
        "quick_check_not_a_measurement": FLAGS.quick,
        "what": f"kc-colorize vs kc-beam-colorize (DirectRunner, {FLAGS.num_workers} worker processes, "
                f"multi_processing), bundled model, batch_size {FLAGS.batch_size}",
        "photos": FLAGS.photos, "images": count, "megapixels": round(megapixels, 1),
        "byte_identical_outputs": identical,
        "differing_outputs": differing,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
        "command": " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
    }
    print(f"{count} photos ({megapixels:.1f} megapixels), batch_size {FLAGS.batch_size}; "
          f"{identical}/{count} outputs byte-identical; load average {load_start[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"| measure | kc-colorize img/s | Beam DirectRunner x{FLAGS.num_workers} img/s | ratio Beam / kc-colorize |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['kc_colorize_img_s']:.3f} ({row['kc_colorize_s']:.1f} s) | "
              f"{row['beam_img_s']:.3f} ({row['beam_s']:.1f} s) | {row['ratio_beam_over_cli']:.2f} |")
    for d in differing:
        print(f"  {d['file']}: bytes differ; decoded pixels up to {d['max_level_difference']} level(s) apart "
              f"in {d['values_differing']:.2e} of the values")
    if FLAGS.output:
        pathlib.Path(FLAGS.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    app.run(main)
