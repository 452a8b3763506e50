"""Places365 layouts, class lists and the paper's split.

Three source layouts are read (``detect_layout`` picks one):

* ``standard``: the "easy format" tree ``places365_standard/{train,val}/<class>/*.jpg``,
  where a sub-category is joined by a hyphen (``field-wild`` for ``/f/field/wild``);
  nested folders (``field/wild``) are accepted too.
* ``original``: ``data_256/<letter>/<class>/*.jpg`` (or ``data_large``) and a flat
  ``val_256/`` (or ``val_large``), labelled by ``places365_train_standard.txt`` and
  ``places365_val.txt`` (``path label-index`` per line) and ``categories_places365.txt``,
  found in the source folder or its ``filelist_places365-standard/`` subfolder.
* ``folder``: any folder of images, recursive, unlabelled (label -1).
* ``classes``: a class-per-folder tree (the layout of
  ``keras.utils.image_dataset_from_directory``): the folder that holds an image
  names its class, at any depth (``<root>/<class>/*.jpg``,
  ``<root>/<collection>/train/<class>/*.jpg``, ...). A ``train`` (or ``training``)
  folder above it puts the image on the train side, a ``test``, ``val``,
  ``valid`` or ``validation`` folder on the validation side (a dataset's own
  split is kept); images with neither are split by a hash of (seed, path),
  ``val_fraction`` of them to validation. Class names are the sorted folder
  names unless a class list fixes them (and their order). A class-list line
  ``name = folder folder ...`` gathers folders of other names into one class
  (``clouds = Ac As Cb`` for a collection whose folders are cloud types).

Symbolic links to folders are followed in every layout; a folder reached a
second time (a link loop, or two links to one folder) is read once.

The paper's split (Zayd et al., Sec. 4.1): validation = the Places365 validation
images of the chosen classes (100 per class); test = ``test_per_class`` (10)
images per class held out of the training images; train = the rest. The
hold-out is chosen by a hash of (seed, file path), so it is deterministic given
the seed and does not move when other files come and go.
"""

import collections
import difflib
import hashlib
import os
import pathlib
import re
from typing import NamedTuple

from keras_colorize.inference import images

LAYOUTS = ("auto", "standard", "original", "folder", "classes")
TRAIN_SIDE_NAMES = ("train", "training")
VAL_SIDE_NAMES = ("val", "valid", "validation", "test")
SPLITS = ("train", "val", "test")
#: The photos every command reads (keras_colorize.inference.images), and GIF, which only training data may hold.
IMAGE_EXTENSIONS = tuple(sorted(images.SUPPORTED_EXTENSIONS | {".gif"}))
TRAIN_LIST = "places365_train_standard.txt"
VAL_LIST = "places365_val.txt"
CATEGORIES = "categories_places365.txt"
_FILELIST_DIRS = (".", "filelist_places365-standard")
_LETTER_PREFIX = re.compile(r"^/?[a-z]/")


class Record(NamedTuple):
    """One image to write: where to read it, its label and its provenance."""

    key: str  # absolute path (or, for generated data, the generator's key)
    label: int  # index in the class list, -1 = unlabelled
    class_name: str  # Places365 spelling, "" if unlabelled
    source: str  # path relative to the source folder


def class_key(name):
    """Layout-independent key of a class name.

    ``/f/field/wild``, ``f/field/wild``, ``field/wild`` and ``field-wild`` all give
    ``field-wild`` (no Places365 base name contains a hyphen, so this is unambiguous).
    """
    name = name.strip()
    name = _LETTER_PREFIX.sub("", name)
    return name.strip("/").replace("/", "-")


