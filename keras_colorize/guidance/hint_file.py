r"""The hint file: colour points and a reference photo that steer a guided model (JSON, version 1).

One format everywhere: ``kc-colorize --hints=FILE`` and the sidecars ``<photo>.hints.json``,
``Colorizer.colorize(image, hints=...)``, ``kc-colorize-video --hints`` (per frame range, below),
``kc-litert --hints`` and the studio's saved edits. The JSON Schema is
``keras_colorize/guidance/hints.schema.json`` (in the package); :func:`validate` checks the same
rules in plain Python and names the field and the value that are wrong.

A hint file::

    {
      "version": 1,
      "units": "pixels",
      "points": [
        {"x": 412, "y": 96, "color": "#d2691e"},
        {"x": 120.5, "y": 300, "color": [20.0, -35.5], "size": 5}
      ],
      "reference": "sunset.jpg"
    }

* ``version`` (required): 1.
* ``units`` (optional): ``"pixels"`` (default) or ``"fraction"``. Pixels are the photo's own,
  upright (EXIF orientation applied, as ``kc-colorize`` reads it): the origin is the top-left
  corner, x runs right and y down, pixel (i, j) covers [i, i+1) x [j, j+1) (its centre is
  (i + 0.5, j + 0.5)); a point must lie in [0, width] x [0, height]. Fractions are x / width and
  y / height, each in [0, 1], so one file fits a photo at any resolution.
* ``points`` (optional, default none): local hints, Zhang et al. 2017. ``color`` is an sRGB
  ``"#rrggbb"`` (its a*b* is used, converted with :mod:`keras_colorize.color`; lightness always
  comes from the photo) or ``[a, b]`` in CIE a*b* units, each in [-128, 128]. ``size`` (optional,
  default 3) is the side of the square patch the colour fills, in pixels of the model's S x S grid
  (1..9; a 256 px model's pixel is width / 256 photo pixels wide). Where patches overlap, the later
  point wins.
* ``reference`` (optional): a colour photo, relative to the hint file's folder (or absolute),
  whose palette (a*b* histogram) steers the whole photo, the global hint.
* ``saturation`` (optional, default 1): a factor on the predicted a*b* about gray, in [0, 2],
  applied after the model (the studio's slider); not a model input.

Unknown fields are errors. A file with neither points nor a reference is valid: the model
colorizes automatically (zero hints).

The model sees the whole photo resized to S x S (not aspect-kept,
:func:`keras_colorize.inference.merge.model_input`), so a point (x, y) lands on the grid at
``(x * S / width, y * S / height)``.

Frame ranges (``kc-colorize-video --hints=FILE``): a JSON list of hint files, each with a
``"frames": [first, last]`` field (0-based frame numbers, both included; ranges must not
overlap); frames outside every range get no hints (or the ``--reference`` palette)::

    [
      {"frames": [0, 239], "version": 1, "units": "fraction",
       "points": [{"x": 0.5, "y": 0.1, "color": "#e07020", "size": 9}]},
      {"frames": [240, 1000], "version": 1, "reference": "dusk.jpg"}
    ]

Schema: ``film_hints.schema.json``; Python: :class:`FilmHints`.

Example::

    hints = Hints.load("scan.jpg.hints.json")              # ValueError naming what is wrong
    hint_map, reference = model_inputs(hints, 1200, 800, image_size=256)   # (256, 256, 3), (262,)
"""

import bisect
import dataclasses
import json
import math
import os
import pathlib
import re
import threading

import numpy as np

from keras_colorize.guidance import spec

FORMAT_VERSION = 1
UNITS = ("pixels", "fraction")
#: A photo's sidecar is its full file name plus this: ``scan.jpg`` -> ``scan.jpg.hints.json``.
SIDECAR_SUFFIX = ".hints.json"
#: |a*|, |b*| of a colour given as [a, b].
AB_LIMIT = 128.0
MIN_SATURATION, MAX_SATURATION = 0.0, 2.0
#: Largest hint file read (a hint file is a few kilobytes; this guards against a wrong file).
MAX_FILE_BYTES = 16 * 1024 * 1024
SCHEMA_PATH = pathlib.Path(__file__).with_name("hints.schema.json")
FILM_SCHEMA_PATH = pathlib.Path(__file__).with_name("film_hints.schema.json")

