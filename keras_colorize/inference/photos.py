"""Colorize a photo or a folder tree of photos: the library behind ``kc-colorize``.

Safe for archives: the output folder mirrors the input tree; nothing is ever
written inside the input tree and no input is overwritten; every output is
written under a temporary name and renamed, so a killed run leaves no
truncated image and the next run skips what is finished; a file that fails
is reported with its reason and the run goes on.

Refused before any image is read (``ValueError``, exit 2 in the CLI): a
model that is missing, not a Keras model, or does not fit the colorizer
contract (:mod:`keras_colorize.models.model_contract`); an output folder inside the
input tree or not writable; two inputs that would be written to the same
output (``pic.jpg`` and ``pic.png`` with ``output_format="png"``; on an output
file system that ignores case, also names that differ only in case).

Multi-page TIFFs are colorized page by page into a multi-page TIFF; where the
output cannot hold every page or frame (a TIFF written as PNG, an animated
WebP), the first is kept and the summary notes how many were dropped.

Example::

    from keras_colorize.inference import photos
    summary = photos.run(photos.ColorizeConfig(
        model="runs/p1/best.keras", input="scans/", output="colorized/"))
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

from keras_colorize import fileio
from keras_colorize.inference import batching
from keras_colorize.inference import images
from keras_colorize import pretrained

REPORT_NAME = "colorize_report.json"


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """What to colorize and how.

    Attributes:
      model: a bundled model name (``"scenes"``, :mod:`keras_colorize.pretrained`),
        a ``.keras`` file or a SavedModel folder.
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
        if not self.model or not pathlib.Path(pretrained.resolve(self.model)).exists():
            raise ValueError(f"model {self.model!r} does not exist (bundled model names: "
                             f"{', '.join(pretrained.NAMES)})")


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
    notes: list = dataclasses.field(default_factory=list)  # (relative path, note): e.g. dropped frames
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
        lines += [f"  NOTE {path}: {note}" for path, note in self.notes]
        lines += [f"  ignored (not an image extension) {path}" for path in self.ignored[:20]]
        if len(self.ignored) > 20:
            lines.append(f"  ... and {len(self.ignored) - 20} more ignored files")
        return "\n".join(lines)


def _is_within(path, folder):
    return path == folder or folder in path.parents


