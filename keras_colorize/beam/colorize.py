r"""Colorize a whole archive with Apache Beam: ``kc-beam-colorize`` / ``python -m keras_colorize.beam.colorize``.

The outputs of ``kc-colorize`` (same layout, formats, metadata and bytes),
written by Beam workers: DirectRunner processes here, or Dataflow, Flink or
Spark workers (docs/beam.md; only the DirectRunner is run in this project's
tests). Beam's own options follow ``--``:

  kc-beam-colorize --input=scans/ --output=colorized/ --num_workers=2        # DirectRunner, 2 processes

  kc-beam-colorize --input='gs://archive/scans/**' --output=gs://archive/colorized \
    --runner=DataflowRunner -- --project=my-project --region=europe-west1 \
    --temp_location=gs://archive/tmp --setup_file=./setup.py

--input is a photo, a folder (recursive) or a glob; --input_list a file of
paths. --model defaults to the bundled model (installed with the package on
every worker); a model file or SavedModel folder may be a URL. A guided model
gets each photo's hint sidecar <photo>.hints.json (or one under --hints_dir)
and --reference as kc-colorize gives them. Reruns skip finished outputs
(redoing those older than their sidecar). Undecodable photos, and photos over --max_megapixels, are
listed in <output>/colorize_failures.jsonl with the reason; the summary and
<output>/colorize_report.json (kc-colorize's keys) end the run.

Needs the [beam] extra: pip install 'keras_colorize[beam]'.

Exit status: 0 every photo was colorized (or already done); 1 some failed
(each is listed with its reason; the rest are done); 2 bad arguments or
configuration, found before the pipeline starts (a missing flag, a model
that is missing or not a colorizer, an input that does not exist, an output
inside the input, an unknown runner or Beam option, a missing [beam] extra),
printed as one line ``kc-beam-colorize: error: ...``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags

from keras_colorize import cli
from keras_colorize import pretrained
from keras_colorize.beam import options as beam_options
from keras_colorize.inference import images

_MODEL = flags.DEFINE_string(
    "model", pretrained.DEFAULT, f"Model: {pretrained.MODEL_HELP} (.keras file or SavedModel folder; may be a URL).")
_INPUT = flags.DEFINE_string("input", None, "A photo, a folder (recursive) or a glob (** crosses folders).")
_INPUT_LIST = flags.DEFINE_string("input_list", None, "A text file of photo paths, one per line (instead of --input).")
_INPUT_ROOT = flags.DEFINE_string(
    "input_root", None, "The folder the output tree mirrors (default: --input's folder, or --input_list's).")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder, local or a URL (must be outside the input folder).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Images per network call.")
_OUTPUT_FORMAT = flags.DEFINE_enum("output_format", "same", list(images.OUTPUT_FORMATS),
                                   "Output file format; 'same' follows each input's format.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Redo outputs that already exist (default: skip them and resume).")
_QUALITY = flags.DEFINE_integer("quality", 95, "JPEG/WebP quality of the outputs.")
_MAX_MEGAPIXELS = flags.DEFINE_float(
    "max_megapixels", 200.0, "Larger photos go to the failures unread (raise it where workers have the memory).")
_HINTS_DIR = flags.DEFINE_string(
    "hints_dir", None, "Folder of the hint sidecars (<relative path of the photo>.hints.json), instead of beside "
    "the photos (guided models).")
_REFERENCE = flags.DEFINE_string(
    "reference", None, "Reference photo whose palette steers every photo whose hints name none (guided models).")
_SIDECARS = flags.DEFINE_bool("sidecars", True, "Use each photo's hint sidecar <photo>.hints.json where present.")
_RUNNER = flags.DEFINE_enum("runner", "DirectRunner", list(beam_options.RUNNERS), "Beam runner.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "DirectRunner: worker processes.")


def main(argv):
    if not (_INPUT.value or _INPUT_LIST.value):
        raise app.UsageError("--input (or --input_list) is required")
    cli.check_args(argv[:1], required=("output", "model"))
    with beam_options.quiet_beam_import():
        cli.require_extra("apache_beam", "beam")
        from keras_colorize.beam import archive  # noqa: PLC0415 - imports Beam: after flag parsing
    config = archive.ArchiveConfig(
        model=_MODEL.value, output=_OUTPUT.value, input=_INPUT.value or "", input_list=_INPUT_LIST.value or "",
        input_root=_INPUT_ROOT.value or "", batch_size=_BATCH_SIZE.value, output_format=_OUTPUT_FORMAT.value,
        overwrite=_OVERWRITE.value, quality=_QUALITY.value, max_megapixels=_MAX_MEGAPIXELS.value,
        hints_dir=_HINTS_DIR.value or "", reference=_REFERENCE.value or "", sidecars=_SIDECARS.value)
    pipeline_options = beam_options.pipeline_options(argv[1:], runner=_RUNNER.value, num_workers=_NUM_WORKERS.value)
    summary = archive.run(config, pipeline_options)  # ValueError: cli.run exits 2
    print(summary.text())
    return 0 if summary.ok else 1


def run():
    """Console-script entry point (``kc-beam-colorize``); exit status 0, 1 or 2 as above."""
    cli.run(main, "kc-beam-colorize")


if __name__ == "__main__":
    run()
