"""Colorize a whole archive as an Apache Beam pipeline: the library of ``kc-beam-colorize``.

The outputs of ``kc-colorize`` (:mod:`keras_colorize.inference.photos`) on
the same input: the same file layout (the output tree mirrors the input
tree), formats, metadata and bytes, written by Beam workers, so an archive of
millions of scans runs on Dataflow, Flink or Spark (``docs/beam.md``):

1. the photos are listed in the pipeline (a folder, a glob such as
   ``gs://archive/scans/**/*.tif``, or a list file of paths), hidden files
   left out and files without an image extension counted as ignored;
2. two inputs that would be written to the same output are both sent to the
   failures (``kc-colorize`` refuses the whole run instead);
3. photos whose output exists are skipped (``overwrite`` redoes them), so a
   rerun after a failure or a kill does only the rest;
4. each photo is read with ``kc-colorize``'s reader; an undecodable one, or
   one larger than ``max_megapixels`` (read from its header, before it is
   decoded), goes to the failures with the reason;
5. ``RunInference`` with :class:`keras_colorize.beam.model_handler.ColorizerModelHandler`
   (the model loaded once per worker, ``batch_size`` photos per network call);
   a guided model gets each photo's hint sidecar (``<photo>.hints.json``
   beside it or under ``hints_dir``) and ``reference`` as ``kc-colorize``
   gives them; a sidecar that cannot be used fails its photo with the reason,
   and so do sidecars given to a model without hint inputs (``kc-colorize``
   refuses the whole run; ``sidecars=False`` colorizes without them);
6. each output is written with ``kc-colorize``'s writer, whole or not at all.

At the end the launcher prints ``kc-colorize``'s summary and writes
``colorize_report.json`` (the same keys) into the output folder; the failures
are also a Beam output, ``colorize_failures.jsonl`` (one JSON object per
line: ``file``, ``reason``). Beam counters (``keras_colorize_colorize``)
show progress in the runner's UI.

Outputs equal ``kc-colorize``'s byte for byte with ``batch_size=1``; with
larger batches, a photo that Beam batched differently from ``kc-colorize``
may differ by one level in a few pixels (see ``model_handler``).

Example::

    from keras_colorize.beam import archive, options
    summary = archive.run(archive.ArchiveConfig(model="scenes", input="scans/", output="colorized/"),
                          options.pipeline_options(num_workers=2))
"""

import dataclasses
import glob
import io
import json
import os
import pathlib
import secrets
import shutil
import tempfile
import time
import warnings

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference
from PIL import Image

from keras_colorize import fileio
from keras_colorize import pretrained
from keras_colorize.beam import files
from keras_colorize.beam import model_handler
from keras_colorize.inference import images
from keras_colorize.inference import photos

FAILURES_NAME = "colorize_failures.jsonl"
_WORK_DIR = ".kc-beam-colorize"  # the run's event log, under the output folder; removed at the end
_METRICS = "keras_colorize_colorize"
_GLOB_CHARS = "*?["


