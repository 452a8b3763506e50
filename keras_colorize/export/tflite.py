"""TFLite / LiteRT conversion of the colorizer: float32, float16 weights, dynamic-range int8, full int8.

Every variant is converted from one SavedModel made by the same export module
as the serving model (:func:`keras_colorize.export.saved_model.build_export_archive`),
with three things done first because they decide speed and whether the
conversion works at all:

* **BatchNormalization folded** into the preceding conv/Dense kernels
  (:mod:`keras_colorize.export.bn_folding`). Without it the converter stops
  with ``ERROR_NEEDS_FLEX_OPS`` on the BN after the 32768->1024 Dense of the
  256 px model, and the interpreter would pay a multiply-add per BN.
* **A fixed 1 x S x S x 1 input.** No dynamic batch: every tensor is
  allocated once and XNNPACK plans its kernels once.
* **No resource variables in the graph.** The SavedModel's weights are
  frozen into constants by ``from_saved_model``. (``from_concrete_functions``
  on the Keras model without its trackable gave a weightless 0.18 MB file
  5x slower than TF; BUILD_NOTES.md, "Export".)

Variants (:data:`VARIANTS`):

``float32``       reference; matches Keras to ~1e-6.
``float16``       float16 weights, dequantized at load (half the file; same speed on CPU).
``dynamic_int8``  int8 weights, activations quantized on the fly per op (quarter file).
``int8``          full integer: weights and activations int8, ranges calibrated on a
                  representative dataset (real photos: :func:`calibration_dataset` from
                  shards or :func:`photo_calibration`). Input ``L`` and outputs stay
                  **float32**: the runner, the tests and app code then use one
                  interface for every variant, and the two boundary (de)quantize ops
                  cost nothing next to the network; an int8-only accelerator can still
                  take the model with ``int8_io=True``.
``int16x8``       int8 weights, int16 activations (TFLite's 16x8 mode), same calibration.
                  Optional (not in :data:`VARIANTS`, the default set): XNNPACK has no
                  int16 kernels, so LiteRT runs it ~15x slower than float32.

A guided model (``hints=True``) converts the same way into a **guided
variant** of each: the file takes ``L``, ``hints`` (1, S, S, 3) and
``reference`` (1, R) (:mod:`keras_colorize.guidance.spec`); zeros in the last
two are automatic colorization. Its full-int8 calibration feeds hints
simulated from the calibration photos' ground truth (:func:`simulated_guidance`,
the training distribution), and the hint inputs keep their min/max ranges.

How close each comes to the float32 Keras model is :data:`TOLERANCES` (mean
|a*b* difference|, model units) and is measured by
:mod:`keras_colorize.export.tflite_report`. On a trained model full int8 does
not reach its tolerance: the trained decoder has sparse activation outliers
(about 0.5 % of pixels, in a few photos, reach ~1000 where the rest stay
below ~5; those are pixels whose a*b* saturate), a per-tensor int8 range
sized for them leaves one or two levels for every other pixel, and the
concatenations force one range on the skip input too. Keeping the a*b* head,
the last up block or the concatenations in float does not help (the error is
made upstream, in every decoder layer). What helps is **clipped calibration**
(``clip_percentile``, default :data:`DEFAULT_CLIP_PERCENTILE`): each
activation range is the central ``clip_percentile`` % of the calibration
values instead of their min/max, so the outlier pixels saturate (their a*b*
saturate anyway) and the others keep their resolution. int16 activations
(``int16x8``) are the other way, at the cost of slower reference kernels.

Example:
  >>> files = convert_variants(model, "models/tflite", calibration=calibration_dataset("shards/val-*", 256))
  >>> files.paths["dynamic_int8"]
  PosixPath('models/tflite/colorizer_dynamic_int8.tflite')
"""

import contextlib
import dataclasses
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

from keras_colorize import fileio
from keras_colorize.export import bn_folding
from keras_colorize.export import saved_model
from keras_colorize.export.settings import (  # noqa: F401 - part of this API
    ALL_VARIANTS, CALIBRATED_VARIANTS, DEFAULT_CALIBRATION_STEPS, DEFAULT_CLIP_PERCENTILE, VARIANTS, check_variants)