_FIELDS = ("version", "units", "points", "reference", "saturation")
_POINT_FIELDS = ("x", "y", "color", "size")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class HintFileError(ValueError):
    """A hint file or document that breaks the format; the message names the field and the value."""


class NoHintInputsError(ValueError):
    """Hints or a reference photo given to a model without the hint inputs (an automatic model)."""


def no_hint_inputs_message(model, what="hints"):
    """The one-line error for ``what`` (e.g. ``"--hints"``) given to ``model``, which has no hint inputs."""
    return (f"model {str(model)!r} has no hint inputs (it was built without hints=True), so it cannot take {what}; "
            "use a guided model")


# ----------------------------------------------------------------------------
# Validation (the rules of hints.schema.json, with messages naming field and value)
# ----------------------------------------------------------------------------


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value):
    return _is_number(value) and float(value).is_integer()


def _show(value):
    text = json.dumps(value) if isinstance(value, (dict, list, str, bool, type(None))) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown(document, known, where):
    unknown = [k for k in document if k not in known]
    if unknown:
        field = f"{where}.{unknown[0]}" if where else unknown[0]
        raise HintFileError(f"{field}: unknown field (the fields are {', '.join(known)})")


def _check_color(value, where):
    if isinstance(value, str):
        if not _HEX.match(value):
            raise HintFileError(f"{where}: {_show(value)} is not a colour (want \"#rrggbb\" or [a, b])")
        return
    if (not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value)
            or not all(-AB_LIMIT <= v <= AB_LIMIT for v in value)):
        raise HintFileError(f"{where}: {_show(value)} is not a colour (want \"#rrggbb\" or [a, b], a and b "
                            f"numbers in [-{AB_LIMIT:g}, {AB_LIMIT:g}])")


def _check_point(point, where, units):
    if not isinstance(point, dict):
        raise HintFileError(f"{where}: must be an object {{\"x\", \"y\", \"color\"[, \"size\"]}}, got "
                            f"{_show(point)}")
    _unknown(point, _POINT_FIELDS, where)
    for field in ("x", "y", "color"):
        if field not in point:
            raise HintFileError(f"{where}.{field}: missing")
    for field in ("x", "y"):
        value = point[field]
        if not _is_number(value):
            raise HintFileError(f"{where}.{field}: must be a number, got {_show(value)}")
        top = 1 if units == "fraction" else math.inf
        if not 0 <= value <= top:
            bounds = "in [0, 1] (units \"fraction\")" if units == "fraction" else ">= 0 (photo pixels)"
            raise HintFileError(f"{where}.{field}: {_show(value)} is outside the photo: must be {bounds}")
    _check_color(point["color"], f"{where}.color")
    if "size" in point:
        size = point["size"]
        if not _is_integer(size) or not spec.MIN_PATCH <= size <= spec.MAX_PATCH:
            raise HintFileError(f"{where}.size: must be an integer in [{spec.MIN_PATCH}, {spec.MAX_PATCH}] "
                                f"(model-grid pixels), got {_show(size)}")


def _check_fields(document, where, extra=()):
    """The hint-file rules on an object that may also carry ``extra`` fields (a frame range's "frames")."""
    prefix = f"{where}." if where else ""
    if not isinstance(document, dict):
        raise HintFileError(f"{where or 'the document'}: must be a JSON object, got {_show(document)}")
    _unknown(document, _FIELDS + tuple(extra), where)
    if "version" not in document:
        raise HintFileError(f"{prefix}version: missing (want {FORMAT_VERSION})")
    version = document["version"]
    if not _is_integer(version) or version != FORMAT_VERSION:
        raise HintFileError(f"{prefix}version: {_show(version)} is not supported (this keras_colorize reads "
                            f"version {FORMAT_VERSION})")
    units = document.get("units", "pixels")
    if units not in UNITS:
        raise HintFileError(f"{prefix}units: must be \"pixels\" or \"fraction\", got {_show(units)}")
    points = document.get("points", [])
    if not isinstance(points, list):
        raise HintFileError(f"{prefix}points: must be a list of points, got {_show(points)}")
    for i, point in enumerate(points):
        _check_point(point, f"{prefix}points[{i}]", units)
    if "reference" in document:
        reference = document["reference"]
        if not isinstance(reference, str) or not reference.strip():
            raise HintFileError(f"{prefix}reference: must be the path of a photo, got {_show(reference)}")
    if "saturation" in document:
        value = document["saturation"]
        if not _is_number(value) or not MIN_SATURATION <= value <= MAX_SATURATION:
            raise HintFileError(f"{prefix}saturation: must be a number in [{MIN_SATURATION:g}, "
                                f"{MAX_SATURATION:g}], got {_show(value)}")