@dataclasses.dataclass(frozen=True)
class ArchiveConfig:
    """What to colorize and how; the fields of ``kc-colorize``'s config plus the archive's.

    Attributes:
      model: bundled model name (``"scenes"``), a path every worker sees, or a URL.
      output: output folder, local or a URL (``gs://archive/colorized``).
      input: a photo, a folder (recursive) or a glob (``**`` crosses folders); or
      input_list: a text file of photo paths, one per line (``#`` comments;
        relative paths are relative to ``input_root``).
      input_root: the folder the output tree mirrors. Default: the folder of
        ``input`` (the part before the first wildcard of a glob), or of the list file.
      batch_size, output_format, overwrite, quality: as in ``kc-colorize``.
      max_megapixels: larger photos are sent to the failures unread (a worker
        must hold a few copies of each photo; raise it where workers have the memory).
      hints_dir, reference, sidecars: guided colorization, as in ``kc-colorize``:
        each photo's sidecar ``<photo>.hints.json`` beside it (or under
        ``hints_dir`` at the same relative path), a reference photo for every
        photo whose hints name none, and whether sidecars are looked for.
    """

    model: str
    output: str
    input: str = ""
    input_list: str = ""
    input_root: str = ""
    batch_size: int = 4
    output_format: str = "same"
    overwrite: bool = False
    quality: int = 95
    max_megapixels: float = 200.0
    hints_dir: str = ""
    reference: str = ""
    sidecars: bool = True

    def validate(self):
        if bool(self.input) == bool(self.input_list):
            raise ValueError(f"give one of input (a photo, folder or glob) and input_list (a file of paths), "
                             f"got input={self.input!r}, input_list={self.input_list!r}")
        if not self.output:
            raise ValueError("output is required (the folder to write to)")
        if not isinstance(self.max_megapixels, (int, float)) or not self.max_megapixels > 0:
            raise ValueError(f"max_megapixels must be > 0, got {self.max_megapixels!r}")
        if self.reference and not files.exists(files.absolute(self.reference)):
            raise ValueError(f"reference {self.reference!r} does not exist or is not a file")
        if self.hints_dir and not (os.path.isdir(self.hints_dir) if files.is_local(self.hints_dir) else
                                   files.match(self.hints_dir.rstrip("/") + "/**", limit=1)):
            raise ValueError(f"hints_dir {self.hints_dir!r} does not exist or is not a folder")
        if files.is_local(self.model):
            photos.ColorizeConfig(model=self.model, input=".", output=self.output, batch_size=self.batch_size,
                                  output_format=self.output_format, quality=self.quality).validate()
        else:
            photos.ColorizeConfig(model=pretrained.DEFAULT, input=".", output=self.output,
                                  batch_size=self.batch_size, output_format=self.output_format,
                                  quality=self.quality).validate()
            if not files.match(self.model, limit=1) and not files.match(self.model.rstrip("/") + "/**", limit=1):
                raise ValueError(f"model {self.model!r} does not exist")


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Where the photos come from: ``kind`` is ``file``, ``pattern`` or ``list``."""

    kind: str
    path: str  # the photo, the glob or the list file
    root: str  # what the output tree mirrors


def _glob_root(pattern):
    head = pattern
    for ch in _GLOB_CHARS:
        head = head.split(ch, 1)[0]
    return head if head.endswith("/") and head.rstrip("/") else files.dirname(head)


def resolve_inputs(config):
    """The :class:`Inputs` of a config; raises ``ValueError`` for inputs that do not exist."""
    if config.input_list:
        path = files.absolute(config.input_list)
        if not files.exists(path):
            raise ValueError(f"input_list {config.input_list!r} does not exist")
        return Inputs("list", path, files.absolute(config.input_root).rstrip("/") if config.input_root
                      else files.dirname(path))
    path = files.absolute(config.input)
    if any(ch in path for ch in _GLOB_CHARS):
        kind, root = "pattern", _glob_root(path)
    elif files.is_local(path) and os.path.isdir(path):
        kind, root, path = "pattern", path, os.path.join(path, "**")
    elif files.match(path, limit=1) == [path]:
        kind, root = "file", files.dirname(path)
    elif not files.is_local(path) and files.match(path.rstrip("/") + "/**", limit=1):
        kind, root, path = "pattern", path.rstrip("/"), path.rstrip("/") + "/**"
    else:
        raise ValueError(f"input {config.input!r} does not exist")
    if kind == "pattern" and not files.match(path, limit=1):
        raise ValueError(f"input {config.input!r} matches no files")
    if config.input_root:
        root = files.absolute(config.input_root)
    return Inputs(kind, path, root.rstrip("/") or "/")


# ---------------------------------------------------------------------------
# The steps, one photo at a time
# ---------------------------------------------------------------------------


def _event(job_or_relative, status, **extra):
    relative = getattr(job_or_relative, "relative", job_or_relative)
    return {"file": relative, "status": status, **extra}


def relative_to(path, root):
    """``path`` relative to ``root`` with ``/`` separators, or None when it is not under ``root``."""
    root = root.rstrip("/")
    if not path.startswith(root + "/"):
        return None
    return path[len(root) + 1:]


def destination_for(output, relative, output_format):
    """Where ``kc-colorize`` writes the output of ``relative`` (its extension follows ``output_format``)."""
    renamed = images.output_path_for(relative, output_format).as_posix()
    return files.join(output, *renamed.split("/"))


def sidecar_for(source, relative, root, hints_dir=""):
    """Where ``kc-colorize`` looks for a photo's hint sidecar: :func:`hint_file.sidecar_path`, on any file system.

    ``<photo>.hints.json`` beside the photo, or under ``hints_dir`` at the
    photo's path relative to ``root``. Local paths go to ``hint_file.sidecar_path``
    as ``kc-colorize``'s plan passes them; for a URL (which ``pathlib`` would
    mangle, ``gs://b`` -> ``gs:/b``) the same function places the sidecar
    relative to the root, joined with ``/``.
    """
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    if files.is_local(source) and files.is_local(hints_dir or source):
        return str(hint_file.sidecar_path(pathlib.Path(source), pathlib.Path(root),
                                          pathlib.Path(hints_dir) if hints_dir else None))
    sidecar = hint_file.sidecar_path(pathlib.PurePosixPath(relative)).as_posix()
    return files.join(hints_dir or root, *sidecar.split("/"))


class ToJobFn(beam.DoFn):
    """Input path -> :class:`photos.Job` (with its sidecar, if any); hidden files and sidecars dropped,
    non-images tagged ``ignored``, paths outside the root ``failed``."""

    def __init__(self, root, output, output_format, hints_dir="", sidecars=True, keep_hidden=False):
        self._root, self._output, self._output_format = root, output, output_format
        self._hints_dir, self._sidecars = hints_dir, sidecars
        self._keep_hidden = keep_hidden  # one named photo is colorized even if hidden, as in kc-colorize

    def process(self, path):
        relative = relative_to(path, self._root)
        if relative is None:
            yield beam.pvalue.TaggedOutput("failed", _event(path, "failed", reason=(
                f"{path}: not under the input root {self._root} (its output would have no place in the tree)")))
            return
        from keras_colorize.guidance import hint_file  # noqa: PLC0415

        hidden = not self._keep_hidden and any(part.startswith(".") for part in relative.split("/"))
        if hidden or hint_file.is_sidecar(relative):
            # hidden files and hint sidecars, as kc-colorize's plan leaves them out
            return
        if not images.is_image_path(relative):
            yield beam.pvalue.TaggedOutput("ignored", _event(relative, "ignored"))
            return
        hints = None
        if self._sidecars:
            sidecar = sidecar_for(path, relative, self._root, self._hints_dir)
            hints = sidecar if files.exists(sidecar) else None
        yield photos.Job(source=path, destination=destination_for(self._output, relative, self._output_format),
                         relative=relative, hints=hints)


def split_collisions(keyed):
    """``(key, [jobs])`` -> the one job of its output, or a ``failed`` event for each of several inputs."""
    _, jobs = keyed
    unique = list({job.relative: job for job in jobs}.values())  # a list file naming a photo twice
    if len(unique) == 1:
        yield unique[0]
        return
    names = sorted(job.relative for job in unique)
    for job in unique:
        others = ", ".join(repr(n) for n in names if n != job.relative)
        yield beam.pvalue.TaggedOutput("failed", _event(job, "failed", reason=(
            f"same output file {job.destination} as {others}; rename one or colorize them into separate "
            "output folders")))


class SkipFinishedFn(beam.DoFn):
    """Jobs whose output exists go to ``skipped`` (unless ``overwrite``): what makes a rerun resume.

    As in ``kc-colorize``, an output older than the photo's hint sidecar is redone.
    """

    def __init__(self, overwrite):
        self._overwrite = overwrite
        self._skipped = Metrics.counter(_METRICS, "skipped_already_done")

    def process(self, job):
        if (not self._overwrite and files.exists(job.destination)
                and not (job.hints and files.newer(job.hints, job.destination))):
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput("skipped", _event(job, "skipped"))
            return
        yield job


def _header_size(source):
    """``(width, height)`` from the header only, None if it is not an image; raises for a decompression bomb."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as image:
                return image.size
    except Image.DecompressionBombError:
        raise
    except Exception:  # noqa: BLE001 - not an image: the reader says why
        return None


