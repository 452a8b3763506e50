r"""Colorize a film: ``kc-colorize-video`` / ``python -m keras_colorize.colorize_video``.

    python -m keras_colorize.colorize_video --input=film.mp4 --output=film_color.mp4 --smooth
    python -m keras_colorize.colorize_video --model=runs/demo/best.keras --input=film.mp4 --output=film_color.mp4
    kc-colorize-video --model=guided.keras --input=film.mp4 --output=film_color.mp4 --reference=dusk.jpg
    kc-colorize-video --input=film.mp4 --output=film_color.mp4 --hints=film.hints.json

``--model`` defaults to the bundled ``scenes`` model, or to the bundled guided
``scenes_guided`` with ``--hints`` or ``--reference`` (both research and
non-commercial use only; see ``keras_colorize.pretrained``). Same frame
count, size and frame rate as the input; the audio track is carried over.
``--smooth`` turns on temporal chroma smoothing (see
:mod:`keras_colorize.inference.film`); the flicker figure with and without it is
printed either way, and the run report is written beside the output as
``<output>.json``. The output appears under its name only when complete.

Hints (a guided model, one trained with ``hints=True``): ``--reference=PHOTO``
gives the whole film the palette of PHOTO (one palette for every frame also
steadies the colours). ``--hints=FILE`` gives hints per frame range: a JSON list
of hint files (format in ``keras_colorize/guidance/hint_file.py``), each with
``"frames": [first, last]`` (0-based, both included, not overlapping), e.g.
``[{"frames": [0, 239], "version": 1, "units": "fraction", "points": [{"x": 0.5,
"y": 0.1, "color": "#e07020"}]}, {"frames": [240, 999], "version": 1,
"reference": "dusk.jpg"}]``; a range's own reference wins over ``--reference``.

Exit status: 0 success; 1 the input is short or damaged (it decoded to fewer
frames than its container declares, beyond a tolerance of
``max(2, 1 %)`` frames, 2 more when the count comes from a duration, or had
undecodable packets: the frames that decoded
are written and the summary says what is missing; ``--allow_partial`` accepts
this with exit 0 and a warning), or writing failed midway (nothing is
published); 2 bad arguments or input, before any work starts (a bad flag
value, a missing, empty or unreadable file, a still image, a file without
video, an output that exists or would overwrite the input or cannot be
written, the ``[video]`` extra (PyAV) not installed, a bad ``--hints`` or
``--reference``, a point outside the frame, hints for a model without hint
inputs; nothing is written), as one line
``kc-colorize-video: error: ...``.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from keras_colorize import cli
from keras_colorize import pretrained

COMMAND = "kc-colorize-video"

FLAGS = flags.FLAGS
flags.DEFINE_string("model", pretrained.DEFAULT, f"Model: {pretrained.MODEL_HELP} (.keras file or SavedModel folder).")
flags.DEFINE_string("input", None, "Input video file.")
flags.DEFINE_string("output", None, "Output video file (e.g. .mp4; the extension picks the container); "
                    "written atomically.")
flags.DEFINE_bool("smooth", False, "Temporal chroma smoothing (motion-aware EMA of a*b*, reset at scene cuts).")
flags.DEFINE_float("smooth_alpha", 0.25, "Weight of the new frame's a*b* in the moving average, in (0, 1].")
flags.DEFINE_float("cut_threshold", 12.0, "Mean |dL*| above which a frame starts a new scene (> 0).")
flags.DEFINE_integer("batch_size", 8, "Frames per network call (>= 1).")
flags.DEFINE_integer("crf", 18, "libx264 quality, 0-51 (lower is better, 18 is visually lossless).")
flags.DEFINE_integer("max_frames", None, "Colorize only the first this many frames (>= 1; default all).")
flags.DEFINE_bool("allow_partial", False, "Accept a short or damaged input (fewer frames than its container "
                  "declares): exit 0 with a warning instead of exit 1.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.DEFINE_string("hints", None, "Hints per frame range: a JSON list of hint files with \"frames\": [first, last] "
                    "(0-based, both included); needs a guided model.")
flags.DEFINE_string("reference", None, "Reference photo whose palette steers the whole film (a range's own "
                    "reference wins); needs a guided model.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")

# Config field -> flag, so that an error names the flag the user typed.
FLAG_NAMES = {"model": "--model", "input": "--input", "output": "--output", "alpha": "--smooth_alpha",
              "cut_threshold": "--cut_threshold", "batch_size": "--batch_size", "crf": "--crf",
              "max_frames": "--max_frames", "hints": "--hints", "reference": "--reference"}


def config_from_flags():
    """The :class:`keras_colorize.inference.film.FilmConfig` the flags describe (validated, flags named in errors)."""
    from keras_colorize.inference import film  # noqa: PLC0415 - after flag parsing, so --help is fast

    # No --model: the bundled guided model when hints or a reference are given, else the automatic one.
    model = FLAGS.model if FLAGS["model"].present else pretrained.default_model(bool(FLAGS.hints or FLAGS.reference))
    config = film.FilmConfig(
        model=model, input=FLAGS.input, output=FLAGS.output, smooth=FLAGS.smooth,
        smoothing=film.SmoothingConfig(alpha=FLAGS.smooth_alpha, cut_threshold=FLAGS.cut_threshold),
        batch_size=FLAGS.batch_size, crf=FLAGS.crf, max_frames=FLAGS.max_frames,
        allow_partial=FLAGS.allow_partial, overwrite=FLAGS.overwrite, hints=FLAGS.hints, reference=FLAGS.reference)
    config.validate(FLAG_NAMES)
    return config


def main(argv):
    cli.check_args(argv, required=("model", "input", "output"))
    av = cli.require_extra("av", "video")  # PyAV is the [video] extra: say so before any work
    config = config_from_flags()
    from keras_colorize.inference import film  # noqa: PLC0415

    try:
        summary = film.run(config, progress=FLAGS.progress, names=FLAG_NAMES)  # ValueError: bad input, cli.run exits 2
    except (OSError, av.error.FFmpegError) as e:  # e.g. the disk filled up: nothing was published
        if isinstance(e, ValueError):
            raise
        print(f"{COMMAND}: error: writing {config.output!r} failed, nothing was written: "
              f"{' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(summary.text())
    if not summary.ok:
        print(f"{COMMAND}: error: {summary.problem()}; pass --allow_partial to accept it", file=sys.stderr)
        return 1
    return 0


def run():
    """Console-script entry point (``kc-colorize-video``); exit status 0, 1 or 2 as above."""
    cli.run(main, COMMAND)


if __name__ == "__main__":
    run()