def validate(document):
    """Checks a parsed hint file (a dict) against the format; raises :class:`HintFileError`.

    Checks only the document itself; whether the points lie inside a given photo
    (:meth:`Hints.check_photo`) and whether the reference is an image (:meth:`Hints.load`)
    need the files.
    """
    _check_fields(document, "")


def validate_film(document):
    """Checks a parsed frame-range file (a list of hint files with ``"frames"``); raises :class:`HintFileError`."""
    if not isinstance(document, list):
        raise HintFileError(f"the document must be a JSON list of hint files with \"frames\": [first, last], "
                            f"got {_show(document)}")
    spans = []
    for i, entry in enumerate(document):
        where = f"[{i}]"
        _check_fields(entry, where, extra=("frames",))
        frames = entry.get("frames")
        if frames is None:
            raise HintFileError(f"{where}.frames: missing (want [first, last], 0-based, both included)")
        if (not isinstance(frames, list) or len(frames) != 2 or not all(_is_integer(f) and f >= 0 for f in frames)
                or frames[0] > frames[1]):
            raise HintFileError(f"{where}.frames: must be [first, last], integers with 0 <= first <= last, got "
                                f"{_show(frames)}")
        spans.append((int(frames[0]), int(frames[1]), i))
    spans.sort()
    for (_, end_a, a), (start_b, _, b) in zip(spans, spans[1:]):
        if start_b <= end_a:
            raise HintFileError(f"[{b}].frames: overlaps [{a}].frames (frame {start_b} is in both)")


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate field {key!r}")
        seen[key] = value
    return seen


