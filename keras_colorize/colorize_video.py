r"""Colorize a film: ``kc-colorize-video`` / ``python -m keras_colorize.colorize_video``.

    python -m keras_colorize.colorize_video --model=runs/demo/model.keras \
        --input=film.mp4 --output=film_color.mp4 --smooth

Same frame count, size and frame rate as the input; the audio track is carried
over. ``--smooth`` turns on temporal chroma smoothing (see
:mod:`keras_colorize.video`); the flicker figure with and without it is
printed either way, and the run report is written beside the output as
``<output>.json``. Exit status 2 for bad arguments or an unreadable input.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags

from keras_colorize import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, ".keras model file or SavedModel folder.")
flags.DEFINE_string("input", None, "Input video file.")
flags.DEFINE_string("output", None, "Output video file (e.g. .mp4); written atomically.")
flags.DEFINE_bool("smooth", False, "Temporal chroma smoothing (motion-aware EMA of a*b*, reset at scene cuts).")
flags.DEFINE_float("smooth_alpha", 0.25, "Weight of the new frame's a*b* in the moving average.")
flags.DEFINE_float("cut_threshold", 12.0, "Mean |dL*| above which a frame starts a new scene.")
flags.DEFINE_integer("batch_size", 8, "Frames per network call.")
flags.DEFINE_integer("crf", 18, "libx264 quality (lower is better, 18 is visually lossless).")
flags.DEFINE_integer("max_frames", None, "Stop after this many frames.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
    cli.check_args(argv, required=("model", "input", "output"))
    from keras_colorize import video  # noqa: PLC0415 - after flag parsing, so --help is fast
    from keras_colorize.inference import Colorizer  # noqa: PLC0415

    output = pathlib.Path(FLAGS.output)
    try:
        if output.exists() and not FLAGS.overwrite:
            raise ValueError(f"output {FLAGS.output!r} exists (pass --overwrite to replace it)")
        smoothing = video.SmoothingConfig(alpha=FLAGS.smooth_alpha, cut_threshold=FLAGS.cut_threshold)
        smoothing.validate()
        video._open_input(FLAGS.input).close()  # noqa: SLF001 - fail before loading the model
        colorizer = Colorizer.from_path(FLAGS.model, batch_size=FLAGS.batch_size)
        report = video.colorize_video(colorizer, FLAGS.input, output, smooth=FLAGS.smooth, smoothing=smoothing,
                                      batch_size=FLAGS.batch_size, crf=FLAGS.crf, max_frames=FLAGS.max_frames,
                                      progress=FLAGS.progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report_path = output.with_name(output.name + ".json")
    report_path.write_text(json.dumps(report, indent=2))
    flicker = report["flicker_ab"]
    print(f"wrote {output}: {report['frames']} frames, {report['size'][0]}x{report['size'][1]}, "
          f"{report['fps']:.3f} fps, audio {report['audio'] or 'none'}; {report['seconds']:.1f} s "
          f"({report['frames_per_second']:.1f} frames/s)")
    print(f"flicker (mean |d a*b*| on static pixels): {flicker['raw']:.3f} without smoothing, "
          f"{flicker['smoothed']:.3f} with smoothing ({'applied' if FLAGS.smooth else 'not applied'}); "
          f"{flicker['scene_cuts']} scene cuts")
    return 0


def run():
    """Console-script entry point (``kc-colorize-video``)."""
    app.run(main)


if __name__ == "__main__":
    run()
