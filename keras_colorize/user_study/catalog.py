"""The images of a study: real photos and each model's colorizations, grouped by source scene.

A *scene* is a file's path relative to its folder without the extension, so
`real/coast/img7.jpg` and `zhang2016/coast/img7.png` are the same scene seen
through two sources. The study never shows one respondent two images of the
same scene (the real photo would give its colorization away).

Example:
    catalog = build_catalog("photos/", [("proposed", "out/proposed")])
    catalog.scene_count, catalog.sources   # 100, ("real", "proposed")
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import pathlib
import re
from typing import Iterable, Mapping, Sequence

from PIL import Image

from keras_colorize.inference import images

REAL = "real"
IMAGE_EXTENSIONS = tuple(sorted(images.SUPPORTED_EXTENSIONS))  # the photos every command reads
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
IMAGE_ID_PATTERN = re.compile(r"^[0-9a-f]{20}$")


@dataclasses.dataclass(frozen=True)
class StudyImage:
    """One image file of the study.

    Attributes:
      source: `"real"` or a model name.
      scene: path relative to the source folder, POSIX separators, no extension.
      path: absolute path of the file.
      width, height: pixel size as stored (before EXIF orientation).
    """

    source: str
    scene: str
    path: pathlib.Path
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class Catalog:
    """All images of a study; `sources` is `"real"` then the models in the order given."""

    sources: tuple[str, ...]
    images: tuple[StudyImage, ...]

    def by_scene(self) -> dict[str, dict[str, StudyImage]]:
        """`{scene: {source: image}}` over every scene any source has."""
        scenes: dict[str, dict[str, StudyImage]] = {}
        for image in self.images:
            scenes.setdefault(image.scene, {})[image.source] = image
        return scenes

    @property
    def scene_count(self) -> int:
        return len({image.scene for image in self.images})

    def count(self, source: str) -> int:
        return sum(1 for image in self.images if image.source == source)


def parse_model_arg(value: str) -> tuple[str, pathlib.Path]:
    """Parses a `--model NAME=DIR` value into `(name, path)`.

    Raises:
      ValueError: naming the value when it is not `NAME=DIR`, the name is not
        1-64 characters of letters, digits, `_ . + -` (starting with a letter
        or digit), or the name is the reserved `real`.
    """
    name, sep, directory = value.partition("=")
    name = name.strip()
    if not sep or not name or not directory.strip():
        raise ValueError(f"--model must be NAME=DIR (e.g. proposed=out/proposed), got {value!r}")
    if not MODEL_NAME_PATTERN.match(name):
        raise ValueError(
            f"--model name {name!r} (from {value!r}) must be 1-64 letters, digits, '_', '.', '+' or '-', "
            "starting with a letter or digit")
    if name.lower() == REAL:
        raise ValueError(f"--model name {name!r} is reserved for the real photos (--real)")
    return name, pathlib.Path(directory.strip()).expanduser()


def build_catalog(real_dir: str | os.PathLike, models: Sequence[tuple[str, str | os.PathLike]]) -> Catalog:
    """Scans the real folder and the model folders (recursively) into a `Catalog`.

    Files with the extensions in `IMAGE_EXTENSIONS` count; hidden files and
    folders are skipped; symlinked folders are not followed.

    Args:
      real_dir: folder of real colour photos.
      models: `(name, folder)` per model, in the order the report lists them.

    Raises:
      ValueError: naming the argument and value, for a missing folder, a
        folder without images, a duplicate model name or folder, two files of
        one folder with the same scene (`a.jpg` and `a.png`), or unreadable images.
    """
    if not models:
        raise ValueError("at least one --model NAME=DIR is needed: a study of real photos alone measures nothing")
    folders: list[tuple[str, pathlib.Path, str]] = [(REAL, _check_dir(real_dir, "--real"), f"--real={real_dir}")]
    for name, directory in models:
        folders.append((name, _check_dir(directory, f"--model {name}"), f"--model {name}={directory}"))

    seen_names: dict[str, str] = {}
    seen_dirs: dict[pathlib.Path, str] = {}
    for name, directory, flag in folders:
        if name.lower() in seen_names:
            raise ValueError(f"{flag}: model name {name!r} is given twice")
        seen_names[name.lower()] = flag
        if directory in seen_dirs:
            raise ValueError(f"{flag} is the same folder as {seen_dirs[directory]}")
        seen_dirs[directory] = flag

    images: list[StudyImage] = []
    unreadable: list[str] = []
    for name, directory, flag in folders:
        found = _scan(directory, flag)
        if not found:
            raise ValueError(f"{flag}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {directory}")
        for scene, path in sorted(found.items()):
            try:
                with Image.open(path) as im:
                    width, height = im.size
            except (OSError, Image.DecompressionBombError) as e:
                unreadable.append(f"{path} ({e.__class__.__name__})")
                continue
            images.append(StudyImage(name, scene, path, width, height))
    if unreadable:
        shown = "; ".join(unreadable[:5]) + ("; ..." if len(unreadable) > 5 else "")
        raise ValueError(f"{len(unreadable)} image file(s) cannot be read: {shown}")
    return Catalog(sources=tuple(name for name, _, _ in folders), images=tuple(images))


def display_warnings(catalog: Catalog, display_size: int) -> list[str]:
    """Cues that could give a source away at this display size, as readable warnings.

    Two are checked: images whose longer side is below `display_size` (they are
    upscaled and look softer), and scenes whose sources differ in aspect ratio
    (the displayed shapes differ).
    """
    warnings = []
    small = [im for im in catalog.images if max(im.width, im.height) < display_size]
    if small:
        by_source = sorted({im.source for im in small})
        warnings.append(
            f"{len(small)} image(s) (sources: {', '.join(by_source)}; e.g. {small[0].path}, "
            f"{small[0].width}x{small[0].height}) are smaller than --display_size={display_size} and will be "
            "upscaled, which can make them recognisable; consider a smaller --display_size")
    mismatched = []
    for scene, views in catalog.by_scene().items():
        ratios = {round(im.width / im.height, 2) for im in views.values()}
        if len(ratios) > 1:
            mismatched.append(scene)
    if mismatched:
        warnings.append(
            f"{len(mismatched)} scene(s) (e.g. {mismatched[0]!r}) have different aspect ratios across sources; "
            "the displayed shape can give the source away")
    return warnings


def make_image_id(salt: bytes, source: str, scene: str) -> str:
    """Opaque, stable id of one image: a keyed hash, so ids reveal neither source nor path."""
    digest = hmac.new(salt, f"{source}\x00{scene}".encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:20]


def _check_dir(directory: str | os.PathLike, flag: str) -> pathlib.Path:
    path = pathlib.Path(directory).expanduser()
    if not path.exists():
        raise ValueError(f"{flag}: folder {str(directory)!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"{flag}: {str(directory)!r} is not a folder")
    return path.resolve()


def _scan(directory: pathlib.Path, flag: str) -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for filename in sorted(files):
            if filename.startswith(".") or not filename.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = pathlib.Path(root, filename)
            scene = path.relative_to(directory).with_suffix("").as_posix()
            if scene in found:
                raise ValueError(
                    f"{flag}: {found[scene].name} and {filename} in {path.parent} are the same scene {scene!r}; "
                    "keep one file per scene")
            found[scene] = path
    return found


def available_sources(catalog: Catalog) -> Mapping[str, Iterable[str]]:
    """`{scene: sources that have it}`, the input of `plan.make_plan`."""
    return {scene: tuple(views) for scene, views in catalog.by_scene().items()}
