"""Run a TFLite colorizer with LiteRT (``ai-edge-litert``), from Python or the command line.

The model file holds the network only (input ``L`` (1, S, S, 1) = L*/100,
outputs ``ab`` and, with a class head, ``class_probabilities``; a guided
model's file also takes ``hints`` (1, S, S, 3) and ``reference`` (1, R), see
:mod:`keras_colorize.guidance.spec`, which ``--hints``/``--reference`` fill in
through :func:`keras_colorize.guidance.hint_file.model_inputs`). Reading the
image, the full-resolution merge and writing are those of the colorize CLI
(:mod:`keras_colorize.inference.api`, :mod:`keras_colorize.inference.images`): L* of the
whole image, resized to the model's size; the predicted a*b* upsampled and
merged with the original L*; output at the input's size and bit depth.

Command line (``kc-litert``, or ``python -m keras_colorize.export.litert_runner``;
needs the ``[litert]`` extra, exit status in :func:`main`)::

    kc-litert --model=models/tflite/colorizer_dynamic_int8.tflite \\
        --input=scan.jpg --output=scan_color.jpg        # several: --input=a.jpg,b.png --output=out_dir
    kc-litert --model=scenes --input=scan.jpg --output=scan_color.jpg
    kc-litert --model=colorizer_float16.tflite --input=scan.jpg --hints=scan.jpg.hints.json \
        --output=scan_color.jpg                          # a guided model: colour hints (and --reference=PHOTO)

A bundled model name (:mod:`keras_colorize.pretrained`) is converted once to
float32 TFLite into the cache folder (``$KERAS_COLORIZE_CACHE``, default
``~/.cache/keras_colorize``), keyed by the ``.keras`` file's SHA-256, and the
cached file is run from then on (:func:`tflite_for`).

Python::

    colorizer = LiteRTColorizer("colorizer_float32.tflite", num_threads=2)
    rgb = colorizer.colorize(gray_uint8_array)              # (H, W, 3) uint8
    probabilities = colorizer.predict(l_small)["class_probabilities"]

Every variant of :mod:`keras_colorize.export.tflite` takes and returns float32
(the full-integer one included); int8-I/O models are (de)quantized here with
the scale and zero point stored in the file.
"""

import hashlib
import os
import pathlib
import sys

import numpy as np

from keras_colorize.guidance.hint_file import NoHintInputsError  # noqa: F401 - raised here, part of this API
from keras_colorize.guidance import hint_file
from keras_colorize.inference import images
from keras_colorize.inference import model_spec
from keras_colorize.inference import api
from keras_colorize import pretrained

CACHE_ENV = "KERAS_COLORIZE_CACHE"