@dataclasses.dataclass
class Converted:
    """What :func:`convert_variants` wrote."""

    paths: dict  # variant -> pathlib.Path of the .tflite file
    folded_pairs: list  # (producer layer name, BatchNormalization layer name)


#: Largest mean |a*b* difference| to the float32 Keras model (model units,
#: (ab + 128) / 255) on real photos for a variant to be recommended.
TOLERANCES = {"float32": 1e-4, "float16": 0.005, "dynamic_int8": 0.005, "int8": 0.01, "int16x8": 0.01}
_CLIP_SAMPLES_PER_IMAGE = 2048


#: Seed of the hints simulated for a guided model's calibration (example i uses [seed, i]).
CALIBRATION_HINT_SEED = 2017
GUIDED_INPUTS = ("L", "hints", "reference")


def simulated_guidance(l_input, ab_target, step):
    """``{"L", "hints", "reference"}`` for one ``(1, S, S, *)`` example, hints simulated from its ground truth.

    The training distribution (:func:`keras_colorize.guidance.hint_ops.simulate_hints`:
    geometric point counts, about 1/8 without points, the reference given to
    about half), seeded by ``step``, so every pass over the calibration data
    (the converter makes several) sees the same hints.
    """
    from keras_colorize import color  # noqa: PLC0415
    from keras_colorize.guidance import hint_ops  # noqa: PLC0415

    ab_target = tf.convert_to_tensor(ab_target, tf.float32)
    rgb = color.model_to_rgb(l_input, ab_target)
    hints, reference = hint_ops.simulate_hints(color.target_to_ab(ab_target), rgb,
                                               tf.constant([CALIBRATION_HINT_SEED, int(step)]))
    return {"L": tf.convert_to_tensor(l_input, tf.float32).numpy(), "hints": hints.numpy(),
            "reference": reference.numpy()}


def calibration_dataset(file_pattern, image_size, num_steps=DEFAULT_CALIBRATION_STEPS, guided=False):
    """Representative inputs for full-integer calibration, read from TFRecord shards.

    Uses :func:`keras_colorize.data.pipeline.make_dataset` with the evaluation
    view (resize short side, center crop: no augmentation), one image per step.

    Args:
      guided: for a guided model: each example also gets ``hints`` and
        ``reference`` simulated from its ground truth (:func:`simulated_guidance`),
        so the hint inputs and the layers they feed get calibrated ranges.

    Returns:
      A zero-argument callable yielding ``{"L": (1, S, S, 1) float32}`` (and
      ``"hints"``, ``"reference"`` when guided), as the TFLite converter wants.
    """
    from keras_colorize.data import pipeline  # noqa: PLC0415 - only calibration reads shards

    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps!r}")
    dataset = pipeline.make_dataset(file_pattern, "val", image_size, 1, with_class=False).take(int(num_steps))

    def generate():
        for step, (l_input, targets) in enumerate(dataset):
            yield simulated_guidance(l_input, targets["ab"], step) if guided else {"L": l_input.numpy()}

    return generate


def photo_calibration(l_photos, ab_photos=None):
    """Representative inputs from photos already in model units (``(N, S, S, 1)`` L/100).

    E.g. ``photo_calibration(tflite_report.load_photos(files, 128)[0])``; for a
    guided model ``photo_calibration(*tflite_report.load_photos(files, 128))``:
    with ``ab_photos`` (``(N, S, S, 2)`` (ab + 128) / 255) each example also gets
    simulated ``hints`` and ``reference`` (:func:`simulated_guidance`).
    Returns a zero-argument callable yielding ``{"L": (1, S, S, 1) float32}`` (and the hint inputs).
    """
    import numpy as np  # noqa: PLC0415

    l_photos = np.asarray(l_photos, np.float32)
    if l_photos.ndim != 4 or l_photos.shape[-1] != 1 or not len(l_photos):
        raise ValueError(f"l_photos must be a non-empty (N, S, S, 1) array, got shape {l_photos.shape}")
    if ab_photos is not None:
        ab_photos = np.asarray(ab_photos, np.float32)
        if ab_photos.shape != l_photos.shape[:3] + (2,):
            raise ValueError(f"ab_photos must be (N, S, S, 2) like l_photos {l_photos.shape}, got {ab_photos.shape}")

    def generate():
        for step, one in enumerate(l_photos):
            yield simulated_guidance(one[None], ab_photos[step:step + 1], step) if ab_photos is not None \
                else {"L": one[None]}

    return generate


