"""Files on any file system Beam reads: local paths, ``gs://``, ``s3://``, ``hdfs://``, ...

The pipelines of this package read inputs and write outputs through Beam's
``FileSystems``, so the same code runs on a laptop (local paths, the only
ones the tests use) and on a cluster (``gs://`` needs ``apache-beam[gcp]``,
``s3://`` ``apache-beam[aws]``). What this module adds is publishing a file
*whole or not at all*, as :mod:`keras_colorize.fileio` does for local files,
so a killed worker never leaves a truncated output under a name that a rerun
would trust:

* local paths: :func:`keras_colorize.fileio.atomic_path` (hidden temporary
  name, then ``os.replace``);
* ``gs://`` and ``s3://``: an object appears only when its upload completes,
  so it is written under its final name;
* other file systems (``hdfs://``, ...): a hidden temporary name beside it,
  then a rename.

URLs are joined with ``/`` (``posixpath``), never with ``pathlib``, which
would turn ``gs://b`` into ``gs:/b``.
"""

import contextlib
import os
import posixpath
import re
import secrets
import shutil

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from keras_colorize import fileio

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# Object stores: an object becomes visible only when its upload is complete.
_WHOLE_ON_CLOSE = ("gs", "s3")
_CHUNK = 1 << 20


def scheme(path):
    """``"gs"`` for ``gs://b/x``; ``""`` for a local path."""
    match = _SCHEME.match(str(path))
    return match.group(1).lower() if match else ""


def is_local(path):
    """True for a path on this machine's file system (no ``scheme://``)."""
    return scheme(path) == ""


def absolute(path):
    """A local path made absolute (workers may run elsewhere, in another folder); URLs unchanged."""
    return os.path.abspath(os.path.expanduser(path)) if is_local(path) else str(path)


def join(base, *parts):
    """``base/part/...`` for a local path or a URL."""
    if is_local(base):
        return os.path.join(base, *parts)
    return posixpath.join(base, *parts)


def dirname(path):
    return os.path.dirname(path) if is_local(path) else posixpath.dirname(path)


def basename(path):
    return os.path.basename(path) if is_local(path) else posixpath.basename(path)


def is_within(path, folder):
    """True if ``path`` is ``folder`` or lies under it (both absolute, or both URLs)."""
    path, folder = str(path).rstrip("/"), str(folder).rstrip("/")
    return path == folder or path.startswith(folder + "/")


def exists(path):
    return FileSystems.exists(path)


def newer(path, than):
    """True if ``path`` was modified after ``than`` (True when either cannot be read, as kc-colorize decides)."""
    try:
        if is_local(path) and is_local(than):
            return os.stat(path).st_mtime_ns > os.stat(than).st_mtime_ns
        stamps = [FileSystems.match([p], limits=[1])[0].metadata_list[0].last_updated_in_seconds for p in (path, than)]
        return stamps[0] > stamps[1]
    except Exception:  # noqa: BLE001 - OSError, BeamIOError, IndexError: redo rather than keep a stale output
        return True


def match(pattern, limit=None):
    """Paths matching a glob (``**`` crosses folders); ``[]`` when none does."""
    try:
        result = FileSystems.match([pattern], limits=None if limit is None else [limit])[0]
    except BeamIOError:
        return []
    return [m.path for m in result.metadata_list]


def read_bytes(path):
    """The file's bytes, never decompressed (``FileSystems.open`` would guess from ``.gz``)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def read_text(path):
    return read_bytes(path).decode("utf-8")


def delete(paths):
    """Deletes what exists of ``paths``; missing ones are not an error."""
    for path in paths:
        with contextlib.suppress(BeamIOError, FileNotFoundError):
            FileSystems.delete([path])


def _temporary_name(path):
    return join(dirname(path), f".{basename(path)}.{secrets.token_hex(4)}.partial")


@contextlib.contextmanager
def _published(path):
    """Yields a writable stream whose content appears under ``path`` whole when the block ends without error."""
    if is_local(path):
        with fileio.atomic_path(path) as tmp, open(tmp, "wb") as stream:
            yield stream
        return
    target = path if scheme(path) in _WHOLE_ON_CLOSE else _temporary_name(path)
    try:
        with FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            yield stream
        if target != path:
            delete([path])
            FileSystems.rename([target], [path])
    except BaseException:
        if target != path:
            delete([target])
        raise


def write_bytes(path, data):
    """Writes ``data`` to ``path`` (created with its folders), published whole (see the module docstring)."""
    with _published(path) as stream:
        stream.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def publish_file(local_file, path):
    """Copies a local file to ``path`` (local or URL), published whole."""
    with open(local_file, "rb") as source, _published(path) as stream:
        shutil.copyfileobj(source, stream, _CHUNK)


def download(path, local_file):
    """Copies ``path`` (local or URL) to a local file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source, \
            open(local_file, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)
    return local_file
