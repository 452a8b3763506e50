"""Graph ops around the colorizer: encoded bytes -> model input, prediction -> full-resolution image.

These are the pre- and post-processing steps that the SavedModel's
``serving_default`` signature runs inside the graph, and that the LiteRT runner
runs eagerly around the TFLite interpreter, so both produce the same pixels:

1. decode the image (any format ``tf.io.decode_image`` reads; gray, RGBA and
   16-bit files are turned into 8-bit RGB), refusing empty strings and images
   over a pixel limit *before* the full decode where the header allows it
   (JPEG, PNG), so a decompression bomb never reaches the allocator;
2. take CIE L* at the image's own resolution, resize it (bilinear with
   antialiasing) to the model's square input and scale it to ``L / 100``;
3. after the model, resize the predicted ``(ab + 128) / 255`` map back to the
   original resolution (bilinear) and merge it with the original full-resolution
   L*, so no detail is lost to the model's 256 px input; out-of-gamut colours
   are desaturated at constant L*. Steps 2 and 3 are those of
   :mod:`keras_colorize.inference` (the colorize CLI), as graph ops.

All functions work on one image (no batch axis) so they can sit inside
``tf.map_fn`` over a batch of differently sized images.
"""

import tensorflow as tf

from keras_colorize import color
from keras_colorize import inference

# 4096 x 4096 = 16.8 megapixels: well above a 12 MP phone photo or a 600 dpi
# scan of a 6x8 inch print (~17 MP needs the limit raised). Peak memory of the
# full-resolution merge is about 90 bytes per pixel (float32 intermediates;
# measured +1.0 GB for a 12 MP JPEG with the paper model), ~1.5 GB at the limit.
DEFAULT_MAX_PIXELS = 4096 * 4096

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_FORMATS = ("jpeg", "png")


def _be_uint32(four_bytes):
    """Big-endian uint32 from a 4-byte string, as int64."""
    b = tf.cast(tf.io.decode_raw(four_bytes, tf.uint8), tf.int64)
    return ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]


def header_size(image_bytes):
    """(height, width) read from a JPEG or PNG header without decoding; (0, 0) otherwise.

    Corrupt JPEG headers raise ``InvalidArgumentError`` (an error for the
    request, not a crash).
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0], shape[1]

    def png_or_other():
        is_png = tf.logical_and(
            tf.strings.length(image_bytes) >= 24,
            tf.equal(tf.strings.substr(image_bytes, 0, 8), _PNG_SIGNATURE),
        )

        def png():
            # IHDR chunk: width at byte 16, height at byte 20.
            return _be_uint32(tf.strings.substr(image_bytes, 20, 4)), _be_uint32(tf.strings.substr(image_bytes, 16, 4))

        def other():
            return tf.constant(0, tf.int64), tf.constant(0, tf.int64)

        return tf.cond(is_png, png, other)

    return tf.cond(tf.io.is_jpeg(image_bytes), jpeg, png_or_other)


def _assert_pixels(height, width, max_pixels, what):
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    return tf.debugging.Assert(
        pixels <= max_pixels,
        [f"image too large ({what}): more than max_pixels={max_pixels} pixels; height, width =", height, width],
    )


def decode_rgb(image_bytes, max_pixels=DEFAULT_MAX_PIXELS):
    """Encoded image (scalar string) -> uint8 RGB ``(H, W, 3)``.

    Raises (as ``InvalidArgumentError`` at run time): empty bytes, bytes that
    are not a decodable image, images with more than ``max_pixels`` pixels.
    Animated GIFs give their first frame.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    not_empty = tf.debugging.assert_greater(
        tf.strings.length(image_bytes), 0, message="empty image bytes in the request"
    )
    with tf.control_dependencies([not_empty]):
        height, width = header_size(image_bytes)
        header_ok = _assert_pixels(height, width, max_pixels, "from the file header")
    with tf.control_dependencies([header_ok]):
        image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    shape = tf.shape(image)
    decoded_ok = _assert_pixels(shape[0], shape[1], max_pixels, "decoded")
    nonempty_ok = tf.debugging.assert_greater(shape[0] * shape[1], 0, message="image has no pixels")
    with tf.control_dependencies([decoded_ok, nonempty_ok]):
        return tf.identity(image)


def model_input(lightness, image_size):
    """Full-resolution L* ``(H, W, 1)`` in [0, 100] -> model input ``(S, S, 1)`` = L/100."""
    small = tf.image.resize(lightness, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(color.l_to_input(small), 0.0, 1.0)


def merge_full_resolution(lightness, ab_target):
    """Full-resolution L* ``(H, W, 1)`` + model output ``(S, S, 2)`` -> sRGB uint8 ``(H, W, 3)``.

    The same merge as :mod:`keras_colorize.inference` (the colorize CLI): a*b*
    (model units) resized bilinearly, half-pixel centres, to the L* map's size;
    L* is the original, untouched; colours outside sRGB are desaturated towards
    the gray of equal luminance (:func:`keras_colorize.inference.fit_to_gamut`)
    rather than clipped per channel, so the output keeps the input's L*.
    """
    size = tf.shape(lightness)[:2]
    ab = color.target_to_ab(tf.image.resize(ab_target, size, method="bilinear"))
    linear = inference.fit_to_gamut(color.lab_to_linear_rgb(tf.concat([lightness, ab], axis=-1)))
    return tf.cast(tf.round(color.linear_to_srgb(linear) * 255.0), tf.uint8)


def encode(rgb_uint8, output_format="jpeg", jpeg_quality=95):
    """uint8 RGB ``(H, W, 3)`` -> encoded bytes (scalar string)."""
    if output_format == "jpeg":
        return tf.io.encode_jpeg(rgb_uint8, quality=jpeg_quality, chroma_downsampling=False)
    if output_format == "png":
        return tf.io.encode_png(rgb_uint8)
    raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")


def check_output_format(output_format, jpeg_quality):
    """ValueError for an unknown format or a JPEG quality outside [1, 100]."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality!r}")
