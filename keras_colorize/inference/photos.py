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

Hints (a guided model, :mod:`keras_colorize.guidance.hint_file`): ``hints`` is the
hint file of a single input photo; in a folder, each photo's sidecar
``<photo>.hints.json`` (its full file name plus ``.hints.json``) beside it, or
under ``hints_dir`` at the same relative path (then only there), is used where
present; ``reference`` gives every photo whose hints name no reference photo the
same palette. Sidecars are never inputs. A bad sidecar (not JSON, a wrong field,
a point outside its photo, a reference that is not an image) fails that photo,
listed with its reason; a bad ``hints`` or ``reference``, hints for a folder, or
hints for a model without hint inputs are refused before anything is written.
A finished output is redone when its hint file is newer than it.

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
from keras_colorize.inference import model_spec

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
      hints: a hint file for the one input photo (needs a guided model).
      hints_dir: a folder holding the sidecars (``<relative path>.hints.json``)
        instead of beside the photos.
      reference: a reference photo for every photo whose hints name none.
      sidecars: use the photos' hint sidecars where present.
    """

    model: str
    input: str
    output: str
    batch_size: int = 4
    output_format: str = "same"
    overwrite: bool = False
    quality: int = 95
    hints: str | None = None
    hints_dir: str | None = None
    reference: str | None = None
    sidecars: bool = True

    def validate(self):
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if self.output_format not in images.OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {images.OUTPUT_FORMATS}, got {self.output_format!r}")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"quality must be in [1, 100], got {self.quality!r}")
        model_spec.locate(self.model)
        if self.hints and not pathlib.Path(self.hints).expanduser().is_file():
            raise ValueError(f"hints file {self.hints!r} does not exist or is not a file")
        if self.hints_dir and not pathlib.Path(self.hints_dir).expanduser().is_dir():
            raise ValueError(f"hints_dir {self.hints_dir!r} does not exist or is not a folder")
        if self.reference and not pathlib.Path(self.reference).expanduser().is_file():
            raise ValueError(f"reference {self.reference!r} does not exist or is not a file")


@dataclasses.dataclass
class Job:
    """One photo to colorize; ``hints`` is its hint file (a path or a ``Hints``), or None."""

    source: pathlib.Path
    destination: pathlib.Path
    relative: str
    hints: object = None


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
    hinted: list = dataclasses.field(default_factory=list)  # (relative path, hint file) colorized with hints
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
        if self.hinted:
            shown = ", ".join(path for path, _ in self.hinted[:5])
            lines.append(f"  with hints: {len(self.hinted)} ({shown}{', ...' if len(self.hinted) > 5 else ''})")
        lines += [f"  ignored (not an image extension) {path}" for path in self.ignored[:20]]
        if len(self.ignored) > 20:
            lines.append(f"  ... and {len(self.ignored) - 20} more ignored files")
        return "\n".join(lines)


def _is_within(path, folder):
    return path == folder or folder in path.parents


def _newer(path, than):
    try:
        return path.stat().st_mtime_ns > than.stat().st_mtime_ns
    except OSError:
        return True


def plan(input_path, output_dir, *, output_format="same", overwrite=False, ignore_case=False, hints=None,
         hints_dir=None, sidecars=True):
    """Lists the work: which files to colorize to where; validates the paths. Writes nothing.

    Args:
      ignore_case: treat output names that differ only in case as the same
        file (true for an output folder on a case-insensitive file system;
        :func:`run` probes it).
      hints: the hint file of a single input photo.
      hints_dir: where the sidecars are (default: beside the photos).
      sidecars: look for ``<photo>.hints.json`` sidecars (never inputs either way).

    A photo whose output exists is finished unless ``overwrite`` or its hint
    file is newer than the output.

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
    from keras_colorize.guidance import hint_file  # noqa: PLC0415 - its model import only when planning

    result = Plan([], [], [])
    claimed = {}  # output name (case-folded where the file system ignores case) -> relative input
    collisions = []
    for path in files:
        relative = path.relative_to(root)
        if hint_file.is_sidecar(path):
            continue
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
        job_hints = pathlib.Path(hints).expanduser() if hints else None
        if job_hints is None and sidecars:
            sidecar = hint_file.sidecar_path(path, root, hints_dir and pathlib.Path(hints_dir).expanduser())
            job_hints = sidecar if sidecar.is_file() else None
        if destination.exists() and not overwrite and not (job_hints and _newer(job_hints, destination)):
            result.finished.append(str(relative))
        else:
            result.jobs.append(Job(path, destination, str(relative), job_hints))
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


def _guidance(colorizer, hints, pages, reference):
    """One ``Guidance`` per page (None without hints or reference); ValueError for bad hints."""
    if hints is None and reference is None:
        return None
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    hints = None if hints is None else hint_file.Hints.load(hints)
    return [colorizer.guidance_inputs(hints, page.width, page.height, reference) for page in pages]


