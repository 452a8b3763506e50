"""Colorize a photo or a folder tree of photos: the library behind ``kc-colorize``.

Safe for archives: the output folder mirrors the input tree; nothing is ever
written inside the input tree and no input is overwritten; every output is
written under a temporary name and renamed, so a killed run leaves no
truncated image and the next run skips what is finished; a file that fails
is reported with its reason and the run goes on.

Example::

    from keras_colorize import colorize_lib
    summary = colorize_lib.run(colorize_lib.ColorizeConfig(
        model="model.keras", input="scans/", output="colorized/"))
    summary.failed  # [(path, reason), ...]
"""

import collections
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import sys
import time

from tqdm import tqdm

from keras_colorize import images

REPORT_NAME = "colorize_report.json"


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """What to colorize and how.

    Attributes:
      model: ``.keras`` file or SavedModel folder.
      input: an image file or a folder (searched recursively).
      output: output folder (created); must not lie inside the input folder.
      batch_size: images per network call.
      output_format: "same" (follow each input) or jpeg/png/tiff/webp/bmp.
      overwrite: redo outputs that already exist (default: skip them, which
        is what makes an interrupted run resumable).
      quality: JPEG / WebP quality of the outputs.
    """

    model: str
    input: str
    output: str
    batch_size: int = 4
    output_format: str = "same"
    overwrite: bool = False
    quality: int = 95

    def validate(self):
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if self.output_format not in images.OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {images.OUTPUT_FORMATS}, got {self.output_format!r}")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"quality must be in [1, 100], got {self.quality!r}")
        if not self.model or not pathlib.Path(self.model).exists():
            raise ValueError(f"model {self.model!r} does not exist")


@dataclasses.dataclass
class Job:
    source: pathlib.Path
    destination: pathlib.Path
    relative: str


@dataclasses.dataclass
class Plan:
    jobs: list  # Job, still to do
    finished: list  # relative paths whose output already exists
    ignored: list  # relative paths without an image extension


@dataclasses.dataclass
class Summary:
    """Outcome of a run; ``ok`` is False when any file failed."""

    done: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (relative path, reason)
    ignored: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self):
        return not self.failed

    def text(self):
        rate = len(self.done) / self.seconds if self.seconds > 0 else 0.0
        lines = [f"colorized {len(self.done)}, skipped {len(self.skipped)} already done, "
                 f"failed {len(self.failed)}, ignored {len(self.ignored)} non-image files "
                 f"in {self.seconds:.1f} s ({rate:.2f} images/s)"]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed]
        lines += [f"  ignored (not an image extension) {path}" for path in self.ignored[:20]]
        if len(self.ignored) > 20:
            lines.append(f"  ... and {len(self.ignored) - 20} more ignored files")
        return "\n".join(lines)


def _is_within(path, folder):
    return path == folder or folder in path.parents


def plan(input_path, output_dir, *, output_format="same", overwrite=False):
    """Lists the work: which files to colorize to where; validates the paths.

    Raises:
      ValueError: missing input, an output folder inside the input folder, or
        an output that would overwrite an input.
    """
    source = pathlib.Path(input_path).expanduser()
    if not source.exists():
        raise ValueError(f"input {str(input_path)!r} does not exist")
    source = source.resolve()
    output = pathlib.Path(output_dir).expanduser().resolve()
    if source.is_file():
        root, files = source.parent, [source]
    else:
        root = source
        if _is_within(output, source):
            raise ValueError(f"output {str(output_dir)!r} lies inside the input folder {str(input_path)!r}: "
                             "choose an output folder outside the input tree")
        files = []
        for folder, subdirs, names in os.walk(source):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            files += [pathlib.Path(folder) / n for n in sorted(names) if not n.startswith(".")]
    if output.exists() and not output.is_dir():
        raise ValueError(f"output {str(output_dir)!r} exists and is not a folder")
    result = Plan([], [], [])
    for path in files:
        relative = path.relative_to(root)
        if not images.is_image_path(path):
            result.ignored.append(str(relative))
            continue
        destination = images.output_path_for(output / relative, output_format)
        if destination.resolve() == path or (source.is_dir() and _is_within(destination.resolve(), source)):
            raise ValueError(f"output {str(output_dir)!r} would overwrite the input {str(path)!r}")
        if destination.exists() and not overwrite:
            result.finished.append(str(relative))
        else:
            result.jobs.append(Job(path, destination, str(relative)))
    return result


def remove_stale_partials(output_dir):
    """Deletes temporary files a killed run left behind (``.name.XXXX.partial``)."""
    output = pathlib.Path(output_dir)
    if output.is_dir():
        for stale in output.rglob(".*.partial"):
            stale.unlink(missing_ok=True)