def read_class_list(path):
    """Class names, one per line (first token; ``#`` comments and blank lines skipped).

    Also reads ``categories_places365.txt`` (``name index`` lines, in index order).
    The class index used in training is the line order.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"classes file {str(path)!r} does not exist")
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    if not names:
        raise ValueError(f"classes file {str(path)!r} lists no class names")
    keys = [class_key(n) for n in names]
    dupes = sorted(k for k, c in collections.Counter(keys).items() if c > 1)
    if dupes:
        raise ValueError(f"classes file {str(path)!r} lists these classes more than once: {dupes}")
    return names


def read_class_folders(path):
    """``{class name: (folder name, ...)}`` of a class list, in its order.

    A plain line ``name`` is the folder of that name; ``name = a b c`` gathers the
    folders ``a``, ``b`` and ``c`` (at any depth, see the ``classes`` layout).
    """
    names = read_class_list(path)
    folders = {}
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            name, _, rest = line.partition("=")
            if not rest.split():
                raise ValueError(f"classes file {str(path)!r}: class {name.strip()!r} gathers no folders ({line!r})")
            folders[name.strip()] = tuple(rest.split())
    return {name: folders.get(name, (name,)) for name in names}


def read_categories(path):
    """``categories_places365.txt`` -> ``{Places365 label index: name}``, in index order."""
    rows = {}
    for line in pathlib.Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            rows[int(parts[1])] = parts[0]
    return dict(sorted(rows.items()))


def detect_layout(source):
    """``standard``, ``original`` or ``folder`` for a source folder."""
    source = pathlib.Path(source)
    if (source / "places365_standard").is_dir():
        return "standard"
    if any((source / d).is_dir() for d in ("data_256", "data_large", "val_256", "val_large")) or any(
        (source / d / TRAIN_LIST).is_file() for d in _FILELIST_DIRS
    ):
        return "original"
    if (source / "train").is_dir() or (source / "val").is_dir():
        return "standard"
    return "folder"


def _unknown_classes_error(unknown, known, where):
    hints = []
    for name in unknown[:10]:
        close = difflib.get_close_matches(class_key(name), sorted(known), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = " ..." if len(unknown) > 10 else ""
    return ValueError(f"unknown class names (not in {where}): {', '.join(hints)}{more}")


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def walk_dirs(root):
    """``os.walk(root, followlinks=True)`` that visits each real folder once.

    Hidden folders are skipped; a folder whose real path was already visited
    (a symlink loop, or two links to one folder) is not descended into again,
    and a folder that cannot be listed is skipped rather than stopping the walk.
    """
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=lambda e: None):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield dirpath, dirnames, sorted(filenames)


def _walk_images(root):
    """Image files under ``root``, recursive (symlinks followed once), sorted, as relative POSIX paths."""
    found = []
    for dirpath, _, filenames in walk_dirs(root):
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if _is_image(f):
                found.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    return sorted(found)


def _find_file(source, name, explicit=None):
    if explicit:
        if not os.path.isfile(explicit):
            raise ValueError(f"categories={explicit!r} does not exist")
        return pathlib.Path(explicit)
    for d in _FILELIST_DIRS:
        p = pathlib.Path(source) / d / name
        if p.is_file():
            return p
    return None


def _first_dir(source, names):
    for n in names:
        if (pathlib.Path(source) / n).is_dir():
            return pathlib.Path(source) / n
    return None


# ---------------------------------------------------------------------------
# Per-layout listing: {class_key: [(abs_path, rel_path), ...]} for the wanted
# classes, train or val side. Unknown classes raise before anything is read.
# ---------------------------------------------------------------------------


def _standard_class_dirs(split_dir):
    """{class_key: directory} for every folder under ``split_dir`` that holds images.

    The folder's path relative to ``split_dir`` names the class, so the easy
    format (``field-wild``), nested sub-categories (``field/wild``) and a
    letter level (``f/field/wild``) all map to the same key.
    """
    dirs = {}
    for dirpath, _, filenames in walk_dirs(split_dir):
        if dirpath != str(split_dir) and any(_is_image(f) for f in filenames):
            rel = os.path.relpath(dirpath, split_dir).replace(os.sep, "/")
            dirs[class_key(rel)] = pathlib.Path(dirpath)
    return dirs


def list_standard(source, side, class_names):
    root = pathlib.Path(source)
    if (root / "places365_standard").is_dir():
        root = root / "places365_standard"
    split_dir = root / side
    if not split_dir.is_dir():
        raise ValueError(f"source={str(source)!r} has no {side}/ folder (easy-format Places365 layout)")
    dirs = _standard_class_dirs(split_dir)
    wanted = {class_key(n): n for n in class_names}
    unknown = [n for k, n in wanted.items() if k not in dirs]
    if unknown:
        raise _unknown_classes_error(unknown, dirs.keys(), str(split_dir))
    out = {}
    for key in wanted:
        d = dirs[key]
        out[key] = [(str(d / f), str((d / f).relative_to(root))) for f in _walk_images(d) if "/" not in f]
    return out


def list_original(source, side, class_names, categories_file=None):
    source = pathlib.Path(source)
    wanted = {class_key(n): n for n in class_names}
    cat_path = _find_file(source, CATEGORIES, categories_file)
    categories = read_categories(cat_path) if cat_path else None
    if categories is not None:
        known = {class_key(n) for n in categories.values()}
        unknown = [n for k, n in wanted.items() if k not in known]
        if unknown:
            raise _unknown_classes_error(unknown, known, str(cat_path))
    out = {k: [] for k in wanted}
    if side == "train":
        list_path = _find_file(source, TRAIN_LIST)
        image_dir = _first_dir(source, ("data_256", "data_large"))
        if list_path is None or image_dir is None:
            raise ValueError(
                f"source={str(source)!r}: the original Places365 layout needs {TRAIN_LIST} "
                "and data_256/ (or data_large/)"
            )
        for line in list_path.read_text().splitlines():
            parts = line.split()
            if not parts:
                continue
            rel = parts[0].lstrip("/")
            key = class_key(os.path.dirname(parts[0]))
            if key in out:
                out[key].append((str(image_dir / rel), f"{image_dir.name}/{rel}"))
        if categories is None:
            missing = [n for k, n in wanted.items() if not out[k]]
            if missing:
                raise _unknown_classes_error(missing, {k for k, v in out.items() if v}, str(list_path))
    else:
        list_path = _find_file(source, VAL_LIST)
        image_dir = _first_dir(source, ("val_256", "val_large"))
        if list_path is None or image_dir is None or categories is None:
            raise ValueError(
                f"source={str(source)!r}: Places365 validation images need {VAL_LIST}, {CATEGORIES} "
                "and val_256/ (or val_large/)"
            )
        for line in list_path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            if int(parts[1]) not in categories:
                raise ValueError(f"{list_path}: label {parts[1]} of {parts[0]} is not in {cat_path}")
            key = class_key(categories[int(parts[1])])
            if key in out:
                out[key].append((str(image_dir / parts[0]), f"{image_dir.name}/{parts[0]}"))
    for key in out:
        out[key].sort(key=lambda item: item[1])
    return out


def _side_of(rel_path):
    """``"train"``, ``"val"`` or ``None`` (no split folder above the image) for a relative path."""
    for part in rel_path.split("/")[:-2]:
        if part.lower() in TRAIN_SIDE_NAMES:
            return "train"
        if part.lower() in VAL_SIDE_NAMES:
            return "val"
    return None


def list_class_folders(source):
    """``{class name: [(abs_path, rel_path), ...]}`` of a class-per-folder tree (the ``classes`` layout).

    The class of an image is the name of the folder that holds it; images
    directly in ``source`` have none and are left out.
    """
    root = pathlib.Path(source)
    out = {}
    for rel in _walk_images(root):
        parts = rel.split("/")
        if len(parts) < 2:
            continue
        out.setdefault(parts[-2], []).append((str(root / rel), rel))
    return out


def class_folder_names(source):
    """Sorted class names of a class-per-folder tree (what ``make_shards`` writes as ``classes.txt``)."""
    return sorted(list_class_folders(source))


def _hash_fraction(seed, rel_path):
    return int(_holdout_rank(seed, rel_path)[:8], 16) / 0x100000000


def split_class_folders(by_class, class_names, split, *, val_fraction, test_per_class, seed):
    """The ``classes`` layout's split: folder sides first, then a seeded hash for the rest.

    ``val``: images under a val/test folder, plus ``val_fraction`` of the images
    with no split folder. ``train``: the rest of the train side, less
    ``test_per_class`` images per class held out as ``test``.
    """
    records = []
    for label, name in enumerate(class_names):
        train_side, val_side = [], []
        for item in by_class.get(name, []):
            side = _side_of(item[1]) or ("val" if _hash_fraction(seed, item[1]) < val_fraction else "train")
            (val_side if side == "val" else train_side).append(item)
        if split == "val":
            items = val_side
        else:
            ranked = sorted(train_side, key=lambda item: _holdout_rank(seed, item[1]))
            held = {rel for _, rel in ranked[:test_per_class]}
            items = [it for it in train_side if (it[1] in held) == (split == "test")]
        records.extend(Record(path, label, name, rel) for path, rel in sorted(items, key=lambda it: it[1]))
    return records


def _holdout_rank(seed, rel_path):
    return hashlib.sha1(f"{seed}:{rel_path}".encode()).hexdigest()


def split_records(by_class, class_names, split, test_per_class, seed):
    """Applies the paper's split to per-class file lists and attaches labels.

    Args:
      by_class: ``{class_key: [(abs_path, rel_path), ...]}`` of the train side
        (for ``train``/``test``) or the val side (for ``val``).
      class_names: the class list; label = position in it.
      split: ``train``, ``val`` or ``test``.
      test_per_class: images per class held out of training as the test split.
      seed: hold-out seed.

    Returns:
      list of :class:`Record`, in class order then path order.
    """
    records = []
    for label, name in enumerate(class_names):
        items = by_class[class_key(name)]
        if split != "val":
            ranked = sorted(items, key=lambda item: _holdout_rank(seed, item[1]))
            held = {rel for _, rel in ranked[:test_per_class]}
            items = [it for it in items if (it[1] in held) == (split == "test")]
        records.extend(Record(path, label, name, rel) for path, rel in items)
    return records


def list_records(source, split, layout="auto", class_names=None, test_per_class=10, seed=0, categories_file=None,
                 val_fraction=0.1, class_folders=None):
    """All records of one split of a source folder.

    Args:
      source: folder to read.
      split: ``train``, ``val`` or ``test``.
      layout: one of ``LAYOUTS``; ``auto`` uses :func:`detect_layout`.
      class_names: class list (required for the Places365 layouts; ignored for ``folder``).
      test_per_class: held-out images per class (``test``) removed from ``train``.
      seed: hold-out seed.
      categories_file: ``categories_places365.txt`` if it is not in the source folder.
      val_fraction: ``classes`` layout: share of the images outside any
        train/val/test folder that goes to validation.
      class_folders: ``classes`` layout: ``{class: (folder, ...)}``
        (:func:`read_class_folders`); None = each class is its own folder.

    Returns:
      ``(layout, records)``.

    Raises:
      ValueError: missing source, bad layout/split, unknown class names.
    """
    if not source or not os.path.isdir(source):
        raise ValueError(f"source={source!r} is not an existing folder")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if test_per_class < 0:
        raise ValueError(f"test_per_class must be >= 0, got {test_per_class}")
    if layout == "auto":
        layout = detect_layout(source)
    if layout == "folder":
        root = pathlib.Path(source)
        return layout, [Record(str(root / rel), -1, "", rel) for rel in _walk_images(root)]
    if layout == "classes":
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        by_class = list_class_folders(source)
        if not by_class:
            raise ValueError(f"source={str(source)!r} has no class folders with images (layout 'classes')")
        if class_folders:
            unknown = sorted({f for fs in class_folders.values() for f in fs} - set(by_class))
            if unknown:
                raise _unknown_classes_error(unknown, by_class.keys(), str(source))
            by_class = {name: [item for f in fs for item in by_class[f]] for name, fs in class_folders.items()}
            class_names = class_names or list(class_folders)
        names = list(class_names) if class_names else sorted(by_class)
        unknown = [n for n in names if n not in by_class]
        if unknown:
            raise _unknown_classes_error(unknown, by_class.keys(), str(source))
        return layout, split_class_folders(by_class, names, split, val_fraction=val_fraction,
                                           test_per_class=test_per_class, seed=seed)
    if not class_names:
        raise ValueError(f"the {layout!r} Places365 layout needs a class list (--classes)")
    side = "val" if split == "val" else "train"
    if layout == "standard":
        by_class = list_standard(source, side, class_names)
    else:
        by_class = list_original(source, side, class_names, categories_file)
    return layout, split_records(by_class, class_names, split, test_per_class, seed)
