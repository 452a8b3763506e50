"""Where a model spec points: a bundled name or a path, checked before anything is loaded.

Every command and library entry that takes a model (``--model``, ``Colorizer(...)``,
``--init_from``, the exporters, the LiteRT runner, evaluation, the user study)
resolves it here, so they accept the same things and refuse the same things with
the same message. No TensorFlow is imported: commands check their input before
paying for it.
"""

import os
import pathlib

from keras_colorize import pretrained

#: Model kinds a caller may accept.
KERAS = "keras"            # a .keras (or legacy .h5) file
SAVED_MODEL = "saved_model"  # a SavedModel folder
TFLITE = "tflite"          # a .tflite file

KERAS_SUFFIXES = (".keras", ".h5")

_KIND_WORDS = {KERAS: "a .keras file", SAVED_MODEL: "a SavedModel folder", TFLITE: "a .tflite file"}


def locate(spec, kinds=(KERAS, SAVED_MODEL), label="model "):
    """The checked path of ``spec``: a bundled model name (its installed file) or an existing path of one of ``kinds``.

    Args:
      spec: a bundled model name (:data:`keras_colorize.pretrained.NAMES`) or a path.
      kinds: the kinds the caller can use (:data:`KERAS`, :data:`SAVED_MODEL`, :data:`TFLITE`).
      label: what the message calls the spec (``"model "``, ``"model x="``, ``"--init_from="``).

    Returns:
      ``pathlib.Path``. A bundled name resolves to its ``.keras`` file, which every
      caller that accepts :data:`KERAS` can use; a caller that accepts only
      :data:`TFLITE` gets the bundled ``.keras`` file too and converts it.

    Raises:
      ValueError: naming the spec: empty, a bundled name missing from this
        installation, a path that does not exist, or a path of another kind.
    """
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise ValueError(f"{label}{spec!r}: give a bundled model name ({', '.join(pretrained.NAMES)}) or a path")
    spec = os.fspath(spec)
    if pretrained.is_name(spec):
        return pretrained.path_of(spec)  # ValueError naming the bundled model if it is not installed
    path = pathlib.Path(spec).expanduser()
    if not path.exists():
        raise ValueError(f"{label}{spec!r} does not exist (bundled model names: {', '.join(pretrained.NAMES)})")
    if path.is_dir():
        if SAVED_MODEL in kinds and (path / "saved_model.pb").is_file():
            return path
        what = "a folder without saved_model.pb (not a SavedModel)" if SAVED_MODEL in kinds else "a folder"
    elif KERAS in kinds and path.suffix in KERAS_SUFFIXES or TFLITE in kinds and path.suffix == ".tflite":
        return path
    else:
        what = f"a {path.suffix or 'suffix-less'} file"
    wanted = " or ".join(_KIND_WORDS[kind] for kind in kinds)
    raise ValueError(f"{label}{spec!r} is {what}; it must be a bundled model name ({', '.join(pretrained.NAMES)}) "
                     f"or {wanted}")
