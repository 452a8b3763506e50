"""The studio's work on a folder: each photo's edit (hints, reference, saturation), its state, saving.

An edit is what the page sends: colour points in the photo's own pixels
(``{"x", "y", "color": "#rrggbb", "size"}``), an uploaded reference photo (by
its id in the reference store) and a saturation factor. Edits not yet saved
are kept in memory (state "edited"); saving writes, under the output folder,

1. the hint sidecar ``<photo>.hints.json`` (:mod:`keras_colorize.guidance.hint_file`'s
   format, the one ``kc-colorize`` reads), then
2. the full-resolution colorization, through the very code ``kc-colorize``
   runs (:func:`keras_colorize.inference.photos.colorize_jobs`), so the file
   has the bytes ``kc-colorize --input=<photo> --hints=<sidecar>`` writes.

Both writes are atomic and a photo's saves are serialized, so two tabs saving
the same photo leave the pair of one of them (the last), never a mix or a
truncated file. Reopening the studio reads the sidecars back.

States: "saved" (a sidecar and the colorization exist in the output folder),
"edited" (an edit differs from what is saved), "colorized" (a colorization
exists without hints: written by "Colorize the rest" or ``kc-colorize``),
"not done".
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import pathlib
import re
import threading
import warnings

from PIL import Image

from keras_colorize import fileio
from keras_colorize.guidance import hint_file
from keras_colorize.guidance import spec
from keras_colorize.inference import images
from keras_colorize.inference import photos as photos_lib
from keras_colorize.studio import folder as folder_lib
from keras_colorize.studio import render as render_lib

log = logging.getLogger(__name__)

#: Largest reference photo upload, in bytes.
MAX_REFERENCE_BYTES = 40 * 1024 * 1024
#: Largest reference photo, in pixels: a small file announcing more is a decompression bomb.
MAX_REFERENCE_PIXELS = 80_000_000
MAX_POINTS = 256
MIN_PATCH, MAX_PATCH, DEFAULT_PATCH = spec.MIN_PATCH, spec.MAX_PATCH, spec.DEFAULT_PATCH
#: The saturation control's range (the hint file's ``saturation``: a factor on a*b* after the model).
MIN_SATURATION, MAX_SATURATION = hint_file.MIN_SATURATION, hint_file.MAX_SATURATION
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_REFERENCE_ID = re.compile(r"^[0-9a-f]{20}\.(jpg|png|tif|webp|bmp)$")
_REFERENCE_EXT = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "WEBP": "webp", "BMP": "bmp"}

STATES = ("not done", "colorized", "edited", "saved")


class EditError(ValueError):
    """An edit the page sent that cannot be applied (the message says which field and why)."""


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float
    color: str
    size: int = DEFAULT_PATCH


@dataclasses.dataclass(frozen=True)
class Edit:
    """One photo's edit: points in the photo's pixels, a reference id (or None), a saturation factor."""

    points: tuple[Point, ...] = ()
    reference: str | None = None
    saturation: float = 1.0

    @property
    def has_hints(self) -> bool:
        return bool(self.points) or self.reference is not None

    def to_json(self) -> dict:
        return {"points": [dataclasses.asdict(p) for p in self.points], "reference": self.reference,
                "saturation": self.saturation}


def _number(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EditError(f"{name} must be a number, got {value!r}"[:200])
    return float(value)


def parse_edit(payload, width: int, height: int) -> Edit:
    """An `Edit` from the page's JSON, checked against the photo's size; `EditError` naming the bad field."""
    if not isinstance(payload, dict):
        raise EditError("edit must be a JSON object")
    unknown = set(payload) - {"points", "reference", "saturation"}
    if unknown:
        raise EditError(f"unknown field(s) in edit: {', '.join(sorted(unknown))}"[:200])
    raw_points = payload.get("points", [])
    if not isinstance(raw_points, list) or len(raw_points) > MAX_POINTS:
        raise EditError(f"points must be a list of at most {MAX_POINTS} points")
    points = []
    for i, raw in enumerate(raw_points):
        if not isinstance(raw, dict) or set(raw) - {"x", "y", "color", "size"} or not {"x", "y", "color"} <= set(raw):
            raise EditError(f"points[{i}] must be an object with x, y, color and optionally size")
        x, y = _number(raw["x"], f"points[{i}].x"), _number(raw["y"], f"points[{i}].y")
        if not (0 <= x < width and 0 <= y < height):
            raise EditError(f"points[{i}] ({x:g}, {y:g}) lies outside the photo ({width} x {height} pixels)")
        color = raw["color"]
        if not isinstance(color, str) or not _COLOR.match(color):
            raise EditError(f"points[{i}].color must be '#rrggbb', got {str(color)[:40]!r}")
        size = raw.get("size", DEFAULT_PATCH)
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_PATCH <= size <= MAX_PATCH:
            raise EditError(f"points[{i}].size must be an integer in [{MIN_PATCH}, {MAX_PATCH}], got {size!r}"[:200])
        points.append(Point(round(x, 2), round(y, 2), color.lower(), size))
    reference = payload.get("reference")
    if reference is not None and (not isinstance(reference, str) or not _REFERENCE_ID.match(reference)):
        raise EditError("reference must be the id of an uploaded reference photo, or null")
    saturation = _number(payload.get("saturation", 1.0), "saturation")
    if not MIN_SATURATION <= saturation <= MAX_SATURATION:
        raise EditError(f"saturation must be in [{MIN_SATURATION:g}, {MAX_SATURATION:g}], got {saturation:g}")
    return Edit(tuple(points), reference, round(saturation, 3))


class ReferenceStore:
    """Uploaded reference photos, kept under ``<output>/.kc-studio/references/<sha256 prefix>.<ext>``.

    Stored as uploaded (content-addressed: the same photo twice is one file),
    after the checks the CLI applies to a photo: a size limit, a pixel limit
    read from the header before decoding (decompression bombs), a full decode.
    """

    def __init__(self, folder: folder_lib.PhotoFolder):
        self.folder = folder

    def path(self, reference_id: str) -> pathlib.Path:
        if not isinstance(reference_id, str) or not _REFERENCE_ID.match(reference_id):
            raise EditError("reference must be the id of an uploaded reference photo")
        return self.folder.studio_path("references", reference_id)

    def add(self, data: bytes) -> tuple[str, int, int]:
        """Checks and stores an uploaded photo; returns ``(id, width, height)``; `EditError` for a bad upload."""
        width, height, image_format = check_upload(data)
        reference_id = f"{hashlib.sha256(data).hexdigest()[:20]}.{_REFERENCE_EXT[image_format]}"
        path = self.path(reference_id)
        if not path.is_file():
            fileio.atomic_write_bytes(path, data)
        return reference_id, width, height

    def import_file(self, path: pathlib.Path) -> str:
        """Copies a reference photo named by a sidecar into the store; returns its id."""
        try:
            data = pathlib.Path(path).read_bytes()
        except OSError as e:
            raise EditError(f"reference photo {str(path)!r} cannot be read ({e.strerror or e})") from e
        return self.add(data)[0]

    def exists(self, reference_id: str) -> bool:
        return self.path(reference_id).is_file()

    def thumbnail(self, reference_id: str) -> bytes:
        return render_lib.make_thumbnail(self.path(reference_id), 160)


def check_upload(data: bytes) -> tuple[int, int, str]:
    """``(width, height, format)`` of an uploaded photo, or `EditError`: too large, a bomb, not an image."""
    if len(data) > MAX_REFERENCE_BYTES:
        raise EditError(f"the reference photo is larger than {MAX_REFERENCE_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height, image_format = image.width, image.height, image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise EditError("the reference photo announces too many pixels (a decompression bomb?): refused") from None
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is not a photo
        raise EditError("the reference is not a photo this studio reads (JPEG, PNG, TIFF, WebP, BMP)") from None
    if image_format not in _REFERENCE_EXT:
        raise EditError(f"the reference must be a JPEG, PNG, TIFF, WebP or BMP photo, got {image_format}")
    if width * height > MAX_REFERENCE_PIXELS:
        raise EditError(f"the reference photo has {width} x {height} pixels, more than "
                        f"{MAX_REFERENCE_PIXELS // 1_000_000} megapixels (a decompression bomb?): refused")
    try:
        images.read_image(data)
    except images.ImageReadError as e:
        raise EditError(f"the reference photo cannot be decoded: {str(e).split(': ', 1)[-1]}") from None
    return width, height, image_format


# ----------------------------------------------------------------------------
# Hint files: the sidecar format of keras_colorize.guidance.hint_file
# ----------------------------------------------------------------------------


def hint_document(edit: Edit, sidecar: pathlib.Path, store: ReferenceStore) -> dict:
    """The hint file (:mod:`keras_colorize.guidance.hint_file`, version 1) of an edit saved as `sidecar`:
    points in photo pixels, the reference path relative to the sidecar's folder, saturation when not 1."""
    document = {"version": hint_file.FORMAT_VERSION,
                "points": [{"x": p.x, "y": p.y, "color": p.color, "size": p.size} for p in edit.points]}
    if edit.reference is not None:
        document["reference"] = pathlib.Path(os.path.relpath(store.path(edit.reference), sidecar.parent)).as_posix()
    if edit.saturation != 1.0:
        document["saturation"] = edit.saturation
    hint_file.validate(document)
    return document


