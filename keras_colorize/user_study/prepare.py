"""Writes the folders a real-or-fake study serves: the real photos and each model's colorizations.

    python -m keras_colorize.user_study prepare --photos=photos/landscapes \\
        --model scenes --model scenes_nofusion=runs/scenes_cpu_nofusion/best.keras \\
        --model zhang2016=runs/scenes_cpu_zhang2016/best.keras --output=study/
    python -m keras_colorize.user_study serve --real=study/real --model scenes=study/scenes ... --per_respondent=40

Every photo is read upright (EXIF orientation) in sRGB, shrunk to at most
``long_side`` pixels on its longer side (never enlarged), and written as
``<output>/real/<relative path>.jpg``; each model colorizes that same gray
version of it into ``<output>/<model>/<relative path>.jpg``. Real photos and
colorizations go through the same resize and the same JPEG encoder, so file
format and compression give no clue to a respondent.

Resumable: files that exist are kept (a rerun after an interruption does the
rest); every file is written atomically. A photo that cannot be read is
reported and skipped for every source, so the folders keep matching scenes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import random
import re
import time
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from keras_colorize import fileio
from keras_colorize.inference import images
from keras_colorize.inference import model_spec
from keras_colorize.user_study import catalog as catalog_lib


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """What to write.

    Attributes:
      photos: folder of colour photos (searched recursively).
      models: ``(name, spec)`` per model; spec is a bundled model name, a ``.keras`` file or a SavedModel folder;
        names as the study accepts them (letters, digits, ``_ . + -``; not ``real``).
      output: folder to write ``real/`` and one folder per model into; must not lie inside ``photos``.
      max_images: at most this many photos, a seeded random sample (0 = all).
      seed: seed of that sample.
      long_side: longer side of what is written (photos larger than this are shrunk).
      quality: JPEG quality of every file written.
    """

    photos: str
    models: tuple
    output: str
    max_images: int = 0
    seed: int = 0
    long_side: int = 512
    quality: int = 95

    def validate(self):
        photos = pathlib.Path(self.photos)
        if not photos.is_dir():
            raise ValueError(f"photos={self.photos!r} is not a folder")
        if not self.models:
            raise ValueError("models: give at least one NAME=SPEC (a study of real photos alone measures nothing)")
        names = [name for name, _ in self.models]
        for name, spec in self.models:
            if not catalog_lib.MODEL_NAME_PATTERN.match(name) or name.lower() == catalog_lib.REAL:
                raise ValueError(f"model name {name!r} must be 1-64 letters, digits, '_', '.', '+' or '-', starting "
                                 f"with a letter or digit, and not {catalog_lib.REAL!r}")
            model_spec.locate(spec, label=f"model {name}=")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must differ, got {duplicates} more than once")
        for field in ("max_images", "long_side", "quality"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < (0 if field == "max_images" else 1):
                raise ValueError(f"{field} must be a {'non-negative' if field == 'max_images' else 'positive'} int, "
                                 f"got {value!r}")
        output = pathlib.Path(self.output).resolve()
        if output == photos.resolve() or photos.resolve() in output.parents:
            raise ValueError(f"output={self.output!r} lies inside photos={self.photos!r}; choose a folder outside it")


def parse_model_spec(value: str) -> tuple[str, str]:
    """``NAME=SPEC`` -> ``(NAME, SPEC)``; a bare SPEC without ``=`` names itself (``scenes``)."""
    name, sep, spec = value.partition("=")
    if not sep:
        name, spec = value, value
    name, spec = name.strip(), spec.strip()
    if not name or not spec:
        raise ValueError(f"--model must be NAME=SPEC or a bundled model name, got {value!r}")
    return name, spec


def list_photos(folder, max_images=0, seed=0):
    """Relative paths of the images under ``folder`` (sorted; a seeded sample of ``max_images`` if set)."""
    folder = pathlib.Path(folder)
    found = sorted(p.relative_to(folder) for p in folder.rglob("*")
                   if p.is_file() and images.is_image_path(p) and not any(part.startswith(".") for part in
                                                                          p.relative_to(folder).parts))
    if max_images and len(found) > max_images:
        found = sorted(random.Random(seed).sample(found, max_images))
    return found


def _shrink(pixels, long_side):
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    mode = "L" if pixels.shape[-1] == 1 else "RGB"
    shrunk = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).resize(size, Image.LANCZOS)
    return np.asarray(shrunk).reshape(size[1], size[0], -1)


def _safe_scene(relative):
    # The scene is the relative path without its extension (catalog.py): keep it, write .jpg.
    return pathlib.Path(re.sub(r"\.[^./]+$", "", relative.as_posix()) + ".jpg")


@dataclasses.dataclass
class PrepareSummary:
    written: dict
    kept: int
    failed: list
    seconds: float
    scenes: int = 0

    def serve_command(self, config, per_respondent=None):
        output = pathlib.Path(config.output)
        models = " ".join(f"--model {name}={output / name}" for name, _ in config.models)
        count = per_respondent or max(1, min(40, self.scenes))
        return (f"python -m keras_colorize.user_study serve --real={output / catalog_lib.REAL} {models} "
                f"--per_respondent={count} --db={output / 'study.sqlite'}")


def prepare(config: PrepareConfig, *, progress: bool = True) -> PrepareSummary:
    """Writes ``real/`` and one folder per model; returns what was written, kept and failed."""
    config.validate()
    from keras_colorize.inference import api  # noqa: PLC0415 - TensorFlow only once the arguments checked out

    start = time.perf_counter()
    output = pathlib.Path(config.output)
    fileio.check_writable_dir(output)
    relatives = list_photos(config.photos, config.max_images, config.seed)
    if not relatives:
        raise ValueError(f"photos={config.photos!r} holds no images ({', '.join(images.SUPPORTED_EXTENSIONS)})")
    sources = [catalog_lib.REAL] + [name for name, _ in config.models]
    colorizers = {name: api.Colorizer(spec) for name, spec in config.models}
    written = {source: 0 for source in sources}
    kept, failed, scenes = 0, [], 0
    for relative in tqdm(relatives, desc="study folders", unit="photo", disable=not progress):
        scene = _safe_scene(relative)
        targets = {source: output / source / scene for source in sources}
        todo = [source for source in sources if not targets[source].exists()]
        kept += len(sources) - len(todo)
        if not todo:
            scenes += 1
            continue
        try:
            picture = images.read_image(pathlib.Path(config.photos) / relative)
        except images.ImageReadError as e:
            failed.append((str(relative), str(e)))
            continue
        scenes += 1
        pixels = _shrink(picture.pixels if picture.pixels.dtype == np.uint8 else images.to_uint8(picture.pixels),
                         config.long_side)
        picture = images.Picture(pixels=pixels)
        for source in todo:
            if source == catalog_lib.REAL:
                rgb = pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, axis=-1)
            else:
                rgb, _ = colorizers[source].colorize_pictures([picture])[0]
            images.write_image(targets[source], rgb, image_format="JPEG", quality=config.quality)
            written[source] += 1
    return PrepareSummary(written=written, kept=kept, failed=failed, seconds=time.perf_counter() - start,
                          scenes=scenes)


def check_sources(config: PrepareConfig) -> Sequence[str]:
    """The sources the written folders hold, as the study server will see them (its own catalog scan)."""
    output = pathlib.Path(config.output)
    catalog = catalog_lib.build_catalog(output / catalog_lib.REAL, [(name, output / name) for name, _ in config.models])
    return catalog.sources