def _check_calibration_inputs(calibration, guided):
    """ValueError when the representative dataset does not feed the model's inputs."""
    first = next(iter(calibration()), None)
    want = set(GUIDED_INPUTS if guided else ("L",))
    if not isinstance(first, dict) or set(first) != want:
        got = sorted(first) if isinstance(first, dict) else type(first).__name__
        hint = (" (a guided model: calibration_dataset(..., guided=True) or photo_calibration(l, ab) simulate the "
                "hints)" if guided else "")
        raise ValueError(f"calibration must yield dicts with the model's inputs {sorted(want)}, got {got}{hint}")


@contextlib.contextmanager
def tflite_saved_model(model, fold_batch_norm=True):
    """A temporary SavedModel of ``model`` (BN folded, float32) with one ``L`` (1, S, S, 1) signature.

    A guided model's signature takes its three inputs: ``L``, ``hints``
    (1, S, S, 3) and ``reference`` (1, R).

    The network is rebuilt under the float32 policy whatever ``model``'s
    policy (a ``mixed_bfloat16`` model's bfloat16 graph does not convert).

    Yields:
      ``(path, folded_pairs)``.
    """
    pairs = []
    if fold_batch_norm:
        model, pairs = bn_folding.fold_batch_norms(model, compute_dtype="float32")
    else:
        model = bn_folding.as_float32(model)
    archive = saved_model.build_export_archive(model, batch_size=1, image_signature=False)
    directory = tempfile.mkdtemp(prefix="kc-tflite-")
    try:
        path = os.path.join(directory, "saved_model")
        archive.write_out(path, verbose=False)
        yield path, pairs
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def convert_saved_model(path, variant, calibration=None, int8_io=False, clip_percentile=DEFAULT_CLIP_PERCENTILE):
    """Converts a SavedModel (from :func:`tflite_saved_model`) to TFLite flatbuffer bytes.

    Args:
      path: SavedModel folder with a ``serving_default`` signature on ``L``.
      variant: one of :data:`ALL_VARIANTS`.
      calibration: representative-dataset callable; required for
        :data:`CALIBRATED_VARIANTS`.
      int8_io: ``"int8"`` only: int8 input and outputs instead of float32.
      clip_percentile: ``"int8"`` only: activation ranges cover this central
        percentage of the calibration values; None for the converter's min/max.
    """
    check_variants([variant])
    if clip_percentile is not None and not 50.0 < float(clip_percentile) <= 100.0:
        raise ValueError(f"clip_percentile must be in (50, 100] or None, got {clip_percentile!r}")
    if variant in CALIBRATED_VARIANTS and calibration is None:
        raise ValueError(f"variant={variant!r} needs calibration (a representative dataset of real photos)")
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=["serving_default"])
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if clip_percentile is not None and not int8_io:
            return _int8_with_clipped_ranges(converter, calibration, float(clip_percentile))
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif variant == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter.convert()


