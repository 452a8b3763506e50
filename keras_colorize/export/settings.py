"""The exporters' choices and defaults, importable without TensorFlow.

The command-line exporters define their flags from these and check them
before TensorFlow is imported, so ``--help`` and a bad value are answered at
once; :mod:`keras_colorize.export.image_ops` and
:mod:`keras_colorize.export.tflite` use the same names.
"""

# 4096 x 4096 = 16.8 megapixels: well above a 12 MP phone photo or a 600 dpi
# scan of a 6x8 inch print (~17 MP needs the limit raised). Peak memory of the
# full-resolution merge is about 90 bytes per pixel (float32 intermediates;
# measured +1.0 GB for a 12 MP JPEG with the paper model), ~1.5 GB at the limit.
DEFAULT_MAX_PIXELS = 4096 * 4096
#: Encodings of a served model's ``colorized_bytes``.
OUTPUT_FORMATS = ("jpeg", "png")

#: The default set of TFLite variants.
VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
#: Every variant :func:`keras_colorize.export.tflite.convert_variants` accepts.
ALL_VARIANTS = VARIANTS + ("int16x8",)
#: Variants whose activations are quantized: they need a representative dataset.
CALIBRATED_VARIANTS = ("int8", "int16x8")
DEFAULT_CALIBRATION_STEPS = 100
#: Activation ranges of ``int8`` cover this central percentage of the calibration values (None: min/max).
DEFAULT_CLIP_PERCENTILE = 99.5


def check_variants(variants):
    """Tuple of variant names; ValueError naming any unknown one."""
    variants = tuple(variants)
    unknown = [v for v in variants if v not in ALL_VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {ALL_VARIANTS}, got {list(variants)}")
    return variants
