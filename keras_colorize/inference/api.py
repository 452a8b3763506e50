"""Colorize photographs at full resolution with a trained model: the Python API.

The network sees a fixed square input (256 px in the paper). Like Zhang et al.
(2016) and DeOldify, :class:`Colorizer` therefore

1. computes CIE L* of the whole image at its own resolution,
2. resizes L* (antialiased) to the model's input size and predicts a*b*,
3. upsamples the predicted a*b* bilinearly to the original size and merges it
   with the original full-resolution L*,

so the output has exactly the input's size, and all its detail comes from the
input. Colours that fall outside sRGB are desaturated towards the gray of the
same luminance instead of being clipped channel by channel, so the output's
L* equals the input's (up to 8-bit rounding) even where the model asks for an
impossible colour.

The full-resolution steps (:mod:`keras_colorize.inference.merge`) run as
XLA-compiled kernels over fixed-size chunks of pixels (compiled once per model
input size, whatever the image size), so a 12-megapixel photo costs a fraction
of a second and its memory is a few copies of the image.

Example::

    from keras_colorize import Colorizer
    colorizer = Colorizer.from_path("runs/demo/best.keras")
    colorized = colorizer.colorize(PIL.Image.open("scan.jpg"))   # PIL in, PIL out
    arrays = colorizer.colorize_batch([gray_uint8_array, rgba_uint16_array])
"""

import dataclasses
import os
import types
import zipfile
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_colorize import color
from keras_colorize.guidance import hint_file
from keras_colorize.guidance import spec
from keras_colorize.inference import images
from keras_colorize.inference import merge
from keras_colorize.inference import model_spec
from keras_colorize.models import model_contract


# ----------------------------------------------------------------------------
# Model wrappers
# ----------------------------------------------------------------------------


class _KerasPredictor:
    """Calls a ``keras.Model`` that fits the contract; a guided model gets ``{"L", "hints", "reference"}``."""

    def __init__(self, model, name=None):
        contract = check_model_contract(model)
        self.image_size = size = contract.image_size
        self.guided = contract.guided
        self.name = name or getattr(model, "name", "keras.Model")
        self.model = model
        ab_key = contract.ab_key

        def ab_of(outputs):
            if isinstance(outputs, dict):
                return outputs[ab_key]
            return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

        l_spec = tf.TensorSpec([None, size, size, 1], tf.float32)
        if self.guided:
            @tf.function(input_signature=[l_spec, tf.TensorSpec([None, size, size, spec.HINT_CHANNELS], tf.float32),
                                          tf.TensorSpec([None, spec.REFERENCE_SIZE], tf.float32)])
            def predict(l_input, hints, reference):
                return ab_of(model({spec.L_INPUT: l_input, spec.HINTS_INPUT: hints, spec.REFERENCE_INPUT: reference},
                                   training=False))
        else:
            @tf.function(input_signature=[l_spec])
            def predict(l_input):
                return ab_of(model(l_input, training=False))

        self._predict = predict
        self.batch_dim = None

    def __call__(self, l_input, hints=None, reference=None):
        """``(B, S, S, 1)`` L/100 (a guided model: with ``(B, S, S, 3)`` hints, ``(B, R)`` reference) -> a*b*."""
        if not self.guided:
            return self._predict(tf.constant(l_input, tf.float32)).numpy()
        return self._predict(tf.constant(l_input, tf.float32), tf.constant(hints, tf.float32),
                             tf.constant(reference, tf.float32)).numpy()


