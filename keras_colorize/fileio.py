"""Atomic file writing: a file appears under its final name complete, or not at all.

Every writer in the package (TFRecord shards and their side files, images,
``.keras`` models and ``.weights.h5`` ports, films, exports, reports, run
summaries) goes through here, so a killed process never leaves a truncated
file behind a name that a rerun would trust.

Permissions: files come out as any new file would (``0666`` less the umask,
so ``0644`` under the usual umask 022), not ``0600`` as
``tempfile.mkstemp`` would leave them.

Temporary names start with a dot and contain ``.partial``:
``.<name>.<random>.partial`` (:func:`atomic_path`), or
``.<stem>.<random>.partial<suffix>`` with ``keep_suffix`` for writers
that choose the format from the file name's extension (``model.save`` of
Keras 3 wants ``.keras``, ``save_weights`` ``.weights.h5``; FFmpeg / PyAV
pick the container from ``.mp4``). :func:`is_partial` recognises both;
:func:`partials_of` finds those of one file and :func:`remove_partials`
those under a folder that a killed run left behind.

Not covered here: folders published whole (a SavedModel version is staged
in a hidden folder and renamed, :mod:`keras_colorize.export.saved_model`)
and files whose writer publishes them itself (TensorFlow checkpoints).
"""

import contextlib
import os
import pathlib
import re
import secrets

_PARTIAL = re.compile(r"^\..+\.partial((\.[A-Za-z0-9]{1,16}){1,2})?$")


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


def _kept_suffix(path, keep_suffix):
    """The suffix a temporary name of ``path`` keeps ("" for none)."""
    if keep_suffix is True:
        return path.suffix
    if not keep_suffix:
        return ""
    if not (isinstance(keep_suffix, str) and keep_suffix.startswith(".") and path.name.endswith(keep_suffix)
            and len(path.name) > len(keep_suffix)):
        raise ValueError(f"keep_suffix must be True or an ending of the file name {path.name!r} "
                         f"such as '.weights.h5', got {keep_suffix!r}")
    return keep_suffix


@contextlib.contextmanager
def atomic_path(path, *, keep_suffix=False):
    """Yields a hidden temporary path beside ``path``; renamed onto ``path`` on success.

    The temporary name starts with a dot and ends in ``.partial`` (or, with
    ``keep_suffix``, in ``.partial`` plus the kept suffix, for writers that
    pick the format by extension), so globs such as ``train-*`` never match
    it. On any exception it is removed and ``path`` is left as it was. The
    file gets the permissions of any new file (the umask applies).

    Args:
      path: the final file name; its folder is created if needed.
      keep_suffix: True keeps ``path``'s last suffix (``.keras``, ``.mp4``);
        a string keeps that ending of the name, for writers that check a
        double suffix (``".weights.h5"``).

    Example:
      >>> with atomic_path("out/grid.png") as tmp:
      ...     image.save(tmp, format="PNG")
      >>> with atomic_path("runs/p1/best.keras", keep_suffix=True) as tmp:
      ...     model.save(tmp)          # tmp ends in ".keras"
      >>> with atomic_path("enc.weights.h5", keep_suffix=".weights.h5") as tmp:
      ...     encoder.save_weights(tmp)
    """
    path = pathlib.Path(path)
    suffix = _kept_suffix(path, keep_suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix:
        tmp = _create_temp(path.parent, f".{path.name[:-len(suffix)]}.", f".partial{suffix}")
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


def partials_of(path):
    """The temporary files of :func:`atomic_path` for ``path`` (either form) that exist beside it.

    A killed run leaves them; a rerun writing the same file deletes them
    first. Other files' temporaries in the same folder are not included.
    """
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        return []
    found = []
    for candidate in path.parent.glob(".*.partial*"):
        name = candidate.name
        if not (is_partial(candidate) and candidate.is_file()):
            continue
        head, _, tail = name[1:].rpartition(".partial")
        stem = head.rpartition(".")[0]  # drops the random part
        if stem + tail == path.name:
            found.append(candidate)
    return sorted(found)


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
