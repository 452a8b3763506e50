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

import os
import pathlib
import zipfile

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_colorize.inference import images
from keras_colorize.inference import merge
from keras_colorize.models import model_contract
from keras_colorize import pretrained


# ----------------------------------------------------------------------------
# Model wrappers
# ----------------------------------------------------------------------------


class _KerasPredictor:
    def __init__(self, model):
        contract = check_model_contract(model)
        self.image_size = contract.image_size
        self.model = model
        ab_key = contract.ab_key

        @tf.function(input_signature=[tf.TensorSpec([None, self.image_size, self.image_size, 1], tf.float32)])
        def predict(l_input):
            outputs = model(l_input, training=False)
            if isinstance(outputs, dict):
                return outputs[ab_key]
            return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

        self._predict = predict
        self.batch_dim = None

    def __call__(self, l_input):
        return self._predict(tf.constant(l_input, tf.float32)).numpy()


class _SavedModelPredictor:
    """Calls the first SavedModel signature that fits the model contract (float (B, S, S, 1) L in, ab out)."""

    def __init__(self, path):
        self._loaded = tf.saved_model.load(str(path))
        names = sorted(self._loaded.signatures, key=lambda k: (k != "serving_default", k))
        reasons = []
        for key in names:
            fn = self._loaded.signatures[key]
            try:
                contract = model_contract.check_signature(fn)
            except ValueError as e:
                reasons.append(f"{key}: {e}")
                continue
            (self._arg, spec), = fn.structured_input_signature[1].items()
            self._fn, self.signature, self._ab_key = fn, key, contract.ab_key
            self.image_size = contract.image_size
            self.batch_dim = contract.batch_size
            self._dtype = spec.dtype
            return
        raise ValueError(f"model path {str(path)!r}: no SavedModel signature fits the colorizer contract "
                         f"(one float (batch, S, S, 1) L input, S a multiple of {model_contract.STRIDE}, "
                         f"an 'ab' (batch, S, S, 2) output): " + ("; ".join(reasons) or "it has no signatures"))

    def __call__(self, l_input):
        if self.batch_dim is not None and l_input.shape[0] != self.batch_dim:
            parts = []
            for i in range(0, l_input.shape[0], self.batch_dim):
                piece = l_input[i:i + self.batch_dim]
                pad = self.batch_dim - piece.shape[0]
                if pad:
                    piece = np.concatenate([piece, np.repeat(piece[-1:], pad, axis=0)])
                parts.append(self._call(piece)[:self.batch_dim - pad])
            return np.concatenate(parts)
        return self._call(l_input)

    def _call(self, l_input):
        outputs = self._fn(**{self._arg: tf.constant(l_input, self._dtype)})
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


def load_keras_model(spec):
    """A contract-checked ``keras.Model`` from a bundled name or a ``.keras`` / ``.h5`` path (for the exporters).

    Same checks and messages as :func:`load_predictor`: a missing path, a
    name that is not installed, a file that is not a Keras model ("not a
    valid Keras model file (...)"), a model that does not fit the contract.
    """
    path = pathlib.Path(pretrained.resolve(os.fspath(spec)))
    if not path.is_file():
        raise ValueError(f"model path {os.fspath(spec)!r} does not exist or is not a file")
    if path.suffix not in (".keras", ".h5"):
        raise ValueError(f"model path {str(path)!r} must be a .keras file")
    model = _load_keras_file(path)
    try:
        check_model_contract(model)
    except ValueError as e:
        raise ValueError(f"model path {str(path)!r}: {e}") from e
    return model


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
        spec = os.fspath(model)
        path = pathlib.Path(pretrained.resolve(spec))
        if not path.exists():
            raise ValueError(f"model path {spec!r} does not exist (bundled model names: "
                             f"{', '.join(pretrained.NAMES)})")
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise ValueError(f"model path {str(path)!r} is a folder without saved_model.pb (not a SavedModel)")
            return _SavedModelPredictor(path)
        if path.suffix not in (".keras", ".h5"):
            raise ValueError(f"model path {str(path)!r} must be a .keras file or a SavedModel folder")
        loaded = _load_keras_file(path)
        try:
            return _KerasPredictor(loaded)
        except ValueError as e:
            raise ValueError(f"model path {str(path)!r}: {e}") from e
    if hasattr(model, "inputs") and callable(model):
        return _KerasPredictor(model)
    raise ValueError(f"model must be a keras.Model, a bundled model name or a path, got {type(model).__name__}")


# ----------------------------------------------------------------------------
# The public API
# ----------------------------------------------------------------------------


class Colorizer:
    """Full-resolution colorization of photographs with a trained model.

    Args:
      model: a ``keras.Model`` (``build_colorizer(...)``), a bundled model
        name (``"scenes"``, see :mod:`keras_colorize.pretrained`), a
        ``.keras`` path or a SavedModel folder (see :func:`load_predictor`).
      batch_size: images per network call in :meth:`colorize_batch`.

    Gray, RGB (re-colorized from its own L*), RGBA (alpha kept), 8- and 16-bit
    inputs are accepted; the output has the input's size.

    Example::

        colorizer = Colorizer.from_path("runs/p1/best.keras")
        out = colorizer.colorize(np.asarray(PIL.Image.open("scan.png")))  # (H, W, 3) uint8
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

    # -- low level, shared with evaluation and film --------------------------

    def predict_ab(self, l_small):
        """``(B, S, S, 1)`` L/100 at the model size -> ``(B, S, S, 2)`` a*b* target units."""
        l_small = np.asarray(l_small, np.float32)
        if l_small.ndim != 4 or l_small.shape[1:] != (self.image_size, self.image_size, 1):
            raise ValueError(f"l_small must have shape (B, {self.image_size}, {self.image_size}, 1), "
                             f"got {l_small.shape}")
        outs = [self._predictor(l_small[i:i + self.batch_size]) for i in range(0, len(l_small), self.batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self.image_size, self.image_size, 2), np.float32)

    def colorize_pictures(self, pictures):
        """Colorizes :class:`keras_colorize.inference.images.Picture` objects.

        Returns:
          list of ``(rgb, alpha)``: rgb ``(H, W, 3)`` in the picture's bit depth
          (uint8 or uint16), alpha as given (or None).
        """
        results = []
        for i in range(0, len(pictures), self.batch_size):
            chunk = pictures[i:i + self.batch_size]
            l_full = [merge.lightness(p.pixels) for p in chunk]
            ab = self.predict_ab(np.stack([merge.model_input(l, self.image_size) for l in l_full]))
            for picture, l, ab_i in zip(chunk, l_full, ab):
                results.append((merge.merge_chunked(l, ab_i, picture.pixels.dtype.type), picture.alpha))
        return results

    # -- convenience ---------------------------------------------------------

    def colorize(self, image):
        """Colorizes one image at full resolution.

        Args:
          image: ``PIL.Image`` (returns a ``PIL.Image``, RGB or RGBA), a NumPy
            array ``(H, W)`` / ``(H, W, 1|2|3|4)`` uint8, uint16 or float in
            [0, 1] (returns the same dtype, 3 or 4 channels), or a file path
            (returns a ``PIL.Image``).
        """
        return self.colorize_batch([image])[0]

    def colorize_batch(self, images_in):
        """Colorizes a list of images (types as in :meth:`colorize`), batching the network calls."""
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
        outputs = []
        for (rgb, alpha), kind in zip(self.colorize_pictures(pictures), kinds):
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
