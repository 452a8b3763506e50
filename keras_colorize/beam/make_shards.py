r"""Photos -> TFRecord shards with Apache Beam: ``kc-beam-shards`` (``python -m keras_colorize.beam.make_shards``).

The same flags and the same shards as ``kc-make-shards`` (record for record),
written by Beam workers: DirectRunner processes here, or Dataflow, Flink or
Spark workers (see docs/beam.md; only the DirectRunner is run in this
project's tests). Beam's own options follow ``--``:

  kc-beam-shards --source=/data/places365 --classes=experiments/landscape_classes.txt \
    --output=/data/shards --split=train --num_workers=2          # DirectRunner, 2 processes

  kc-beam-shards --source=/mnt/places365 --source_url=gs://bucket/places365 \
    --classes=experiments/landscape_classes.txt --output=gs://bucket/shards --split=train \
    --runner=DataflowRunner -- --project=my-project --region=europe-west1 \
    --temp_location=gs://bucket/tmp --setup_file=./setup.py

--source is listed by the launcher (a local folder or a mounted bucket);
workers read the photos there, or under --source_url. --output may be any
file system Beam writes. --num_workers is the DirectRunner's process count.
Reruns keep finished shards (this pipeline's or kc-make-shards') and write the rest.

Needs the [beam] extra: pip install 'keras_colorize[beam]'.

Exit status: 0 written (bad files skipped and counted by reason in the
summary); 2 bad arguments or configuration (the flags of kc-make-shards, an
unknown runner or Beam option, a missing [beam] extra), one line
``kc-beam-shards: error: ...`` before any shard is written; 1 the pipeline
failed (finished shards are kept; rerun to finish).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from keras_colorize import cli
from keras_colorize.beam import options as beam_options
from keras_colorize.data import make_shards as local_tool  # defines the flags this command shares

_RUNNER = flags.DEFINE_enum("runner", "DirectRunner", list(beam_options.RUNNERS), "Beam runner.")
_SOURCE_URL = flags.DEFINE_string(
    "source_url", "", "Where workers read --source when they see it elsewhere (gs://bucket/places365); "
    "empty = at --source.")


def main(argv):
    cli.check_args(argv[:1], required=("source", "output"))
    with beam_options.quiet_beam_import():
        cli.require_extra("apache_beam", "beam")
        from keras_colorize.beam import shards  # noqa: PLC0415 - imports Beam and TensorFlow: after flag parsing
    from keras_colorize.data import shard_writer  # noqa: PLC0415

    local = local_tool.config_from_flags()
    pipeline_options = beam_options.pipeline_options(argv[1:], runner=_RUNNER.value, num_workers=local.num_workers)
    config = shards.BeamShardsConfig(local, source_url=_SOURCE_URL.value)
    _, summary = shards.run(config, pipeline_options)
    print(summary)
    print(f"shards: {shard_writer.file_pattern(config.shards.output, config.shards.split)}")
    return 0


def run():
    """Console-script entry point (``kc-beam-shards``); exit status 0, 1 or 2 as above."""
    cli.run(main, "kc-beam-shards")


if __name__ == "__main__":
    run()