def read_json(path, what="hints file"):
    """Parses a JSON file strictly (no NaN, no duplicate fields); :class:`HintFileError` naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise HintFileError(f"{what} {str(path)!r} does not exist or is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise HintFileError(f"{what} {str(path)!r}: {size} bytes, more than a hint file can be "
                            f"({MAX_FILE_BYTES // (1024 * 1024)} MiB)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HintFileError(f"{what} {str(path)!r}: cannot read it ({e})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise HintFileError(f"{what} {str(path)!r}: not valid JSON (line {e.lineno} column {e.colno}: "
                            f"{e.msg})") from None
    except ValueError as e:
        raise HintFileError(f"{what} {str(path)!r}: not valid JSON ({e})") from None


# ----------------------------------------------------------------------------
# Hints
# ----------------------------------------------------------------------------


def hex_to_ab(color_hex):
    """``"#rrggbb"`` (sRGB) -> its (a*, b*) in Lab units (:func:`keras_colorize.color.rgb_to_lab`)."""
    from keras_colorize import color  # noqa: PLC0415 - TensorFlow, only once a colour is converted

    rgb = np.array([[[int(color_hex[i:i + 2], 16) for i in (1, 3, 5)]]], np.float32) / 255.0
    lab = np.asarray(color.rgb_to_lab(rgb))[0, 0]
    return float(lab[1]), float(lab[2])


@dataclasses.dataclass(frozen=True)
class Point:
    """One local hint.

    Attributes:
      x, y: where, in the photo's pixels or (``fraction``) as fractions of its width and height.
      ab: the colour's (a*, b*) in Lab units.
      size: patch side in model-grid pixels (1..9).
      hex: the colour as the file gave it (``"#rrggbb"``), or None for [a, b].
      fraction: x and y are fractions.
    """

    x: float
    y: float
    ab: tuple
    size: int = spec.DEFAULT_PATCH
    hex: str | None = None
    fraction: bool = False

    @property
    def color(self):
        """The colour as written in a hint file: ``"#rrggbb"`` or ``[a, b]``."""
        return self.hex if self.hex is not None else [float(self.ab[0]), float(self.ab[1])]

    def pixels(self, width, height):
        """(x, y) in the pixels of a ``width`` x ``height`` photo."""
        return (self.x * width, self.y * height) if self.fraction else (float(self.x), float(self.y))


def point_pixels(point, width, height):
    """(x, y) of ``point`` in the pixels of a ``width`` x ``height`` photo (fractions scaled)."""
    return point.pixels(width, height)


def point_hex(point):
    """``"#rrggbb"`` of a point: as written, or for [a, b] that colour at L* = 60 brought into sRGB."""
    if point.hex is not None:
        return point.hex
    from keras_colorize import color  # noqa: PLC0415

    lab = np.array([[60.0, point.ab[0], point.ab[1]]], np.float32)
    rgb = np.asarray(color.linear_to_srgb(color.fit_to_gamut(color.lab_to_linear_rgb(lab))))[0]
    return "#" + "".join(f"{int(round(float(np.clip(c, 0, 1)) * 255)):02x}" for c in rgb)


@dataclasses.dataclass(frozen=True)
class Hints:
    """The hints of one photo: points, a reference photo, a saturation factor.

    Build it with :meth:`load` (a file, a parsed document) or directly (``Hints(points=(Point(...),))``).

    Attributes:
      points: :class:`Point` s, in order (later points win overlaps).
      reference: the reference photo's path (resolved against the hint file's folder), or None.
      saturation: factor on the predicted a*b* about gray (1 = the model's colours).
      source: where the hints were read from (for messages), or None.
    """

    points: tuple = ()
    reference: pathlib.Path | None = None
    saturation: float = 1.0
    source: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "points", tuple(self.points))
        if self.reference is not None:
            object.__setattr__(self, "reference", pathlib.Path(self.reference))

    @property
    def guides(self):
        """True when the model gets something: points or a reference photo."""
        return bool(self.points) or self.reference is not None

    @classmethod
    def load(cls, source, base_dir=None):
        """Hints from a hint file path, a parsed document (dict) or a :class:`Hints` (returned as is).

        Args:
          source: a path (str or PathLike), a dict (the JSON document) or a :class:`Hints`.
          base_dir: the folder a dict's relative ``reference`` is resolved against (default:
            the current folder); a file's is its own folder.

        Raises:
          HintFileError: the file is missing or not JSON, a field is wrong (named with its value),
            the reference photo is missing or not an image.
        """
        if isinstance(source, Hints):
            return source
        if isinstance(source, (str, os.PathLike)):
            path = pathlib.Path(source)
            document = read_json(path)
            try:
                return cls.from_dict(document, base_dir=path.parent, source=str(path))
            except HintFileError as e:
                raise HintFileError(f"hints file {str(path)!r}: {e}") from None
        if isinstance(source, dict):
            return cls.from_dict(source, base_dir=base_dir)
        raise HintFileError(f"hints must be a Hints, a dict (a hint file's JSON) or the path of a hint file, got "
                            f"{type(source).__name__}")

    @classmethod
    def from_dict(cls, document, base_dir=None, source=None):
        """Hints from a parsed hint file (see the module docstring); :class:`HintFileError` if it is not one."""
        validate(document)
        return cls._from_checked(document, base_dir, source)

    @classmethod
    def _from_checked(cls, document, base_dir, source):
        fraction = document.get("units", "pixels") == "fraction"
        points = []
        for p in document.get("points", []):
            color = p["color"]
            ab, hex_color = (hex_to_ab(color), color.lower()) if isinstance(color, str) else (tuple(color), None)
            points.append(Point(float(p["x"]), float(p["y"]), (float(ab[0]), float(ab[1])),
                                int(p.get("size", spec.DEFAULT_PATCH)), hex_color, fraction))
        reference = None
        if "reference" in document:
            reference = pathlib.Path(base_dir or ".") / document["reference"]
            check_reference(reference, document["reference"])
        return cls(tuple(points), reference, float(document.get("saturation", 1.0)), source)

    def to_dict(self, relative_to=None):
        """The hint file of these hints (version 1); ``reference`` relative to the folder ``relative_to``.

        Points keep their units; a file mixing pixel and fraction points cannot be written.
        """
        units = {p.fraction for p in self.points}
        if len(units) > 1:
            raise HintFileError("points mix pixels and fractions: one hint file has one kind of units")
        document = {"version": FORMAT_VERSION}
        if units == {True}:
            document["units"] = "fraction"
        document["points"] = [{"x": p.x, "y": p.y, "color": p.color, "size": p.size} for p in self.points]
        if self.reference is not None:
            reference = self.reference
            if relative_to is not None:
                reference = pathlib.Path(os.path.relpath(reference.resolve(), pathlib.Path(relative_to).resolve()))
            document["reference"] = reference.as_posix()
        if self.saturation != 1.0:
            document["saturation"] = self.saturation
        return document

    def save(self, path):
        """Writes the hint file atomically (the reference relative to its folder); returns the path."""
        from keras_colorize import fileio  # noqa: PLC0415

        path = pathlib.Path(path)
        return fileio.atomic_write_text(path, json.dumps(self.to_dict(path.parent), indent=2) + "\n")

    def _where(self):
        return f"hints file {self.source!r}: " if self.source else ""

    def check_photo(self, width, height):
        """Raises :class:`HintFileError` for a point outside a ``width`` x ``height`` photo (naming it)."""
        for i, point in enumerate(self.points):
            x, y = point.pixels(width, height)
            for field, value, limit in (("x", x, width), ("y", y, height)):
                if not 0 <= value <= limit:
                    raise HintFileError(f"{self._where()}points[{i}].{field}: {getattr(point, field):g} is outside "
                                        f"the photo ({width} x {height} pixels: {field} must be in [0, {limit}])")

    def grid_points(self, width, height, image_size):
        """``(xy (N, 2), ab (N, 2), sizes (N,))`` on the model's ``image_size`` grid, as ``paint_hints`` takes."""
        xy = np.array([p.pixels(width, height) for p in self.points], np.float32).reshape(-1, 2)
        xy *= np.array([image_size / width, image_size / height], np.float32)
        ab = np.array([p.ab for p in self.points], np.float32).reshape(-1, 2)
        sizes = np.array([p.size for p in self.points], np.int32)
        return xy, ab, sizes