def _guided_signature(fn):
    """The :class:`model_contract.Contract` of a SavedModel signature taking ``L``, ``hints``, ``reference``.

    Raises:
      ValueError: the signature takes something else (the caller names it).
    """
    specs = fn.structured_input_signature[1]
    names = (spec.L_INPUT, spec.HINTS_INPUT, spec.REFERENCE_INPUT)
    if sorted(specs) != sorted(names) or fn.structured_input_signature[0]:
        raise ValueError(f"must take L, hints and reference, takes {sorted(specs)}")
    l_only = types.SimpleNamespace(structured_input_signature=((), {spec.L_INPUT: specs[spec.L_INPUT]}),
                                   structured_outputs=fn.structured_outputs)
    contract = model_contract.check_signature(l_only)
    size = contract.image_size
    hints = tuple(specs[spec.HINTS_INPUT].shape.as_list())
    if hints[1:] != (size, size, spec.HINT_CHANNELS):
        raise ValueError(f"input hints must be (batch, {size}, {size}, {spec.HINT_CHANNELS}), got {hints}")
    reference = tuple(specs[spec.REFERENCE_INPUT].shape.as_list())
    if reference[1:] != (spec.REFERENCE_SIZE,):
        raise ValueError(f"input reference must be (batch, {spec.REFERENCE_SIZE}), got {reference}")
    return dataclasses.replace(contract, guided=True)


class _SavedModelPredictor:
    """Calls the SavedModel signature that fits the model contract (float (B, S, S, 1) L in, ab out).

    A guided export (``keras_colorize.export``: ``colorize_l_guided``, or a tensor-only
    ``serving_default``, taking ``L``, ``hints`` and ``reference``) is preferred, so hints reach
    the model; otherwise the first signature on L alone (``serving_default`` first).
    """

    def __init__(self, path):
        self._loaded = tf.saved_model.load(str(path))
        self.name = str(path)
        names = sorted(self._loaded.signatures, key=lambda k: (k != "serving_default", k))
        reasons = []
        for guided in (True, False):
            for key in names:
                fn = self._loaded.signatures[key]
                try:
                    contract = _guided_signature(fn) if guided else model_contract.check_signature(fn)
                except ValueError as e:
                    if not guided:
                        reasons.append(f"{key}: {e}")
                    continue
                specs = fn.structured_input_signature[1]
                self._fn, self.signature, self._ab_key, self.guided = fn, key, contract.ab_key, guided
                self._args = {name: specs[name] for name in ((spec.L_INPUT, spec.HINTS_INPUT, spec.REFERENCE_INPUT)
                                                             if guided else specs)}
                self.image_size = contract.image_size
                self.batch_dim = contract.batch_size
                return
        raise ValueError(f"model path {str(path)!r}: no SavedModel signature fits the colorizer contract "
                         f"(one float (batch, S, S, 1) L input, S a multiple of {model_contract.STRIDE}, "
                         f"an 'ab' (batch, S, S, 2) output): " + ("; ".join(reasons) or "it has no signatures"))

    def __call__(self, l_input, hints=None, reference=None):
        feeds = [l_input] + ([hints, reference] if self.guided else [])
        if self.batch_dim is not None and l_input.shape[0] != self.batch_dim:
            parts = []
            for i in range(0, l_input.shape[0], self.batch_dim):
                pieces = [x[i:i + self.batch_dim] for x in feeds]
                pad = self.batch_dim - pieces[0].shape[0]
                if pad:
                    pieces = [np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) for x in pieces]
                parts.append(self._call(*pieces)[:self.batch_dim - pad])
            return np.concatenate(parts)
        return self._call(*feeds)

    def _call(self, *feeds):
        inputs = {name: tf.constant(value, spec_.dtype) for (name, spec_), value in zip(self._args.items(), feeds)}
        outputs = self._fn(**inputs)
        return outputs[self._ab_key].numpy().astype(np.float32)


def check_model_contract(model):
    """Checks a ``keras.Model`` against the colorizer contract; see :mod:`keras_colorize.models.model_contract`.

    Returns the :class:`keras_colorize.models.model_contract.Contract` (``image_size``,
    ``ab_key``, ``num_classes``); raises ``ValueError`` saying what does not fit.
    """
    return model_contract.check_model_contract(model)


def _one_line(text):
    return " ".join(str(text).split())


