"""Models that ship inside the package, selected by name.

Every command that takes a model (``colorize``, ``colorize_video``,
``evaluate``, both exporters, the LiteRT runner) and
``keras_colorize.Colorizer(...)`` accept one of :data:`NAMES` where they
accept a model path (one resolver for all:
:func:`keras_colorize.inference.model_spec.locate`); ``colorize`` and ``colorize_video`` use
:data:`DEFAULT` when no model is given. A name is looked up here first, so a
file that happens to be called ``scenes`` in the working directory needs a
path (``./scenes``).

The released model and its card (``<name>.md`` beside it: training data,
licence, command, metrics, limits) are package data, installed by
``pip install`` with the code.

Licence: the ``scenes`` model was trained on photographs released for research
and non-commercial use only (see its card); it inherits that restriction.

Example::

    from keras_colorize import pretrained
    pretrained.path_of("scenes")        # .../keras_colorize/pretrained/scenes.keras
"""

import dataclasses
import pathlib

_HERE = pathlib.Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Released:
    """One bundled model: its file, card and class list inside this folder."""

    name: str
    filename: str
    card: str
    classes: str
    licence: str


RELEASED = {
    "scenes": Released(
        name="scenes",
        filename="scenes.keras",
        card="scenes.md",
        classes="scenes_classes.txt",
        licence=("research and non-commercial use only (trained on photographs published without an open "
                 "licence: Intel Image Classification and a SUN-database subset)"),
    ),
    "scenes_guided": Released(
        name="scenes_guided",
        filename="scenes_guided.keras",
        card="scenes_guided.md",
        classes="scenes_guided_classes.txt",
        licence=("research and non-commercial use only (trained on photographs published without an open "
                 "licence: Intel Image Classification, a SUN-database subset, CCSN clouds, Pexels, Day-Dusk-Night)"),
    ),
}
#: Names accepted wherever a model path is.
NAMES = tuple(RELEASED)
#: The model ``colorize`` and ``colorize_video`` use when ``--model`` is not given and no hints are.
DEFAULT = "scenes"
#: The bundled model that takes colour hints and a reference photo: the default of ``kc-studio``, and of
#: ``colorize`` and ``colorize_video`` when they are given hints, sidecars or a reference but no ``--model``.
GUIDED = "scenes_guided"


def default_model(guided):
    """The bundled model to use when the user named none: :data:`GUIDED` if there are hints, else :data:`DEFAULT`."""
    return GUIDED if guided else DEFAULT

#: One line for ``--help`` texts of every command that takes ``--model``.
MODEL_HELP = (f"a bundled model name ({', '.join(NAMES)}; default of colorize and colorize_video: {DEFAULT}, or "
              f"{GUIDED} when hints are given; {RELEASED[DEFAULT].licence}), or a path")


def is_name(spec):
    """True if ``spec`` names a bundled model."""
    return isinstance(spec, str) and spec in RELEASED


def path_of(name):
    """Absolute path of a bundled model's ``.keras`` file; ValueError if it is not installed."""
    if name not in RELEASED:
        raise ValueError(f"model={name!r} is not a bundled model name (bundled: {', '.join(NAMES)})")
    path = _HERE / RELEASED[name].filename
    if not path.is_file():
        raise ValueError(f"the bundled model {name!r} is missing from this installation ({path}); "
                         "reinstall keras_colorize or pass a model path")
    return path


def card_path(name):
    """Path of a bundled model's model card (Markdown)."""
    return _HERE / RELEASED[name].card


def classes_path(name):
    """Path of a bundled model's class list (line order = class index)."""
    return _HERE / RELEASED[name].classes