def check_reference(path, given=None):
    """Raises :class:`HintFileError` unless ``path`` is an image file (its header is read, not the pixels)."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    path = pathlib.Path(path)
    shown = repr(given) if given is not None and str(given) != str(path) else repr(str(path))
    where = f"{shown} ({str(path)!r})" if shown != repr(str(path)) else shown
    if not path.is_file():
        raise HintFileError(f"reference: {where} does not exist or is not a file")
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header decodes
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        reason = "not a recognised image file" if isinstance(e, UnidentifiedImageError) else str(e)
        raise HintFileError(f"reference: {where} is not an image ({reason})") from None


# ----------------------------------------------------------------------------
# Model inputs
# ----------------------------------------------------------------------------

_REFERENCES = {}  # (resolved path, mtime_ns, size) -> (R,) reference input
_REFERENCES_LOCK = threading.Lock()
_MAX_CACHED_REFERENCES = 32


def reference_input(source):
    """The ``reference`` input ``(R,)`` float32 of a reference photo (its a*b* histogram, flag set).

    Args:
      source: a file path (read with :func:`keras_colorize.inference.images.read_image`, with
        its size limits; cached while the file is unchanged), a ``PIL.Image`` or an RGB/gray
        array (uint8, uint16 or float in [0, 1]).

    Raises:
      HintFileError: the file is not an image.
    """
    from keras_colorize.guidance import hint_ops  # noqa: PLC0415 - TensorFlow
    from keras_colorize.inference import images  # noqa: PLC0415

    key = None
    if isinstance(source, (str, os.PathLike)):
        path = pathlib.Path(source)
        try:
            stat = path.stat()
        except OSError as e:
            raise HintFileError(f"reference: {str(path)!r} cannot be read ({e.strerror or e})") from None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with _REFERENCES_LOCK:
            if key in _REFERENCES:
                return _REFERENCES[key]
        try:
            picture = images.read_image(path)
        except images.ImageReadError as e:
            raise HintFileError(f"reference: {str(path)!r} is not an image ({' '.join(str(e).split())})") from None
    elif hasattr(source, "mode") and hasattr(source, "size"):  # PIL.Image
        source.load()
        picture = images.from_pil(source)
    else:
        picture = images.from_array(source)
    pixels = picture.pixels if picture.pixels.dtype == np.uint8 else images.to_uint8(picture.pixels)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    vector = np.asarray(hint_ops.reference_vector(pixels), np.float32)
    if key is not None:
        with _REFERENCES_LOCK:
            if len(_REFERENCES) >= _MAX_CACHED_REFERENCES:
                _REFERENCES.pop(next(iter(_REFERENCES)))
            _REFERENCES[key] = vector
    return vector


def model_inputs(hints, photo_width, photo_height, image_size):
    """A guided model's inputs for one photo: ``(hint_map (S, S, 3), reference (R,))`` float32 arrays.

    Args:
      hints: :class:`Hints` (or anything :meth:`Hints.load` takes).
      photo_width, photo_height: the photo's upright size in pixels.
      image_size: the model's side S.

    Raises:
      HintFileError: a point outside the photo, a reference that is not an image.
    """
    hints = Hints.load(hints)
    hints.check_photo(photo_width, photo_height)
    if hints.points:
        from keras_colorize.guidance import hint_ops  # noqa: PLC0415 - TensorFlow

        hint_map = np.asarray(hint_ops.paint_hints(*hints.grid_points(photo_width, photo_height, image_size),
                                                   image_size), np.float32)
    else:
        hint_map = np.zeros((image_size, image_size, spec.HINT_CHANNELS), np.float32)
    if hints.reference is not None:
        try:
            reference = reference_input(hints.reference)
        except HintFileError as e:
            raise HintFileError(f"{hints._where()}{e}") from None  # noqa: SLF001
    else:
        reference = np.zeros((spec.REFERENCE_SIZE,), np.float32)
    return hint_map, reference


# ----------------------------------------------------------------------------
# Sidecars and frame ranges
# ----------------------------------------------------------------------------


def is_sidecar(path):
    """True for a hint sidecar's file name (``*.hints.json``, any case)."""
    return pathlib.Path(path).name.lower().endswith(SIDECAR_SUFFIX)


