"""Beam pipeline options of the ``kc-beam-*`` commands: the runner and the arguments passed through.

The commands take their own flags, then ``--`` and any Beam pipeline option
(``--project``, ``--region``, ``--temp_location``, ``--flink_master``,
``--setup_file``, ...), which go to ``PipelineOptions`` unchanged::

    kc-beam-colorize --input=gs://archive/scans --output=gs://archive/colorized \\
        --runner=DataflowRunner -- --project=my-project --region=europe-west1 \\
        --temp_location=gs://archive/tmp --setup_file=./setup.py

On the DirectRunner (the default, and the only runner run here) the work is
spread over ``num_workers`` local processes (``direct_running_mode =
multi_processing``) unless the passed options say otherwise.
"""

import contextlib
import logging

RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "PrismRunner")


def pipeline_options(beam_args=(), runner="DirectRunner", num_workers=None):
    """``PipelineOptions`` from the passed-through arguments, the runner and (DirectRunner) the process count.

    Args:
      beam_args: Beam's own options, e.g. ``["--project=p", "--region=r"]``.
      runner: a Beam runner name; one given in ``beam_args`` wins.
      num_workers: DirectRunner only: worker processes (``--direct_num_workers``
        with ``--direct_running_mode=multi_processing``) unless ``beam_args`` sets them.

    Raises:
      ValueError: an unknown runner or a bad ``num_workers``.
    """
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.options.pipeline_options import StandardOptions

    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 1):
        raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
    args = list(beam_args)
    unknown = unknown_options(args)
    if unknown:
        raise ValueError(f"Beam pipeline options not recognised: {unknown} (after --, only Beam's own options; "
                         "runner-specific ones need that runner's extra, e.g. apache-beam[gcp] for Dataflow)")
    given = {a.split("=", 1)[0].lstrip("-") for a in args if a.startswith("--")}
    if "runner" not in given:
        args.append(f"--runner={runner}")
    options = PipelineOptions(args)
    if options.view_as(StandardOptions).runner in ("DirectRunner", None) and num_workers:
        direct = options.view_as(DirectOptions)
        if "direct_num_workers" not in given:
            direct.direct_num_workers = num_workers
        if "direct_running_mode" not in given and num_workers > 1:
            direct.direct_running_mode = "multi_processing"
    return options


def unknown_options(beam_args):
    """The arguments no Beam ``PipelineOptions`` class knows (Beam itself would drop them with a warning)."""
    from apache_beam.options import pipeline_options as beam_options

    parser = beam_options._BeamArgumentParser(allow_abbrev=False)  # noqa: SLF001 - the parser Beam itself uses

    def error(message):  # argparse would print its usage and exit; bad values are a ValueError here
        raise ValueError(f"Beam pipeline option: {message}")

    parser.error = error
    for cls in {str(c): c for c in beam_options.PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # noqa: SLF001
    _, unknown = parser.parse_known_args(list(beam_args))
    return unknown


@contextlib.contextmanager
def quiet_beam_import():
    """Importing Beam logs warnings about optional cloud clients on the root logger; a command's error stays one line.

    Beam's own INFO logging is turned down to warnings for the rest of the run.
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