def _read(job):
    try:
        return images.read_image(job.source)
    except images.ImageReadError as e:
        return e
    except MemoryError:
        return images.ImageReadError(f"{job.source}: out of memory while decoding")
    except Exception as e:  # noqa: BLE001 - one odd file must not end the run
        return images.ImageReadError(f"{job.source}: cannot decode ({type(e).__name__}: {e})")


def colorize_jobs(colorizer, jobs, *, output_format="same", quality=95, progress=True):
    """Colorizes ``jobs`` in batches; returns a :class:`Summary` (no exception for bad files).

    Decoding runs one batch ahead and encoding in the background, on threads
    (Pillow and TF release the GIL).
    """
    summary = Summary()
    start = time.time()
    batch_size = colorizer.batch_size
    bar = tqdm(total=len(jobs), unit="img", disable=not progress, dynamic_ncols=True, desc="colorize")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        reads = collections.deque()
        writes = []
        pending = iter(jobs)

        def fill():
            while len(reads) < 2 * batch_size:
                job = next(pending, None)
                if job is None:
                    return
                reads.append((job, pool.submit(_read, job)))

        def finish_writes(block):
            still = []
            for job, future in writes:
                if not block and not future.done():
                    still.append((job, future))
                    continue
                try:
                    future.result()
                    summary.done.append(job.relative)
                except Exception as e:  # noqa: BLE001 - report, go on
                    summary.failed.append((job.relative, f"cannot write {job.destination}: {e}"))
                bar.update(1)
            writes[:] = still

        fill()
        while reads:
            batch = []
            while reads and len(batch) < batch_size:
                job, future = reads.popleft()
                picture = future.result()
                if isinstance(picture, Exception):
                    summary.failed.append((job.relative, str(picture)))
                    bar.update(1)
                else:
                    batch.append((job, picture))
            fill()
            for job, result in _colorize_batch(colorizer, batch):
                if isinstance(result, Exception):
                    summary.failed.append((job.relative, f"colorization failed: {type(result).__name__}: {result}"))
                    bar.update(1)
                    continue
                (rgb, alpha), picture = result
                image_format = picture.format if output_format == "same" else output_format.upper()
                if image_format not in images.FORMAT_EXTENSIONS:
                    image_format = images.format_for_path(job.destination) or "PNG"
                writes.append((job, pool.submit(images.write_image, job.destination, rgb, alpha=alpha,
                                                image_format=image_format, dpi=picture.dpi, quality=quality)))
            finish_writes(block=len(writes) > batch_size)
        finish_writes(block=True)
    bar.close()
    summary.seconds = time.time() - start
    return summary


def _colorize_batch(colorizer, batch):
    """Yields ``(job, ((rgb, alpha), picture))`` or ``(job, exception)``; isolates a failing image."""
    if not batch:
        return
    try:
        outputs = colorizer.colorize_pictures([picture for _, picture in batch])
        for (job, picture), output in zip(batch, outputs):
            yield job, (output, picture)
        return
    except Exception:  # noqa: BLE001 - retry one by one to find the culprit
        if len(batch) == 1:
            job, _ = batch[0]
            yield job, sys.exc_info()[1]
            return
    for item in batch:
        yield from _colorize_batch(colorizer, [item])


def write_report(output_dir, config, summary):
    """Writes ``colorize_report.json`` (config, counts, failures) atomically into the output folder."""
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "config": dataclasses.asdict(config),
        "colorized": summary.done,
        "skipped_already_done": summary.skipped,
        "failed": [{"file": path, "reason": reason} for path, reason in summary.failed],
        "ignored_non_images": summary.ignored,
        "seconds": round(summary.seconds, 3),
    }
    tmp = output / f".{REPORT_NAME}.partial"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, output / REPORT_NAME)


def run(config, *, progress=True, colorizer=None):
    """Validates, plans, colorizes, reports. Returns the :class:`Summary`.

    Raises:
      ValueError: bad configuration (before any work starts).
    """
    config.validate()
    work = plan(config.input, config.output, output_format=config.output_format, overwrite=config.overwrite)
    remove_stale_partials(config.output)
    summary = Summary(skipped=list(work.finished), ignored=list(work.ignored))
    if work.jobs:
        if colorizer is None:
            from keras_colorize.inference import Colorizer  # noqa: PLC0415 - TF import only when needed

            colorizer = Colorizer.from_path(config.model, batch_size=config.batch_size)
        done = colorize_jobs(colorizer, work.jobs, output_format=config.output_format, quality=config.quality,
                             progress=progress)
        summary.done, summary.failed, summary.seconds = done.done, done.failed, done.seconds
    if pathlib.Path(config.input).is_dir():
        write_report(config.output, config, summary)
    return summary