def sidecar_path(photo, root=None, hints_dir=None):
    """Where a photo's sidecar is: beside it, or under ``hints_dir`` at its path relative to ``root``.

    Example: ``sidecar_path("scans/a/x.jpg", "scans", "hints")`` is ``hints/a/x.jpg.hints.json``.
    """
    photo = pathlib.Path(photo)
    if hints_dir is None:
        return photo.with_name(photo.name + SIDECAR_SUFFIX)
    relative = photo.relative_to(root) if root is not None else pathlib.Path(photo.name)
    return pathlib.Path(hints_dir) / relative.with_name(relative.name + SIDECAR_SUFFIX)


@dataclasses.dataclass(frozen=True)
class FrameRange:
    """Hints for frames ``first`` to ``last`` (0-based, both included)."""

    first: int
    last: int
    hints: Hints


@dataclasses.dataclass(frozen=True)
class FilmHints:
    """Hints per frame range of a film (``kc-colorize-video --hints``), sorted, not overlapping."""

    ranges: tuple = ()
    source: str | None = None

    @classmethod
    def load(cls, source, base_dir=None):
        """From a frame-range file path or a parsed list; :class:`HintFileError` naming the entry and field."""
        if isinstance(source, FilmHints):
            return source
        path = None
        if isinstance(source, (str, os.PathLike)):
            path = pathlib.Path(source)
            document, base_dir = read_json(path, "hints file"), path.parent
        else:
            document = source
        try:
            validate_film(document)
            ranges = []
            for i, entry in enumerate(document):
                try:
                    hints = Hints._from_checked(entry, base_dir, None)  # noqa: SLF001 - validated above
                except HintFileError as e:
                    raise HintFileError(f"[{i}].{e}") from None
                ranges.append(FrameRange(int(entry["frames"][0]), int(entry["frames"][1]), hints))
        except HintFileError as e:
            raise HintFileError(f"hints file {str(path)!r}: {e}" if path else str(e)) from None
        ranges.sort(key=lambda r: r.first)
        return cls(tuple(ranges), None if path is None else str(path))

    def at(self, frame):
        """``(index, Hints)`` of the range holding ``frame``, or ``(None, None)``."""
        i = bisect.bisect_right([r.first for r in self.ranges], frame) - 1
        if i >= 0 and self.ranges[i].last >= frame:
            return i, self.ranges[i].hints
        return None, None

    def check_frame(self, width, height):
        """Raises :class:`HintFileError` for a point outside a ``width`` x ``height`` frame (naming its range)."""
        for r in self.ranges:
            try:
                r.hints.check_photo(width, height)
            except HintFileError as e:
                where = f"hints file {self.source!r}: " if self.source else ""
                raise HintFileError(f"{where}[frames {r.first}-{r.last}].{e}") from None