def cache_dir():
    """Where converted bundled models are kept: ``$KERAS_COLORIZE_CACHE`` or ``~/.cache/keras_colorize``."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "keras_colorize")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tflite_for(model, progress=print):
    """The ``.tflite`` file to run for ``model``: a ``.tflite`` path as it is, or a bundled name's cached conversion.

    A bundled model (``"scenes"``) is converted to float32 TFLite with
    :func:`keras_colorize.export.tflite.convert_variants` the first time, into
    ``<cache_dir>/tflite/<name>-<sha256 of the .keras file>_float32.tflite``
    (written atomically, so a killed conversion leaves no file a later run
    would trust); a changed model file gets a new key.

    Raises:
      ValueError: ``model`` is neither a bundled name nor a ``.tflite`` file.
    """
    if not pretrained.is_name(model):
        return model_spec.locate(model, kinds=(model_spec.TFLITE,))
    keras_file = pretrained.path_of(model)  # ValueError if this installation lacks it
    from keras_colorize.export import tflite as tflite_lib  # noqa: PLC0415 - TensorFlow only when converting

    stem = f"{model}-{_sha256(keras_file)}"
    folder = cache_dir() / "tflite"
    cached = tflite_lib.variant_path(folder, "float32", stem)
    if cached.is_file():
        return cached
    progress(f"converting the bundled model {model!r} to TFLite once, into {cached}")
    loaded = api.load_keras_model(keras_file)
    converted = tflite_lib.convert_variants(loaded, folder, ("float32",), name=stem, overwrite=True)
    return converted.paths["float32"]


def _quantize(x, detail):
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(x, detail):
    if np.issubdtype(x.dtype, np.floating):
        return x
    scale, zero_point = detail["quantization"]
    return (x.astype(np.float32) - zero_point) * scale


class LiteRTPredictor:
    """``(B, S, S, 1)`` L/100 -> ``{"ab": (B, S, S, 2), "class_probabilities": (B, C)}`` with LiteRT.

    A guided model's file (converted from a model with ``hints=True``) has the
    inputs ``L``, ``hints`` (1, S, S, 3) and ``reference`` (1, R)
    (:mod:`keras_colorize.guidance.spec`); :attr:`guided` says so, and
    :meth:`predict` takes the hint inputs (zeros when not given: automatic
    colorization).

    Args:
      model_path: ``.tflite`` file from :mod:`keras_colorize.export.tflite`.
      num_threads: CPU threads for the interpreter (XNNPACK); 2 on this project's machine.
    """

    def __init__(self, model_path, num_threads=2):
        from keras_colorize import cli  # noqa: PLC0415
        from keras_colorize.guidance import spec  # noqa: PLC0415

        Interpreter = cli.require_extra("ai_edge_litert.interpreter", "litert").Interpreter  # noqa: N806 - optional

        path = pathlib.Path(model_path)
        if not path.is_file():
            raise ValueError(f"model_path {str(path)!r} is not a file")
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads!r}")
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=int(num_threads))
        except ValueError as e:
            raise ValueError(f"model_path {str(path)!r} is not a TFLite model LiteRT can load: {e}") from e
        signatures = self._interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"model_path {str(path)!r}: expected one signature, got {list(signatures)}")
        self._runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        self._inputs = self._runner.get_input_details()
        guided_names = sorted((spec.L_INPUT, spec.HINTS_INPUT, spec.REFERENCE_INPUT))
        if sorted(self._inputs) not in (["L"], guided_names):
            raise ValueError(f"model_path {str(path)!r}: expected the input 'L' (or 'L', 'hints', 'reference' of a "
                             f"guided model), got {list(self._inputs)}")
        self.guided = len(self._inputs) == 3
        self._input = self._inputs["L"]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 1 or shape[1] != shape[2]:
            raise ValueError(f"model_path {str(path)!r}: input L must be (1, S, S, 1), got {shape}")
        self.image_size = shape[1]
        if self.guided:
            want = {spec.HINTS_INPUT: (1, shape[1], shape[1], spec.HINT_CHANNELS),
                    spec.REFERENCE_INPUT: (1, spec.REFERENCE_SIZE)}
            for name, expected in want.items():
                got = tuple(int(d) for d in self._inputs[name]["shape"])
                if got != expected:
                    raise ValueError(f"model_path {str(path)!r}: input {name} must be {expected}, got {got}")
        self._path = path
        self._outputs = self._runner.get_output_details()
        self.batch_dim = 1
        self.output_names = tuple(self._outputs)

    def _batch(self, name, value, count, tail):
        """``value`` as a float32 ``(count,) + tail`` array (one example without the batch axis is fine)."""
        value = np.asarray(value, np.float32)
        if value.shape == tail:
            value = value[None]
        if value.shape != (count,) + tail:
            raise ValueError(f"{name} must have shape ({count}, {', '.join(map(str, tail))}) (one per image), "
                             f"got {value.shape}")
        return value

    def predict(self, l_input, hints=None, reference=None):
        """All outputs for a batch ``(B, S, S, 1)`` (or one ``(S, S, 1)``) of L/100.

        Args:
          l_input: ``(B, S, S, 1)`` L/100.
          hints: a guided model's hint maps ``(B, S, S, 3)``; None = no hints.
          reference: a guided model's reference inputs ``(B, R)``; None = no reference.

        Raises:
          NoHintInputsError: hints or a reference for a model without hint inputs.
        """
        from keras_colorize.guidance import spec  # noqa: PLC0415

        if not self.guided and (hints is not None or reference is not None):
            raise NoHintInputsError(hint_file.no_hint_inputs_message(self._path, "hints and a reference"))
        l_input = np.asarray(l_input, np.float32)
        if l_input.ndim == 3:
            l_input = l_input[None]
        expected = (self.image_size, self.image_size, 1)
        if l_input.ndim != 4 or l_input.shape[1:] != expected:
            raise ValueError(f"l_input must have shape (B, {expected[0]}, {expected[1]}, 1), got {l_input.shape}")
        feeds = {"L": l_input}
        if self.guided:
            count = len(l_input)
            hint_shape = (self.image_size, self.image_size, spec.HINT_CHANNELS)
            feeds[spec.HINTS_INPUT] = (np.zeros((count,) + hint_shape, np.float32) if hints is None
                                       else self._batch("hints", hints, count, hint_shape))
            feeds[spec.REFERENCE_INPUT] = (np.zeros((count, spec.REFERENCE_SIZE), np.float32) if reference is None
                                           else self._batch("reference", reference, count, (spec.REFERENCE_SIZE,)))
        results = {name: [] for name in self._outputs}
        for n in range(len(l_input)):
            one = {}
            for name, value in feeds.items():
                x = value[n:n + 1]
                detail = self._inputs[name]
                one[name] = x if detail["dtype"] == np.float32 else _quantize(x, detail)
            outputs = self._runner(**one)
            for name, value in outputs.items():
                results[name].append(_dequantize(value, self._outputs[name]))
        return {name: np.concatenate(values) if values else np.zeros((0,) + tuple(self._outputs[name]["shape"][1:]),
                                                                     np.float32)
                for name, values in results.items()}

    def __call__(self, l_input, hints=None, reference=None):
        """``(B, S, S, 1)`` -> a*b* ``(B, S, S, 2)`` (the predictor interface of :mod:`keras_colorize.inference.api`)."""
        return self.predict(l_input, hints, reference)["ab"]


class LiteRTColorizer(api.Colorizer):
    """:class:`keras_colorize.inference.api.Colorizer` running a ``.tflite`` model with LiteRT.

    Same API and same pixels as the Keras/SavedModel colorizer (full-resolution
    merge, gray/RGBA/16-bit inputs); only the network runs in LiteRT. A guided
    model's file takes hints the same way:
    ``colorize("scan.jpg", hints="scan.jpg.hints.json", reference="sunset.jpg")``.
    """

    def __init__(self, model_path, *, num_threads=2, batch_size=1):  # noqa: D107 - see class docstring
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self._predictor = LiteRTPredictor(model_path, num_threads)
        self.image_size = self._predictor.image_size
        self.batch_size = batch_size

    def predict(self, l_input, hints=None, reference=None):
        """All network outputs (``ab``, ``class_probabilities``) for ``(B, S, S, 1)`` L/100 (and a guided model's hints)."""
        return self._predictor.predict(l_input, hints, reference)


def colorize_files(model_path, inputs, output, num_threads=2, overwrite=False, progress=True, hints=None,
                   reference=None):
    """Colorizes image files with a ``.tflite`` model; writes each atomically.

    Args:
      model_path: ``.tflite`` file, or a bundled model name (converted once, see :func:`tflite_for`).
      inputs: list of image paths.
      output: a file path (one input) or a folder (any number of inputs;
        files keep their names and formats).
      overwrite: replace existing outputs; never an input file.
      hints: a hint file (JSON, :mod:`keras_colorize.guidance.hint_file`) for
        the one input photo; needs a guided model.
      reference: a reference photo (its palette steers the colours) for every
        input whose hint file names none, as :meth:`Colorizer.colorize
        <keras_colorize.inference.api.Colorizer.colorize>`. Needs a guided model.

    Returns:
      list of written paths.

    Raises:
      NoHintInputsError: hints or a reference for a model without hint inputs
        (nothing is written).
    """
    inputs = [pathlib.Path(p) for p in inputs]
    if not inputs:
        raise ValueError("inputs must name at least one image file")
    if hints and len(inputs) != 1:
        raise ValueError(f"hints are for one photo (its points are in that photo's coordinates), got {len(inputs)} "
                         "inputs")
    for name, path in (("hints", hints), ("reference", reference)):
        if path and not pathlib.Path(path).is_file():
            raise ValueError(f"{name} file {str(path)!r} does not exist")
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise ValueError(f"input files do not exist: {missing}")
    output = pathlib.Path(output)
    single_file = len(inputs) == 1 and images.format_for_path(output) is not None
    targets = [output] if single_file else [output / p.name for p in inputs]
    resolved_inputs = {p.resolve() for p in inputs}
    for target in targets:
        if target.resolve() in resolved_inputs:
            raise ValueError(f"output {str(target)!r} would overwrite an input file")
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    colorizer = LiteRTColorizer(tflite_for(model_path, print if progress else (lambda message: None)),
                                num_threads=num_threads)
    guidance = None
    if hints or reference:
        if not colorizer.guided:
            given = " and ".join(f"--{n}" for n, v in (("hints", hints), ("reference", reference)) if v)
            raise NoHintInputsError(hint_file.no_hint_inputs_message(model_path, given))
        # HintFileError (a ValueError: exit status 2) for a bad file or reference, before any image is written.
        guidance = (hint_file.Hints.load(hints) if hints else None,
                    hint_file.reference_input(reference) if reference else None)
    first = None
    if guidance is not None and guidance[0] is not None:  # the points must lie inside the (one) photo
        first = images.read_image(inputs[0])
        guidance[0].check_photo(first.width, first.height)
    from tqdm import tqdm  # noqa: PLC0415

    written = []
    for source, target in tqdm(list(zip(inputs, targets)), disable=not progress, unit="image"):
        picture = first if first is not None and source == inputs[0] else images.read_image(source)
        if guidance is None:
            (rgb, alpha), = colorizer.colorize_pictures([picture])
        else:
            (rgb, alpha), = colorizer.colorize_pictures([picture], None if guidance[0] is None else [guidance[0]],
                                                        guidance[1])
        image_format = images.format_for_path(target) or picture.format
        images.write_image(target, rgb, alpha=alpha, image_format=image_format, dpi=picture.dpi)
        written.append(target)
    return written


def _define_flags():
    from absl import flags  # noqa: PLC0415

    flags.DEFINE_string("model", None, ".tflite file from export/export_tflite.py, or "
                        f"{pretrained.MODEL_HELP.replace(', or a path', '')} (converted once to float32 TFLite).")
    flags.DEFINE_list("input", None, "Image file(s), comma-separated.")
    flags.DEFINE_string("output", None, "Output file (one input) or folder (outputs keep the input names).")
    flags.DEFINE_integer("num_threads", 2, "LiteRT CPU threads.")
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never an input).")
    flags.DEFINE_string("hints", None, "Hint file (JSON: colour points, optional reference photo) for the one "
                        "--input photo; needs a guided model (converted from a model with hints=True).")
    flags.DEFINE_string("reference", None, "Reference photo whose palette steers every --input whose hint file "
                        "names none; needs a guided model.")
    flags.mark_flags_as_required(["model", "input", "output"])


