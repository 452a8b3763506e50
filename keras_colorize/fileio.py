"""Atomic file writing: a file appears under its final name complete, or not at all.

Every writer in the package (shards' side files, images, exports, reports,
run summaries) goes through here, so a killed process never leaves a
truncated file behind a name that a rerun would trust.
"""

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a hidden temporary path beside ``path``; renamed onto ``path`` on success.

    The temporary name starts with a dot and ends in ``.partial``, so globs
    such as ``train-*`` never match it. On any exception it is removed and
    ``path`` is left as it was.

    Example:
      >>> with atomic_path("out/grid.png") as tmp:
      ...     image.save(tmp, format="PNG")
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` atomically; returns ``path`` as a ``pathlib.Path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return pathlib.Path(path)


def atomic_write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a ``pathlib.Path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