def read_photo(job, max_megapixels):
    """:class:`images.Picture`, or an :class:`images.ImageReadError` whose message is the reason.

    A local file is read with ``kc-colorize``'s reader (same messages); a URL
    through Beam's file systems, named by its URL in the messages.
    """
    local = files.is_local(job.source)
    data = None
    if not local:
        try:
            data = files.read_bytes(job.source)
        except Exception as e:  # noqa: BLE001 - one unreadable file must not fail the pipeline
            return images.ImageReadError(f"{job.source}: cannot read file ({type(e).__name__}: {e})")
    try:
        size = _header_size(job.source if local else io.BytesIO(data))
    except Image.DecompressionBombError as e:
        return images.ImageReadError(f"{job.source}: oversize ({e}); max_megapixels={max_megapixels}")
    if size and size[0] * size[1] > max_megapixels * 1e6:
        return images.ImageReadError(
            f"{job.source}: oversize: {size[0]} x {size[1]} = {size[0] * size[1] / 1e6:.1f} megapixels, over "
            f"max_megapixels={max_megapixels} (raise it where workers have the memory)")
    picture = photos._read(job if local else dataclasses.replace(job, source=data))  # noqa: SLF001 - kc-colorize's
    if not local and isinstance(picture, Exception):
        picture = images.ImageReadError(str(picture).replace("<in-memory image>", job.source, 1))
    return picture