COMMAND = "kc-litert"


def main(argv):
    """``kc-litert --model=... --input=... --output=...``.

    Exit status: 0 every image written; 1 an input is not a readable image
    (the images before it are written); 2 bad arguments or configuration (a
    missing or unparsable flag, a missing model or input, an output that exists
    without ``--overwrite`` or would overwrite an input, the ``[litert]`` extra
    not installed, ``--hints``/``--reference`` for a model without hint inputs,
    a bad hint file or reference photo), as one line ``kc-litert: error: ...``;
    nothing is written then.
    """
    from absl import flags  # noqa: PLC0415

    from keras_colorize import cli  # noqa: PLC0415

    cli.check_args(argv)
    cli.require_extra("ai_edge_litert.interpreter", "litert")  # before any conversion or image
    flag_values = flags.FLAGS
    try:
        written = colorize_files(flag_values.model, flag_values.input, flag_values.output, flag_values.num_threads,
                                 flag_values.overwrite, hints=flag_values.hints, reference=flag_values.reference)
    except images.ImageReadError as e:  # an input that is not a readable image: the run failed (status 1)
        print(f"{COMMAND}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def run():
    """Console-script entry point (``kc-litert``); exit status 0, 1 or 2 as in :func:`main`."""
    from keras_colorize import cli  # noqa: PLC0415

    _define_flags()  # only when run as a command: importing this module defines no flags
    cli.run(main, COMMAND)


if __name__ == "__main__":
    run()