def colorize_jobs(colorizer, jobs, *, output_format="same", quality=95, progress=True, hints=None, reference=None):
    """Colorizes ``jobs`` in batches; returns a :class:`Summary` (no exception for bad files).

    Decoding runs one batch ahead and encoding in the background, on threads
    (Pillow and TF release the GIL).

    Args:
      hints: None (each job's own ``hints``), or one hint file (path, ``Hints`` or None) per job.
      reference: a reference photo (path, or an ``(R,)`` reference input) for every photo whose
        hints name none.

    A job whose hints do not load or do not fit its photo fails with the reason.
    """
    if hints is not None:
        if len(hints) != len(jobs):
            raise ValueError(f"hints must have one entry per job ({len(jobs)}), got {len(hints)}")
        jobs = [dataclasses.replace(job, hints=h) for job, h in zip(jobs, hints)]
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
                try:
                    guidance = _guidance(colorizer, job.hints, pages, reference)
                except ValueError as e:
                    summary.failed.append((job.relative, " ".join(str(e).split())))
                    bar.update(1)
                    continue
                yield job, picture, pages, image_format, guidance

        for batch in batching.batched(decoded(), batch_size):
            for (job, picture, _, image_format, guidance), result in _colorize_batch(colorizer, batch):
                if isinstance(result, Exception):
                    summary.failed.append((job.relative, f"colorization failed: {type(result).__name__}: {result}"))
                    bar.update(1)
                    continue
                (rgb, alpha), *more_pages = result
                note = _pages_note(picture, image_format)
                if note:
                    summary.notes.append((job.relative, note))
                if guidance is not None and job.hints is not None:
                    summary.hinted.append((job.relative, str(getattr(job.hints, "source", None) or job.hints)))
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

    ``batch`` items are ``(job, picture, pages, image_format, guidance)``; all
    pages of all items go through the network together.
    """
    if not batch:
        return
    try:
        all_pages = [page for _, _, pages, _, _ in batch for page in pages]
        guidance = [g for _, _, pages, _, item in batch for g in (item or [None] * len(pages))]
        if any(g is not None for g in guidance):
            outputs = colorizer.colorize_pictures(all_pages, hints=guidance)
        else:
            outputs = colorizer.colorize_pictures(all_pages)
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
        "hints": [{"file": path, "hints": hints} for path, hints in summary.hinted],
        "seconds": round(summary.seconds, 3),
    }
    fileio.atomic_write_text(output / REPORT_NAME, json.dumps(report, indent=2))


def _upright_size(path):
    """(width, height) of a photo as :func:`images.read_image` turns it (EXIF orientation), from its header."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_guidance(config):
    """Loads ``config.hints`` (points checked against the photo) and ``config.reference``; writes nothing.

    Returns:
      the ``(R,)`` reference input of ``config.reference``, or None.

    Raises:
      ValueError: hints for a folder, a bad hint file (field and value named), a point outside
        the photo, a reference that is not an image.
    """
    if not (config.hints or config.reference):
        return None
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    if config.hints:
        source = pathlib.Path(config.input).expanduser()
        if not source.is_file():
            raise ValueError(f"hints file {config.hints!r} is for one photo and input {config.input!r} is not one: "
                             f"for a folder, put each photo's <photo>{hint_file.SIDECAR_SUFFIX} beside it (or under "
                             "hints_dir)")
        hints = hint_file.Hints.load(pathlib.Path(config.hints).expanduser())
        try:
            width, height = _upright_size(source)
        except Exception:  # noqa: BLE001 - an unreadable photo fails as a photo, later, with its reason
            pass
        else:
            hints.check_photo(width, height)
        if hints.reference is not None:
            hint_file.reference_input(hints.reference)
    if not config.reference:
        return None
    reference = pathlib.Path(config.reference).expanduser()
    hint_file.check_reference(reference, config.reference)
    return hint_file.reference_input(reference)


def check_guided(colorizer, config, jobs):
    """Raises ``NoHintInputsError`` when hints (flags or sidecars of ``jobs``) meet a model without hint inputs."""
    if colorizer.guided:
        return
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    given = [f"--{name}" for name in ("hints", "reference") if getattr(config, name)]
    sidecars = [job.relative for job in jobs if job.hints is not None] if not config.hints else []
    if sidecars:
        given.append(f"the hint sidecars of {len(sidecars)} photo{'s' if len(sidecars) > 1 else ''} (e.g. "
                     f"{sidecars[0] + hint_file.SIDECAR_SUFFIX!r}; pass --nosidecars to colorize without them)")
    if given:
        raise hint_file.NoHintInputsError(hint_file.no_hint_inputs_message(config.model, " and ".join(given)))


def run(config, *, progress=True, colorizer=None):
    """Validates, plans, colorizes, reports. Returns the :class:`Summary`.

    Order: the configuration, the paths and name collisions, the hint file
    and reference photo (nothing written yet); with hints (flags or sidecars),
    the model is loaded here and must take hints; the output folder's
    writability (it is created here), then the model is loaded and checked
    against the contract; only then is any image read.

    Raises:
      ValueError: bad configuration (before any image is read and before
        anything is written).
    """
    config.validate()
    output = pathlib.Path(config.output).expanduser()
    options = dict(output_format=config.output_format, overwrite=config.overwrite, hints=config.hints,
                   hints_dir=config.hints_dir, sidecars=config.sidecars)
    work = plan(config.input, output, **options)
    reference = check_guidance(config)

    def load():
        from keras_colorize.inference.api import Colorizer  # noqa: PLC0415 - TF import only when needed

        return Colorizer.from_path(config.model, batch_size=config.batch_size)

    if config.hints or config.reference or any(job.hints is not None for job in work.jobs):
        colorizer = colorizer or load()
        check_guided(colorizer, config, work.jobs)
    check_output_writable(output, work.jobs)
    if fileio.is_case_insensitive(output):
        work = plan(config.input, output, ignore_case=True, **options)
    remove_stale_partials(output)
    summary = Summary(skipped=list(work.finished), ignored=list(work.ignored))
    if work.jobs:
        colorizer = colorizer or load()
        done = colorize_jobs(colorizer, work.jobs, output_format=config.output_format, quality=config.quality,
                             progress=progress, reference=reference)
        summary.done, summary.failed, summary.notes, summary.hinted, summary.seconds = (
            done.done, done.failed, done.notes, done.hinted, done.seconds)
    if pathlib.Path(config.input).expanduser().is_dir():
        write_report(output, config, summary)
    return summary
