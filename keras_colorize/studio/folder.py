"""The studio's two folders: photos it may read (`--photos`) and the only place it writes (`--output`).

Photos are named by their path relative to the photos folder, in POSIX form
(``"harbour/1908.jpg"``), as `kc-colorize` mirrors them into its output
folder. A name is served only if the last scan found it: the scan walks the
folder (hidden names skipped, symlinked folders not followed, a symlinked
file kept only when it resolves inside the folder), and every read re-checks
that the file still resolves inside it, so neither ``..``, an encoded or
doubly encoded ``%2e%2e%2f`` nor a symlink can reach a file outside.

Outputs mirror the photos' tree under the output folder; each destination is
checked to resolve inside the output folder (a symlink planted in it cannot
redirect a write) and never onto an input. Beside each saved colorization
lies its hint file, ``<output>/<photo>.hints.json``: the sidecar that
``kc-colorize --hints_dir=<output>`` reads for the same photo.

Example::

    folder = PhotoFolder("scans/", "scans_colorized/")
    names = folder.scan()                     # ["a.jpg", "sub/b.tif"]
    folder.photo_path("sub/b.tif")            # resolved path inside scans/
    folder.output_path("sub/b.tif")           # scans_colorized/sub/b.tif
"""

from __future__ import annotations

import os
import pathlib
import threading

from keras_colorize import fileio
from keras_colorize.inference import images

#: Suffix of a hint sidecar (``scan.jpg.hints.json``), as ``kc-colorize`` looks for it.
SIDECAR_SUFFIX = ".hints.json"
#: Hidden folder under the output for the studio's own files (uploaded reference photos).
STUDIO_DIR = ".kc-studio"


class PathRefused(LookupError):
    """A photo name that is not a photo of the folder, or a destination outside the output folder."""


def _within(path: pathlib.Path, folder: pathlib.Path) -> bool:
    return path == folder or folder in path.parents


def default_output(photos) -> pathlib.Path:
    """``<photos>_colorized`` beside the photos folder."""
    photos = pathlib.Path(photos).expanduser().resolve()
    return photos.with_name(photos.name + "_colorized")


class PhotoFolder:
    """The photos folder (read only) and the output folder (written), with checked paths.

    Args:
      photos: the folder of photos (searched recursively).
      output: the output folder (created); neither folder may lie inside the other.

    Raises:
      ValueError: a missing photos folder, folders inside each other, or an
        output that cannot be written.
    """

    def __init__(self, photos, output):
        given = pathlib.Path(photos).expanduser()
        if not given.is_dir():
            raise ValueError(f"--photos={str(photos)!r} is not a folder")
        self.root = given.resolve()
        self.output = pathlib.Path(output).expanduser().resolve()
        if _within(self.output, self.root):
            raise ValueError(f"--output={str(output)!r} lies inside the photos folder {str(photos)!r}: "
                             "the studio never writes among the photos; choose an output folder outside it")
        if _within(self.root, self.output):
            raise ValueError(f"--photos={str(photos)!r} lies inside the output folder {str(output)!r}: "
                             "choose an output folder that does not contain the photos")
        if self.output.exists() and not self.output.is_dir():
            raise ValueError(f"--output={str(output)!r} exists and is not a folder")
        fileio.check_writable_dir(self.output)
        self._lock = threading.Lock()
        self._names: tuple[str, ...] = ()

    # ---- reading ----

    def scan(self) -> list[str]:
        """Rescans the photos folder; returns the photo names (sorted, POSIX relative paths)."""
        names = []
        for folder, subdirs, files in os.walk(self.root):  # does not follow symlinked folders
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                path = pathlib.Path(folder) / name
                if name.startswith(".") or not images.is_image_path(path):
                    continue
                if path.is_symlink() and not _within(path.resolve(), self.root):
                    continue
                names.append(path.relative_to(self.root).as_posix())
        with self._lock:
            self._names = tuple(names)
        return names

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the last scan."""
        with self._lock:
            return self._names

    def photo_path(self, name: str) -> pathlib.Path:
        """The file of photo `name` (resolved, inside the photos folder); `PathRefused` otherwise."""
        if not isinstance(name, str) or name not in self.names:
            raise PathRefused(f"no photo {str(name)[:200]!r} in the photos folder")
        path = (self.root / name).resolve()
        if not _within(path, self.root) or not path.is_file():
            raise PathRefused(f"photo {name!r} is not a file inside the photos folder")
        return path

    def source_sidecar(self, name: str) -> pathlib.Path:
        """Where a hint sidecar of photo `name` may lie beside the photo (read, never written)."""
        self.photo_path(name)
        return self.root / (name + SIDECAR_SUFFIX)

    # ---- writing ----

    def _inside_output(self, relative: str) -> pathlib.Path:
        path = self.output / relative
        parent = path.parent.resolve()
        if not _within(parent, self.output) or (path.is_symlink() and not _within(path.resolve(), self.output)):
            raise PathRefused(f"{relative!r} would be written outside the output folder (a symlink in the way)")
        target = parent / path.name
        if _within(target, self.root):
            raise PathRefused(f"{relative!r} would be written among the photos")
        return target

    def output_path(self, name: str) -> pathlib.Path:
        """Where the colorization of photo `name` is written (the input's format, as ``kc-colorize`` writes it)."""
        self.photo_path(name)
        return self._inside_output(images.output_path_for(name, "same").as_posix())

    def sidecar_path(self, name: str) -> pathlib.Path:
        """Where the hints of photo `name` are saved: ``<output>/<name>.hints.json``."""
        self.photo_path(name)
        return self._inside_output(name + SIDECAR_SUFFIX)

    def studio_path(self, *parts: str) -> pathlib.Path:
        """A path under ``<output>/.kc-studio/`` (checked like every output)."""
        return self._inside_output("/".join((STUDIO_DIR, *parts)))