def edit_hints(edit: Edit, store: ReferenceStore):
    """The :class:`keras_colorize.guidance.hint_file.Hints` of an edit (the reference by its stored path)."""
    document = {"version": hint_file.FORMAT_VERSION,
                "points": [{"x": p.x, "y": p.y, "color": p.color, "size": p.size} for p in edit.points],
                "saturation": edit.saturation}
    if edit.reference is not None:
        document["reference"] = str(store.path(edit.reference))
    return hint_file.Hints.load(document)


def read_hint_file(path: pathlib.Path, width: int, height: int, store: ReferenceStore) -> Edit:
    """The edit a hint file holds (its reference copied into the store); `EditError` for one that does not load.

    Fractions become pixels; an [a, b] colour becomes the "#rrggbb" of that a*b* at L* = 60.
    """
    try:
        hints = hint_file.Hints.load(pathlib.Path(path))
        hints.check_photo(width, height)
    except (ValueError, OSError) as e:
        raise EditError(str(e)) from e
    points = []
    for p in hints.points:
        x, y = hint_file.point_pixels(p, width, height)
        points.append({"x": min(x, width - 0.01), "y": min(y, height - 0.01), "color": hint_file.point_hex(p),
                       "size": p.size})
    reference = store.import_file(hints.reference) if hints.reference is not None else None
    return parse_edit({"points": points, "reference": reference, "saturation": hints.saturation}, width, height)