class DecodeFn(beam.DoFn):
    """Job -> ``(job, picture, pages, image_format)``, the example of ``RunInference``; failures tagged."""

    def __init__(self, output_format, max_megapixels):
        self._output_format = output_format
        self._max_megapixels = max_megapixels
        self._failed = Metrics.counter(_METRICS, "failed")

    def process(self, job):
        picture = read_photo(job, self._max_megapixels)
        if isinstance(picture, Exception):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput("failed", _event(job, "failed", reason=str(picture)))
            return
        image_format = photos._output_format(picture, job, self._output_format)  # noqa: SLF001 - kc-colorize's
        pages = [picture] + (picture.more_pages if image_format == "TIFF" else [])
        yield job, picture, pages, image_format


class WriteFn(beam.DoFn):
    """``PredictionResult`` -> the output file (``kc-colorize``'s writer) and a ``colorized`` event."""

    def __init__(self, quality):
        self._quality = quality
        self._done = Metrics.counter(_METRICS, "colorized")
        self._failed = Metrics.counter(_METRICS, "failed")

    def process(self, prediction):
        job, picture, _, image_format, guidance = prediction.example
        result = prediction.inference
        if isinstance(result, model_handler.GuidanceError):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput("failed", _event(job, "failed", reason=str(result)))
            return
        if isinstance(result, BaseException):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput("failed", _event(job, "failed", reason=(
                f"colorization failed: {type(result).__name__}: {result}")))
            return
        note = photos._pages_note(picture, image_format)  # noqa: SLF001 - kc-colorize's
        if note:
            yield beam.pvalue.TaggedOutput("notes", _event(job, "note", note=note))
        if guidance is not None and job.hints is not None:
            yield beam.pvalue.TaggedOutput("notes", _event(job, "hinted", hints=str(job.hints)))
        (rgb, alpha), *more_pages = result
        options = dict(alpha=alpha, image_format=image_format, dpi=picture.dpi, quality=self._quality,
                       more_pages=more_pages)
        try:
            if files.is_local(job.destination):
                images.write_image(job.destination, rgb, **options)
            else:
                with tempfile.TemporaryDirectory(prefix="kc-out-") as tmp:
                    local = os.path.join(tmp, files.basename(job.destination))
                    images.write_image(local, rgb, **options)
                    files.publish_file(local, job.destination)
        except Exception as e:  # noqa: BLE001 - report, go on
            self._failed.inc()
            yield beam.pvalue.TaggedOutput("failed", _event(job, "failed", reason=(
                f"cannot write {job.destination}: {e}")))
            return
        self._done.inc()
        yield _event(job, "colorized")


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