def _load_keras_file(path):
    """A ``keras.Model`` from a ``.keras`` / ``.h5`` file; ValueError for a file that is not one."""
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise ValueError(f"model path {str(path)!r}: not a valid Keras model file "
                         f"({'empty file, 0 bytes' if size == 0 else f'{size} bytes, not a zip archive'})")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".h5" and head != b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"model path {str(path)!r}: not a valid Keras model file (not an HDF5 file)")
    import keras  # noqa: PLC0415

    import keras_colorize.models  # noqa: F401,PLC0415 - registers the custom layers

    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"model path {str(path)!r}: not a valid Keras model file "
                         f"({type(e).__name__}: {_one_line(e)[:300]})") from e


def load_keras_model(spec, with_path=False):
    """A contract-checked ``keras.Model`` from a bundled name or a ``.keras`` / ``.h5`` path (for the exporters).

    Same checks and messages as :func:`load_predictor`: a missing path, a
    name that is not installed, a file that is not a Keras model ("not a
    valid Keras model file (...)"), a model that does not fit the contract.
    """
    path = model_spec.locate(spec, kinds=(model_spec.KERAS,))
    model = _load_keras_file(path)
    try:
        check_model_contract(model)
    except ValueError as e:
        raise ValueError(f"model path {str(path)!r}: {e}") from e
    return (model, path) if with_path else model


def load_predictor(model):
    """A callable ``(B, S, S, 1) L/100 -> (B, S, S, 2) ab target`` with ``.image_size``.

    The model is checked against the colorizer contract
    (:mod:`keras_colorize.models.model_contract`) here, before any image is read.

    Args:
      model: a ``keras.Model`` (e.g. from ``build_colorizer``), a bundled
        model name (:data:`keras_colorize.pretrained.NAMES`, e.g.
        ``"scenes"``), a path to a ``.keras`` file, or a path to a SavedModel
        directory.

    Raises:
      ValueError: a missing path, a name that is not installed, a file that is
        not a Keras model, a folder that is not a SavedModel, or a model that
        does not fit the contract.
    """
    if isinstance(model, (str, os.PathLike)):
        path = model_spec.locate(model)
        if path.is_dir():
            return _SavedModelPredictor(path)
        loaded = _load_keras_file(path)
        try:
            return _KerasPredictor(loaded, name=str(path))
        except ValueError as e:
            raise ValueError(f"model path {str(path)!r}: {e}") from e
    if hasattr(model, "inputs") and callable(model):
        return _KerasPredictor(model)
    raise ValueError(f"model must be a keras.Model, a bundled model name or a path, got {type(model).__name__}")


# ----------------------------------------------------------------------------
# The public API
# ----------------------------------------------------------------------------


class Guidance(NamedTuple):
    """What a guided model gets for one photo, on the model's grid.

    Attributes:
      hint_map: ``(S, S, 3)`` float32 (a*/128, b*/128, mask), or None for none.
      reference: ``(R,)`` float32 reference input, or None for none.
      saturation: factor on the predicted a*b* about gray (1 = as predicted).
    """

    hint_map: np.ndarray | None = None
    reference: np.ndarray | None = None
    saturation: float = 1.0

    @property
    def guides(self):
        return self.hint_map is not None or self.reference is not None


def _saturate(ab_target, factor):
    """a*b* (target units) scaled by ``factor`` about gray (the hint file's ``saturation``)."""
    if factor == 1.0:
        return ab_target
    gray = np.float32(color.GRAY_TARGET)
    return (gray + np.float32(factor) * (np.asarray(ab_target, np.float32) - gray)).astype(np.float32)


