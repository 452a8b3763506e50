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
  5x slower than TF, ``/work/shared/NOTES.md``.)

Variants (:data:`VARIANTS`):

``float32``       reference; matches Keras to ~1e-6.
``float16``       float16 weights, dequantized at load (half the file; same speed on CPU).
``dynamic_int8``  int8 weights, activations quantized on the fly per op (quarter file).
``int8``          full integer: weights and activations int8, ranges calibrated on a
                  representative dataset read from shards. Input ``L`` and outputs stay
                  **float32**: the runner, the tests and app code then use one
                  interface for every variant, and the two boundary (de)quantize ops
                  cost nothing next to the network; an int8-only accelerator can still
                  take the model with ``int8_io=True``.

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

@dataclasses.dataclass
class Converted:
    """What :func:`convert_variants` wrote."""

    paths: dict  # variant -> pathlib.Path of the .tflite file
    folded_pairs: list  # (producer layer name, BatchNormalization layer name)


VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
DEFAULT_CALIBRATION_STEPS = 100


def check_variants(variants):
    """Tuple of variant names; ValueError naming any unknown one."""
    variants = tuple(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {list(variants)}")
    return variants


def calibration_dataset(file_pattern, image_size, num_steps=DEFAULT_CALIBRATION_STEPS):
    """Representative inputs for full-integer calibration, read from TFRecord shards.

    Uses :func:`keras_colorize.data.pipeline.make_dataset` with the evaluation
    view (resize short side, center crop: no augmentation), one image per step.

    Returns:
      A zero-argument callable yielding ``{"L": (1, S, S, 1) float32}``, as the
      TFLite converter wants.
    """
    from keras_colorize.data import pipeline  # noqa: PLC0415 - only calibration reads shards

    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps!r}")
    dataset = pipeline.make_dataset(file_pattern, "val", image_size, 1, with_class=False).take(int(num_steps))

    def generate():
        for l_input, _ in dataset:
            yield {"L": l_input.numpy()}

    return generate


@contextlib.contextmanager
def tflite_saved_model(model, fold_batch_norm=True):
    """A temporary SavedModel of ``model`` (BN folded) with one ``L`` (1, S, S, 1) signature.

    Yields:
      ``(path, folded_pairs)``.
    """
    pairs = []
    if fold_batch_norm:
        model, pairs = bn_folding.fold_batch_norms(model)
    archive = saved_model.build_export_archive(model, batch_size=1, image_signature=False)
    directory = tempfile.mkdtemp(prefix="kc-tflite-")
    try:
        path = os.path.join(directory, "saved_model")
        archive.write_out(path, verbose=False)
        yield path, pairs
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def convert_saved_model(path, variant, calibration=None, int8_io=False):
    """Converts a SavedModel (from :func:`tflite_saved_model`) to TFLite flatbuffer bytes.

    Args:
      path: SavedModel folder with a ``serving_default`` signature on ``L``.
      variant: one of :data:`VARIANTS`.
      calibration: representative-dataset callable; required for ``"int8"``.
      int8_io: ``"int8"`` only: int8 input and outputs instead of float32.
    """
    check_variants([variant])
    if variant == "int8" and calibration is None:
        raise ValueError("variant='int8' needs calibration (a representative dataset from shards)")
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
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter.convert()


def variant_path(output_dir, variant, name="colorizer"):
    return pathlib.Path(output_dir) / f"{name}_{variant}.tflite"


def convert_variants(model, output_dir, variants=VARIANTS, calibration=None, name="colorizer", overwrite=False,
                     progress=None):
    """Writes one ``<name>_<variant>.tflite`` per variant into ``output_dir``.

    Args:
      model: the Keras colorizer (not modified).
      output_dir: folder for the ``.tflite`` files (created).
      variants: subset of :data:`VARIANTS`.
      calibration: representative dataset (see :func:`calibration_dataset`),
        needed for ``"int8"``.
      name: file-name prefix.
      overwrite: replace existing files; otherwise an existing file is an error
        raised before any conversion starts.
      progress: optional callable ``progress(message)``.

    Returns:
      :class:`Converted`: the file of each variant and the folded pairs.
    """
    variants = check_variants(variants)
    if "int8" in variants and calibration is None:
        raise ValueError("variants include 'int8' but no calibration data was given (calibration_shards)")
    saved_model.model_geometry(model)
    paths = {v: variant_path(output_dir, v, name) for v in variants}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} already exist; pass overwrite=True (--overwrite) to replace them")
    say = progress or (lambda message: None)
    with tflite_saved_model(model) as (path, pairs):
        say(f"folded {len(pairs)} BatchNormalization layers into their conv/Dense layers")
        for variant in variants:
            say(f"converting {variant}")
            fileio.atomic_write_bytes(paths[variant], convert_saved_model(path, variant, calibration))
    return Converted(paths=paths, folded_pairs=pairs)
