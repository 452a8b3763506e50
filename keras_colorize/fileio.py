"""Atomic file writing: a file appears under its final name complete, or not at all.

Every writer in the package (shards' side files, images, exports, reports,
run summaries) goes through here, so a killed process never leaves a
truncated file behind a name that a rerun would trust.

Permissions: files come out as any new file would (``0666`` less the umask,
so ``0644`` under the usual umask 022), not ``0600`` as
``tempfile.mkstemp`` would leave them.

Temporary names start with a dot and contain ``.partial``:
``.<name>.<random>.partial`` (:func:`atomic_path`), or
``.<stem>.<random>.partial<suffix>`` with ``keep_suffix=True`` for writers
that choose the format from the file name's extension (``model.save`` of
Keras 3 wants ``.keras``; FFmpeg / PyAV pick the container from ``.mp4``).
:func:`is_partial` recognises both; :func:`remove_partials` deletes those a
killed run left behind.
"""

import contextlib
import os
import pathlib
import re
import secrets

_PARTIAL = re.compile(r"^\..+\.partial(\.[A-Za-z0-9]{1,16})?$")


def _create_temp(folder, prefix, suffix):
    """Creates a new empty file ``folder/prefix<random>suffix``; mode 0666 less the umask."""
    for _ in range(100):
        name = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return name
    raise FileExistsError(f"cannot create a temporary file in {folder}")


@contextlib.contextmanager
def atomic_path(path, *, keep_suffix=False):
    """Yields a hidden temporary path beside ``path``; renamed onto ``path`` on success.

    The temporary name starts with a dot and ends in ``.partial`` (or, with
    ``keep_suffix=True``, in ``.partial`` plus ``path``'s own suffix, for
    writers that pick the format by extension), so globs such as
    ``train-*`` never match it. On any exception it is removed and ``path``
    is left as it was. The file gets the permissions of any new file (the
    umask applies).

    Example:
      >>> with atomic_path("out/grid.png") as tmp:
      ...     image.save(tmp, format="PNG")
      >>> with atomic_path("runs/p1/model.keras", keep_suffix=True) as tmp:
      ...     model.save(tmp)          # tmp ends in ".keras"
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_suffix and path.suffix:
        tmp = _create_temp(path.parent, f".{path.stem}.", f".partial{path.suffix}")
    else:
        tmp = _create_temp(path.parent, f".{path.name}.", ".partial")
    try:
        yield tmp
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


def is_partial(path):
    """True for a temporary file name of :func:`atomic_path` (either form)."""
    return bool(_PARTIAL.match(pathlib.Path(path).name))


def remove_partials(folder):
    """Deletes the temporary files a killed run left anywhere under ``folder``; returns how many."""
    folder = pathlib.Path(folder)
    count = 0
    if folder.is_dir():
        for stale in folder.rglob(".*"):
            if is_partial(stale) and stale.is_file():
                stale.unlink(missing_ok=True)
                count += 1
    return count


def check_writable_dir(folder, what="output"):
    """Creates ``folder`` if needed and proves it writable by creating and removing a probe file.

    A permission bit check is not enough (root ignores them; a read-only
    mount or a full disk does not show in the bits), so this really writes.

    Raises:
      ValueError: ``<what> '<folder>' is not writable (<reason>)``.
    """
    folder = pathlib.Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = _create_temp(folder, ".write-probe.", ".partial")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{what} {str(folder)!r} is not writable ({e.strerror or e})") from e
    return folder


def is_case_insensitive(folder):
    """True if names in the existing ``folder`` ignore case (macOS and Windows defaults, FAT/exFAT drives).

    Found by creating a probe file and looking it up under its upper-case name.
    """
    folder = pathlib.Path(folder)
    probe = _create_temp(folder, ".case-probe.", ".partial")
    try:
        return (folder / probe.name.upper()).exists()
    finally:
        probe.unlink(missing_ok=True)