def _int8_with_clipped_ranges(converter, calibration, percentile):
    """Full-int8 flatbuffer whose activation ranges are percentiles of the calibration values.

    The converter calibrates (min/max per tensor recorded in a float model);
    every range is then narrowed to the ``[100 - p, p]`` percentiles of the
    values that tensor took on the calibration inputs (a fixed-seed sample of
    each), and the model is quantized with those ranges. Uses the converter's
    calibrate-only mode and ``mlir_quantize``, the same (private) TF 2.21
    entry points ``tf.lite.experimental.QuantizationDebugger`` uses.
    """
    import numpy as np  # noqa: PLC0415
    from keras_colorize import cli  # noqa: PLC0415

    Interpreter = cli.require_extra("ai_edge_litert.interpreter", "litert").Interpreter  # noqa: N806 - optional
    from tensorflow.lite.python import convert as lite_convert  # noqa: PLC0415
    from tensorflow.lite.tools import flatbuffer_utils  # noqa: PLC0415

    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001
    calibrated = converter.convert()
    model = flatbuffer_utils.read_model_from_bytearray(calibrated)
    tensors = model.subgraphs[0].tensors
    ranged = [i for i, t in enumerate(tensors)
              if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1]
    interpreter = Interpreter(model_content=bytes(calibrated), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inputs = interpreter.get_signature_runner().get_input_details()  # name -> detail (L, and hints, reference)
    rng = np.random.default_rng(0)
    samples = {i: [] for i in ranged}
    for example in calibration():
        for name, detail in inputs.items():
            interpreter.set_tensor(detail["index"], np.asarray(example[name], np.float32))
        interpreter.invoke()
        for i in ranged:
            values = interpreter.get_tensor(i).ravel()
            if values.size > _CLIP_SAMPLES_PER_IMAGE:
                values = rng.choice(values, _CLIP_SAMPLES_PER_IMAGE, replace=False)
            samples[i].append(np.asarray(values, np.float32))
    # A guided model's hint inputs keep their calibrated (min/max) ranges: they are sparse (a hint map, a
    # reference histogram: mostly zeros), so their central percentiles would cut into the hint values
    # themselves (the mask's 1 among them) rather than into outliers.
    sparse_inputs = {detail["index"] for name, detail in inputs.items() if name != "L"}
    for i in ranged:
        if i in sparse_inputs:
            continue
        low, high = np.percentile(np.concatenate(samples[i]), [100.0 - percentile, percentile])
        quantization = tensors[i].quantization
        quantization.min = [float(max(quantization.min[0], min(low, 0.0)))]
        quantization.max = [float(min(quantization.max[0], max(high, 1e-6)))]
    return lite_convert.mlir_quantize(bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fully_quantize=False)


def variant_path(output_dir, variant, name="colorizer"):
    return pathlib.Path(output_dir) / f"{name}_{variant}.tflite"


def convert_variants(model, output_dir, variants=VARIANTS, calibration=None, name="colorizer", overwrite=False,
                     progress=None, clip_percentile=DEFAULT_CLIP_PERCENTILE):
    """Writes one ``<name>_<variant>.tflite`` per variant into ``output_dir``.

    Args:
      model: the Keras colorizer (not modified; any dtype policy, converted as float32).
        A guided model's files take its three inputs (``L``, ``hints``, ``reference``).
      output_dir: folder for the ``.tflite`` files (created).
      variants: subset of :data:`ALL_VARIANTS`.
      calibration: representative dataset (:func:`calibration_dataset`,
        :func:`photo_calibration`), needed for :data:`CALIBRATED_VARIANTS`;
        for a guided model it must yield the hint inputs too (``guided=True``).
      name: file-name prefix.
      overwrite: replace existing files; otherwise an existing file is an error
        raised before any conversion starts.
      progress: optional callable ``progress(message)``.
      clip_percentile: activation-range percentile of ``"int8"``
        (:func:`convert_saved_model`).

    Returns:
      :class:`Converted`: the file of each variant and the folded pairs.
    """
    variants = check_variants(variants)
    if clip_percentile is not None and not 50.0 < float(clip_percentile) <= 100.0:
        raise ValueError(f"clip_percentile must be in (50, 100] or None, got {clip_percentile!r}")
    needing = [v for v in variants if v in CALIBRATED_VARIANTS]
    if needing and calibration is None:
        raise ValueError(f"variants include {needing} but no calibration data was given (calibration_shards)")
    guided = saved_model.is_guided(model)
    paths = {v: variant_path(output_dir, v, name) for v in variants}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} already exist; pass overwrite=True (--overwrite) to replace them")
    if needing:
        _check_calibration_inputs(calibration, guided)
    say = progress or (lambda message: None)
    with tflite_saved_model(model) as (path, pairs):
        say(f"folded {len(pairs)} BatchNormalization layers into their conv/Dense layers")
        for variant in variants:
            say(f"converting {variant}")
            fileio.atomic_write_bytes(paths[variant], convert_saved_model(path, variant, calibration,
                                                                          clip_percentile=clip_percentile))
    return Converted(paths=paths, folded_pairs=pairs)