# ----------------------------------------------------------------------------
# The studio's state
# ----------------------------------------------------------------------------


class Studio:
    """Edits, states, renders and saves of the photos of one folder.

    Args:
      folder: the photos and output folders.
      renderer: the model and its previews (:class:`keras_colorize.studio.render.Renderer`).
      quality: JPEG/WebP quality of saved files (``kc-colorize``'s default, 95, gives its bytes).
    """

    def __init__(self, folder: folder_lib.PhotoFolder, renderer: render_lib.Renderer, quality: int = 95):
        self.folder = folder
        self.renderer = renderer
        self.quality = quality
        self.references = ReferenceStore(folder)
        self._drafts: dict[str, Edit] = {}  # name -> the edit last rendered or saved
        self._baseline: dict[str, Edit] = {}  # name -> the edit saved (or found) when it was opened or saved
        self._saved: dict[str, tuple[tuple, Edit | None]] = {}  # name -> (sidecar stamp, edit)
        self._lock = threading.Lock()
        self._save_locks: dict[str, threading.Lock] = {}

    @property
    def guided(self) -> bool:
        return self.renderer.guided

    # ---- edits and states ----

    def saved_edit(self, name: str, width: int, height: int) -> Edit | None:
        """The edit of the photo's saved sidecar in the output folder (None if none), re-read when it changes."""
        sidecar = self.folder.sidecar_path(name)
        try:
            stamp = render_lib.file_stamp(sidecar)
        except OSError:
            return None
        with self._lock:
            cached = self._saved.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            edit = read_hint_file(sidecar, width, height, self.references)
        except EditError as e:
            log.warning("ignoring the sidecar %s: %s", sidecar, e)
            edit = None
        with self._lock:
            self._saved[name] = (stamp, edit)
        return edit

    def initial_edit(self, name: str, width: int, height: int) -> tuple[Edit, str]:
        """The edit a photo opens with and where it comes from: the unsaved draft, the saved sidecar in the
        output folder, a sidecar beside the photo, or none. What it would open with without the draft is the
        baseline that tells an edited photo from an unchanged one."""
        baseline, origin = self.saved_edit(name, width, height), "saved"
        if baseline is None:
            baseline, origin = Edit(), "none"
            beside = self.folder.source_sidecar(name)
            if beside.is_file():
                try:
                    baseline, origin = read_hint_file(beside, width, height, self.references), "photos folder"
                except EditError as e:
                    log.warning("ignoring the sidecar %s: %s", beside, e)
        with self._lock:
            self._baseline[name] = baseline
            draft = self._drafts.get(name)
        return (draft, "draft") if draft is not None and draft != baseline else (baseline, origin)

    def set_draft(self, name: str, edit: Edit) -> None:
        with self._lock:
            self._drafts[name] = edit

    def state(self, name: str) -> str:
        """"saved", "edited", "colorized" or "not done" (see the module docstring)."""
        with self._lock:
            draft, baseline = self._drafts.get(name), self._baseline.get(name, Edit())
        if draft is not None and draft != baseline:
            return "edited"
        try:
            if self.folder.output_path(name).is_file():
                return "saved" if self.folder.sidecar_path(name).is_file() else "colorized"
        except folder_lib.PathRefused:  # a symlink planted in the output folder: saving it is refused (403)
            pass
        return "not done"

    def photos(self) -> list[dict]:
        """Every photo of the folder (rescanned) with its state."""
        return [{"name": name, "state": self.state(name)} for name in self.folder.scan()]

    # ---- rendering ----

    def guidance(self, edit: Edit, photo: render_lib.OpenPhoto):
        """What the model gets for the edit: ``Colorizer.guidance_inputs`` of its hint file, as saving uses it."""
        if edit.has_hints and not self.guided:
            raise EditError("this model takes no hints (it has no hint inputs): start the studio with a guided "
                            "model to place colour points or a reference photo")
        try:
            return self.renderer.colorizer.guidance_inputs(edit_hints(edit, self.references), photo.width,
                                                           photo.height)
        except ValueError as e:  # HintFileError, NoHintInputsError
            raise EditError(str(e)) from e

    def render(self, name: str, edit: Edit) -> bytes:
        """JPEG preview of the photo with the edit; the edit becomes the photo's draft."""
        photo = self.renderer.open(self.folder.photo_path(name))
        if edit.reference is not None and not self.references.exists(edit.reference):
            raise EditError("reference photo not found: upload it again")
        body = self.renderer.render(photo, self.guidance(edit, photo))
        self.set_draft(name, edit)
        return body

    # ---- saving ----

    def _save_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._save_locks.setdefault(name, threading.Lock())

    def save(self, name: str, edit: Edit) -> dict:
        """Writes the sidecar, then the full-resolution colorization; returns where and the new state."""
        if edit.has_hints and not self.guided:
            raise EditError("this model takes no hints: nothing saved")
        if edit.reference is not None and not self.references.exists(edit.reference):
            raise EditError("reference photo not found: upload it again")
        source = self.folder.photo_path(name)
        destination = self.folder.output_path(name)
        sidecar = self.folder.sidecar_path(name)
        with self._save_lock(name):
            fileio.atomic_write_text(sidecar, json.dumps(hint_document(edit, sidecar, self.references), indent=2)
                                     + "\n")
            self._write_colorization(name, source, destination, sidecar)
            with self._lock:
                self._drafts[name] = edit
                self._baseline[name] = edit
        return {"output": destination.relative_to(self.folder.output).as_posix(),
                "sidecar": sidecar.relative_to(self.folder.output).as_posix(), "state": self.state(name)}

    def colorize_rest_one(self, name: str) -> None:
        """One photo of "Colorize the rest": saved with its unsaved edit, else colorized as ``kc-colorize`` would
        (with a sidecar beside the photo when there is one); a photo with an output is left alone."""
        state = self.state(name)
        if state == "edited":
            with self._lock:
                draft = self._drafts.get(name)
            if draft is not None:
                self.save(name, draft)
                return
        destination = self.folder.output_path(name)
        if destination.is_file():
            return
        beside = self.folder.source_sidecar(name)
        sidecar = beside if beside.is_file() and self.guided else None
        with self._save_lock(name):
            self._write_colorization(name, self.folder.photo_path(name), destination, sidecar)

    def _write_colorization(self, name, source, destination, sidecar) -> None:
        """Colorizes one photo at full resolution with ``kc-colorize``'s code and settings."""
        job = photos_lib.Job(source, destination, name)
        options = {} if sidecar is None else {"hints": [sidecar]}
        with self.renderer.lock:
            summary = photos_lib.colorize_jobs(self.renderer.colorizer, [job], quality=self.quality, progress=False,
                                               **options)
        if summary.failed:
            raise EditError(summary.failed[0][1])