def _input_paths(pipeline, inputs):
    if inputs.kind == "file":
        return pipeline | "Photo" >> beam.Create([inputs.path])
    if inputs.kind == "pattern":
        return (pipeline
                | "Match" >> beam_fileio.MatchFiles(inputs.path)
                | "Paths" >> beam.Map(lambda metadata: metadata.path))
    root = inputs.root

    def resolve(line):
        path = line.strip()
        if not path or path.startswith("#"):
            return []
        if files.is_local(path) and not os.path.isabs(path):
            path = files.join(root, path)
        return [os.path.normpath(path) if files.is_local(path) else path]

    return (pipeline
            | "ReadList" >> beam.io.ReadFromText(inputs.path)
            | "Resolve" >> beam.FlatMap(resolve))


def build(pipeline, config, inputs, output, work_dir, ignore_case=False, reference=None):
    """Adds the archive pipeline to ``pipeline``; its event log goes to ``work_dir``, failures to the output.

    ``reference``: the ``(R,)`` reference input of ``config.reference`` (:func:`check_reference`), or None.
    """
    hints_dir = files.absolute(config.hints_dir) if config.hints_dir else ""
    jobs = (_input_paths(pipeline, inputs)
            | "ToJobs" >> beam.ParDo(ToJobFn(inputs.root, output, config.output_format, hints_dir, config.sidecars,
                                             keep_hidden=inputs.kind == "file")).with_outputs(
                                                 "ignored", "failed", main="jobs"))
    unique = (jobs.jobs
              | "ByOutput" >> beam.Map(lambda job: (job.destination.casefold() if ignore_case else job.destination,
                                                    job))
              | "GroupByOutput" >> beam.GroupByKey()  # also spreads the photos over the workers
              | "Collisions" >> beam.FlatMap(split_collisions).with_outputs("failed", main="jobs"))
    todo = (unique.jobs
            | "SkipFinished" >> beam.ParDo(SkipFinishedFn(config.overwrite)).with_outputs("skipped", main="jobs"))
    decoded = todo.jobs | "Decode" >> beam.ParDo(DecodeFn(config.output_format, config.max_megapixels)).with_outputs(
        "failed", main="items")
    predictions = decoded.items | "Colorize" >> RunInference(
        model_handler.ColorizerModelHandler(config.model, batch_size=config.batch_size, reference=reference))
    written = predictions | "Write" >> beam.ParDo(WriteFn(config.quality)).with_outputs("failed", "notes",
                                                                                         main="done")
    failed = ((jobs.failed, unique.failed, decoded.failed, written.failed)
              | "Failures" >> beam.Flatten())
    _ = (failed
         | "FailureLines" >> beam.Map(lambda e: json.dumps({"file": e["file"], "reason": e["reason"]}))
         | "WriteFailures" >> beam.io.WriteToText(files.join(output, FAILURES_NAME), shard_name_template="",
                                                  num_shards=1))
    _ = ((written.done, todo.skipped, jobs.ignored, written.notes, failed)
         | "Events" >> beam.Flatten()
         | "EventLines" >> beam.Map(json.dumps)
         | "WriteEvents" >> beam.io.WriteToText(files.join(work_dir, "events"), file_name_suffix=".jsonl"))


def _check_output(inputs, output, output_format):
    """``kc-colorize``'s refusals, before anything is written: output inside the input, or onto an input."""
    if inputs.kind == "file":
        if destination_for(output, files.basename(inputs.path), output_format) == inputs.path:
            raise ValueError(f"output {output!r} would overwrite the input {inputs.path!r}")
    elif files.is_within(output, inputs.root):
        raise ValueError(f"output {output!r} lies inside the input folder {inputs.root!r}: choose an output "
                         "folder outside the input tree")
    if files.is_local(output):
        if os.path.exists(output) and not os.path.isdir(output):
            raise ValueError(f"output {output!r} exists and is not a folder")
        fileio.check_writable_dir(output)