def plan(input_path, output_dir, *, output_format="same", overwrite=False, ignore_case=False):
    """Lists the work: which files to colorize to where; validates the paths. Writes nothing.

    Args:
      ignore_case: treat output names that differ only in case as the same
        file (true for an output folder on a case-insensitive file system;
        :func:`run` probes it).

    Raises:
      ValueError: missing input, an output folder inside the input folder, an
        output that would overwrite an input, or two inputs with the same
        output.
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
    claimed = {}  # output name (case-folded where the file system ignores case) -> relative input
    collisions = []
    for path in files:
        relative = path.relative_to(root)
        if not images.is_image_path(path):
            result.ignored.append(str(relative))
            continue
        destination = images.output_path_for(output / relative, output_format)
        if destination.resolve() == path or (source.is_dir() and _is_within(destination.resolve(), source)):
            raise ValueError(f"output {str(output_dir)!r} would overwrite the input {str(path)!r}")
        key = str(destination).casefold() if ignore_case else str(destination)
        if key in claimed:
            collisions.append((claimed[key], str(relative), destination))
            continue
        claimed[key] = str(relative)
        if destination.exists() and not overwrite:
            result.finished.append(str(relative))
        else:
            result.jobs.append(Job(path, destination, str(relative)))
    if collisions:
        shown = "; ".join(f"{a!r} and {b!r} -> {str(d)!r}" for a, b, d in collisions[:5])
        more = f" (and {len(collisions) - 5} more)" if len(collisions) > 5 else ""
        case = ", case-insensitive output folder" if ignore_case else ""
        raise ValueError(f"inputs would be written to the same output file{'s' if len(collisions) > 1 else ''}"
                         f" (output_format={output_format!r}{case})"
                         f": {shown}{more}; rename one of each pair or colorize them into separate output folders")
    return result


def remove_stale_partials(output_dir):
    """Deletes temporary files a killed run left behind (:func:`keras_colorize.fileio.is_partial`)."""
    fileio.remove_partials(output_dir)


def check_output_writable(output_dir, jobs):
    """Proves the output folder (created if needed) and each existing destination folder writable.

    Raises:
      ValueError: naming the folder that cannot be written.
    """
    fileio.check_writable_dir(output_dir)
    for folder in sorted({job.destination.parent for job in jobs}):
        if folder.is_dir():
            fileio.check_writable_dir(folder)
        elif folder.exists():
            raise ValueError(f"output {str(folder)!r} exists and is not a folder")


def _output_format(picture, job, output_format):
    image_format = picture.format if output_format == "same" else output_format.upper()
    if image_format not in images.FORMAT_EXTENSIONS:
        image_format = images.format_for_path(job.destination) or "PNG"
    return image_format


def _pages_note(picture, image_format):
    """What of a multi-page or animated input the output drops, or None."""
    extra = picture.frames - 1
    if extra < 1 or picture.format == "MPO":  # MPO: a camera JPEG's embedded preview, not a page
        return None
    if picture.format == "TIFF":
        if image_format == "TIFF":
            return None
        return (f"multi-page TIFF: kept page 1 of {picture.frames}, dropped {extra} ({image_format} holds one "
                "page; use --output_format=same or tiff to keep every page)")
    return f"animated {picture.format}: kept frame 1 of {picture.frames}, dropped {extra}"


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

        def decoded():
            """``(job, picture, pages, image_format)`` of each job that decoded, in order; failures counted."""
            fill()
            while reads:
                job, future = reads.popleft()
                fill()
                picture = future.result()
                if isinstance(picture, Exception):
                    summary.failed.append((job.relative, str(picture)))
                    bar.update(1)
                    continue
                image_format = _output_format(picture, job, output_format)
                pages = [picture] + (picture.more_pages if image_format == "TIFF" else [])
                yield job, picture, pages, image_format

        for batch in batching.batched(decoded(), batch_size):
            for (job, picture, _, image_format), result in _colorize_batch(colorizer, batch):
                if isinstance(result, Exception):
                    summary.failed.append((job.relative, f"colorization failed: {type(result).__name__}: {result}"))
                    bar.update(1)
                    continue
                (rgb, alpha), *more_pages = result
                note = _pages_note(picture, image_format)
                if note:
                    summary.notes.append((job.relative, note))
                writes.append((job, pool.submit(images.write_image, job.destination, rgb, alpha=alpha,
                                                image_format=image_format, dpi=picture.dpi, quality=quality,
                                                more_pages=more_pages)))
            finish_writes(block=len(writes) > batch_size)
        finish_writes(block=True)
    bar.close()
    summary.seconds = time.time() - start
    return summary


def _colorize_batch(colorizer, batch):
    """Yields ``(item, [(rgb, alpha) per page])`` or ``(item, exception)``; isolates a failing image.

    ``batch`` items are ``(job, picture, pages, image_format)``; all pages of
    all items go through the network together.
    """
    if not batch:
        return
    try:
        outputs = colorizer.colorize_pictures([page for _, _, pages, _ in batch for page in pages])
        start = 0
        for item in batch:
            count = len(item[2])
            yield item, outputs[start:start + count]
            start += count
        return
    except Exception:  # noqa: BLE001 - retry one by one to find the culprit
        if len(batch) == 1:
            yield batch[0], sys.exc_info()[1]
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
        "notes": [{"file": path, "note": note} for path, note in summary.notes],
        "seconds": round(summary.seconds, 3),
    }
    fileio.atomic_write_text(output / REPORT_NAME, json.dumps(report, indent=2))


def run(config, *, progress=True, colorizer=None):
    """Validates, plans, colorizes, reports. Returns the :class:`Summary`.

    Order: the configuration, the paths and name collisions (nothing written
    yet), the output folder's writability (it is created here), then the
    model is loaded and checked against the contract; only then is any image
    read.

    Raises:
      ValueError: bad configuration (before any image is read).
    """
    config.validate()
    output = pathlib.Path(config.output).expanduser()
    options = dict(output_format=config.output_format, overwrite=config.overwrite)
    work = plan(config.input, output, **options)
    check_output_writable(output, work.jobs)
    if fileio.is_case_insensitive(output):
        work = plan(config.input, output, ignore_case=True, **options)
    remove_stale_partials(output)
    summary = Summary(skipped=list(work.finished), ignored=list(work.ignored))
    if work.jobs:
        if colorizer is None:
            from keras_colorize.inference.api import Colorizer  # noqa: PLC0415 - TF import only when needed

            colorizer = Colorizer.from_path(config.model, batch_size=config.batch_size)
        done = colorize_jobs(colorizer, work.jobs, output_format=config.output_format, quality=config.quality,
                             progress=progress)
        summary.done, summary.failed, summary.notes, summary.seconds = (done.done, done.failed, done.notes,
                                                                       done.seconds)
    if pathlib.Path(config.input).expanduser().is_dir():
        write_report(output, config, summary)
    return summary