class Colorizer:
    """Full-resolution colorization of photographs with a trained model.

    Args:
      model: a ``keras.Model`` (``build_colorizer(...)``), a bundled model
        name (``"scenes"``, see :mod:`keras_colorize.pretrained`), a
        ``.keras`` path or a SavedModel folder (see :func:`load_predictor`).
      batch_size: images per network call in :meth:`colorize_batch`.

    Gray, RGB (re-colorized from its own L*), RGBA (alpha kept), 8- and 16-bit
    inputs are accepted; the output has the input's size.

    Guided models (``hints=True``; Zhang et al. 2017, "Real-Time User-Guided Image
    Colorization with Learned Deep Priors") take colour hints: ``hints=`` is a hint file
    (:mod:`keras_colorize.guidance.hint_file`) as a :class:`~keras_colorize.guidance.hint_file.Hints`,
    its JSON as a dict, or its path; ``reference=`` a reference photo (path, ``PIL.Image`` or
    array) whose palette steers every image whose hints name none. Without hints a guided
    model colorizes automatically (zero hints). A SavedModel takes hints when it was exported
    with its guided signatures (``keras_colorize.export``). Hints for a model without hint
    inputs raise :class:`~keras_colorize.guidance.hint_file.NoHintInputsError` (a ``ValueError``).

    Example::

        colorizer = Colorizer.from_path("runs/p1/best.keras")
        out = colorizer.colorize(np.asarray(PIL.Image.open("scan.png")))  # (H, W, 3) uint8
        guided = Colorizer("runs/guided/best.keras")
        out = guided.colorize("scan.jpg", hints={"version": 1, "units": "fraction",
                                                 "points": [{"x": 0.5, "y": 0.1, "color": "#e07020"}]})
        out = guided.colorize("scan.jpg", hints="scan.jpg.hints.json", reference="sunset.jpg")
    """

    def __init__(self, model, *, batch_size=8):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self._predictor = load_predictor(model)
        self.image_size = self._predictor.image_size
        self.batch_size = batch_size

    @classmethod
    def from_path(cls, path, **kwargs):
        """Loads a bundled model by name (``"scenes"``), a ``.keras`` file or a SavedModel folder."""
        return cls(path, **kwargs)

    @property
    def guided(self):
        """Whether the model takes hints (the ``hints`` and ``reference`` inputs)."""
        return bool(getattr(self._predictor, "guided", False))

    @property
    def model_name(self):
        """The model as the user named it (a path or the Keras model's name), for messages."""
        predictor = self._predictor
        return str(getattr(predictor, "name", None) or getattr(predictor, "_path", None) or "the model")

    def _no_hint_inputs(self, what="hints and reference photos"):
        return hint_file.NoHintInputsError(hint_file.no_hint_inputs_message(self.model_name, what))

    # -- low level, shared with evaluation and film --------------------------

    def predict_ab(self, l_small, hints=None, reference=None):
        """``(B, S, S, 1)`` L/100 at the model size -> ``(B, S, S, 2)`` a*b* target units.

        Args:
          l_small: ``(B, S, S, 1)`` L/100.
          hints: a guided model's hint maps ``(B, S, S, 3)``
            (:func:`keras_colorize.guidance.hint_ops.paint_hints`), or None (zeros).
          reference: a guided model's reference inputs ``(B, R)``, or None (zeros).

        Raises:
          NoHintInputsError: hints or a reference for a model without hint inputs.
        """
        l_small = np.asarray(l_small, np.float32)
        size = self.image_size
        if l_small.ndim != 4 or l_small.shape[1:] != (size, size, 1):
            raise ValueError(f"l_small must have shape (B, {size}, {size}, 1), got {l_small.shape}")
        if not self.guided:
            if hints is not None or reference is not None:
                raise self._no_hint_inputs()
            feeds = [l_small]
        else:
            count = len(l_small)
            feeds = [l_small, _batch_input("hints", hints, (count, size, size, spec.HINT_CHANNELS)),
                     _batch_input("reference", reference, (count, spec.REFERENCE_SIZE))]
        step = self.batch_size
        outs = [self._predictor(*(x[i:i + step] for x in feeds)) for i in range(0, len(l_small), step)]
        return np.concatenate(outs) if outs else np.zeros((0, size, size, 2), np.float32)

    def guidance_inputs(self, hints, width, height, reference=None):
        """The :class:`Guidance` of one ``width`` x ``height`` photo.

        Args:
          hints: None, a :class:`~keras_colorize.guidance.hint_file.Hints`, a dict or a hint file path.
          reference: the reference for a photo whose hints name none: None, a photo (path,
            ``PIL.Image``, array) or an ``(R,)`` reference input.

        Raises:
          HintFileError: a bad hint file, a point outside the photo, a reference that is not an image.
          NoHintInputsError: points or a reference for a model without hint inputs.
        """
        hints = None if hints is None else hint_file.Hints.load(hints)
        if (hints is None or not hints.guides) and reference is None:
            return Guidance(saturation=1.0 if hints is None else hints.saturation)
        if not self.guided:
            raise self._no_hint_inputs()
        reference = None if reference is None else _reference_vector(reference)
        if hints is None:
            return Guidance(None, reference)
        hint_map, own = hint_file.model_inputs(hints, width, height, self.image_size)
        return Guidance(hint_map if hints.points else None,
                        own if hints.reference is not None else reference, hints.saturation)

    def colorize_pictures(self, pictures, hints=None, reference=None):
        """Colorizes :class:`keras_colorize.inference.images.Picture` objects.

        Args:
          pictures: the pictures.
          hints: None, or one entry per picture: None, a :class:`Guidance`, or a hint file
            (``Hints``, dict or path; see :meth:`colorize`).
          reference: a reference photo for every picture whose hints name none (see :meth:`colorize`).

        Returns:
          list of ``(rgb, alpha)``: rgb ``(H, W, 3)`` in the picture's bit depth
          (uint8 or uint16), alpha as given (or None).
        """
        guidance = self._guidance_list(pictures, hints, reference)
        results = []
        for i in range(0, len(pictures), self.batch_size):
            chunk = pictures[i:i + self.batch_size]
            rgb = self.colorize_lightness([merge.lightness(p.pixels) for p in chunk], guidance[i:i + self.batch_size],
                                          dtypes=[p.pixels.dtype.type for p in chunk])
            results.extend(zip(rgb, (p.alpha for p in chunk)))
        return results

    def colorize_lightness(self, l_full, guidance=None, adjust_ab=None, dtypes=None):
        """Full-resolution RGB for full-resolution L* arrays, in one network batch (the step under photos and film).

        Args:
          l_full: list of ``(H, W)`` L* arrays (:func:`keras_colorize.inference.merge.lightness`), any sizes.
          guidance: None, or one :class:`Guidance` (or None) per image.
          adjust_ab: optional ``f(l_small, ab_small) -> ab_small`` applied at the model's resolution before
            the merge, image by image in order (the film's temporal smoothing).
          dtypes: None (uint8), or one output dtype per image (uint8 or uint16).

        Returns:
          list of ``(H, W, 3)`` RGB arrays.
        """
        l_small = np.stack([merge.model_input(l, self.image_size) for l in l_full])
        ab = self.predict_guided(l_small, guidance or [None] * len(l_full))
        if adjust_ab is not None:
            ab = [adjust_ab(ls, ab_i) for ls, ab_i in zip(l_small, ab)]
        dtypes = dtypes or [np.uint8] * len(l_full)
        return [merge.merge_chunked(l, ab_i, dtype) for l, ab_i, dtype in zip(l_full, ab, dtypes)]

    def predict_guided(self, l_small, guidance):
        """:meth:`predict_ab` with one :class:`Guidance` (or None) per image; saturation applied."""
        guidance = [g or Guidance() for g in guidance]
        if any(g.guides for g in guidance):
            size = self.image_size
            hint_maps = np.stack([np.zeros((size, size, spec.HINT_CHANNELS), np.float32) if g.hint_map is None
                                  else g.hint_map for g in guidance])
            references = np.stack([np.zeros((spec.REFERENCE_SIZE,), np.float32) if g.reference is None
                                   else g.reference for g in guidance])
            ab = self.predict_ab(l_small, hints=hint_maps, reference=references)
        else:
            ab = self.predict_ab(l_small)
        return [_saturate(ab_i, g.saturation) for ab_i, g in zip(ab, guidance)]

    def _guidance_list(self, pictures, hints, reference):
        """One :class:`Guidance` per picture."""
        if hints is None and reference is None:
            return [Guidance()] * len(pictures)
        if hints is None:
            hints = [None] * len(pictures)
        elif not isinstance(hints, (list, tuple)) or len(hints) != len(pictures):
            raise ValueError(f"hints must be None or a list with one entry per picture ({len(pictures)}), got "
                             f"{type(hints).__name__}" + (f" of {len(hints)}" if isinstance(hints, (list, tuple))
                                                          else ""))
        if reference is not None:
            if not self.guided:
                raise self._no_hint_inputs()
            reference = _reference_vector(reference)
        return [h if isinstance(h, Guidance) else self.guidance_inputs(h, p.width, p.height, reference)
                for p, h in zip(pictures, hints)]

    # -- convenience ---------------------------------------------------------

    def colorize(self, image, hints=None, reference=None):
        """Colorizes one image at full resolution.

        Args:
          image: ``PIL.Image`` (returns a ``PIL.Image``, RGB or RGBA), a NumPy
            array ``(H, W)`` / ``(H, W, 1|2|3|4)`` uint8, uint16 or float in
            [0, 1] (returns the same dtype, 3 or 4 channels), or a file path
            (returns a ``PIL.Image``).
          hints: a guided model's hints for this image: a hint file's path, its JSON
            as a dict, or a :class:`~keras_colorize.guidance.hint_file.Hints`; None for none.
          reference: a reference photo (path, ``PIL.Image`` or array) used when the
            hints name none; its palette steers the colours.

        Raises:
          HintFileError: a bad hint file (naming the field and value), a point outside the image.
          NoHintInputsError: hints or a reference for a model without hint inputs.
        """
        return self.colorize_batch([image], hints=None if hints is None else [hints], reference=reference)[0]

    def colorize_batch(self, images_in, hints=None, reference=None):
        """Colorizes a list of images (types as in :meth:`colorize`), batching the network calls.

        ``hints`` is one hint file for every image (sensible with ``"units": "fraction"``) or a
        list with one entry (or None) per image; ``reference`` one photo for every image.
        """
        pictures, kinds = [], []
        for image in images_in:
            if isinstance(image, Image.Image):
                image.load()
                pictures.append(images.from_pil(image))
                kinds.append("pil")
            elif isinstance(image, (str, os.PathLike)):
                pictures.append(images.read_image(image))
                kinds.append("pil")
            else:
                array = np.asarray(image)
                pictures.append(images.from_array(array))
                kinds.append(array.dtype)
        if hints is not None and not isinstance(hints, (list, tuple)):
            hints = [hints] * len(pictures)
        outputs = []
        for (rgb, alpha), kind in zip(self.colorize_pictures(pictures, hints, reference), kinds):
            if alpha is not None:
                rgb = np.concatenate([rgb, alpha.astype(rgb.dtype)[..., None]], axis=-1)
            if kind == "pil":
                if rgb.dtype == np.uint16:
                    rgb = images.to_uint8(rgb)  # PIL has no 48-bit RGB mode
                outputs.append(Image.fromarray(rgb, "RGBA" if rgb.shape[-1] == 4 else "RGB"))
            elif np.issubdtype(kind, np.floating):
                outputs.append((rgb.astype(np.float32) / 65535.0).astype(kind))
            else:
                outputs.append(rgb)
        return outputs


def _batch_input(name, value, shape):
    """A guided model's extra input for a batch: zeros for None, else checked against ``shape``."""
    if value is None:
        return np.zeros(shape, np.float32)
    value = np.asarray(value, np.float32)
    if value.shape != shape:
        raise ValueError(f"{name} must have shape ({', '.join(map(str, shape))}) (one per image), got {value.shape}")
    return value


def _reference_vector(reference):
    """An ``(R,)`` reference input as it is, or the reference input of a photo (path, ``PIL.Image``, array)."""
    if isinstance(reference, np.ndarray) and reference.ndim == 1:
        if reference.shape != (spec.REFERENCE_SIZE,):
            raise ValueError(f"reference must be a photo or a ({spec.REFERENCE_SIZE},) reference input, got shape "
                             f"{reference.shape}")
        return reference.astype(np.float32)
    return hint_file.reference_input(reference)