def check_model_and_reference(config):
    """Loads the model (contract checked) and ``config.reference``; returns the reference input or None.

    Raises:
      ValueError: the model does not fit the contract; a reference photo that is not an image, or one
        given to a model without hint inputs (as ``kc-colorize`` refuses it).
    """
    from keras_colorize.guidance import hint_file  # noqa: PLC0415
    from keras_colorize.inference.api import Colorizer  # noqa: PLC0415 - TensorFlow: after the cheap checks

    colorizer = Colorizer.from_path(model_handler.localize_model(config.model), batch_size=config.batch_size)
    if not config.reference:
        return None
    if not colorizer.guided:
        raise hint_file.NoHintInputsError(hint_file.no_hint_inputs_message(config.model, "--reference"))
    with tempfile.TemporaryDirectory(prefix="kc-reference-") as tmp:
        path = files.absolute(config.reference)
        if not files.is_local(path):
            path = files.download(path, os.path.join(tmp, files.basename(path)))
        hint_file.check_reference(path, config.reference)
        return hint_file.reference_input(path)


def _read_events(work_dir):
    events = []
    for path in sorted(files.match(files.join(work_dir, "events*.jsonl"))):
        events += [json.loads(line) for line in files.read_text(path).splitlines() if line.strip()]
    return events


def summarize(events, seconds):
    """The run's events -> ``kc-colorize``'s :class:`photos.Summary` (lists sorted by file)."""
    summary = photos.Summary(seconds=seconds)
    for event in sorted(events, key=lambda e: (e["file"], e["status"])):
        status = event["status"]
        if status == "colorized":
            summary.done.append(event["file"])
        elif status == "skipped":
            summary.skipped.append(event["file"])
        elif status == "ignored":
            summary.ignored.append(event["file"])
        elif status == "failed":
            summary.failed.append((event["file"], event["reason"]))
        elif status == "note":
            summary.notes.append((event["file"], event["note"]))
        elif status == "hinted":
            summary.hinted.append((event["file"], event["hints"]))
    return summary


def run(config, pipeline_options):
    """Checks, runs the pipeline, reports; returns ``kc-colorize``'s :class:`photos.Summary`.

    Checked before the pipeline starts (``ValueError``, nothing written):
    the config, the inputs exist, the output is outside the input and
    writable (local outputs), and the model loads and fits the colorizer
    contract (loaded once here, so a wrong ``--model`` fails in seconds, not
    on every worker).

    Raises:
      ValueError: bad configuration.
    """
    config.validate()
    inputs = resolve_inputs(config)
    output = files.absolute(config.output).rstrip("/")
    _check_output(inputs, output, config.output_format)
    reference = check_model_and_reference(config)
    ignore_case = False
    if files.is_local(output):
        ignore_case = fileio.is_case_insensitive(output)
        fileio.remove_partials(output)
    _remove_work_files(output)  # a killed run's event log
    work_dir = files.join(output, _WORK_DIR, f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
    start = time.time()
    with beam.Pipeline(options=pipeline_options) as pipeline:
        build(pipeline, config, inputs, output, work_dir, ignore_case=ignore_case, reference=reference)
    summary = summarize(_read_events(work_dir), time.time() - start)
    with tempfile.TemporaryDirectory() as tmp:
        photos.write_report(tmp, config, summary)
        files.publish_file(os.path.join(tmp, photos.REPORT_NAME), files.join(output, photos.REPORT_NAME))
    _remove_work_files(output)
    return summary


def _remove_work_files(output):
    """Deletes the event logs under the output, and (local) Beam's temporary folders of a killed run."""
    if files.is_local(output):
        for folder in [os.path.join(output, _WORK_DIR), *glob.glob(os.path.join(output, "beam-temp-colorize_*"))]:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        files.delete(files.match(files.join(output, _WORK_DIR, "**")))
