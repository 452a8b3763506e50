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
   are desaturated at constant L*. Steps 2 and 3 live in
   :mod:`keras_colorize.inference.merge` (:func:`~keras_colorize.inference.merge.model_input`,
   the one shared with the colorize CLI, and :func:`~keras_colorize.inference.merge.merge_graph`);
   that module imports neither Pillow nor :mod:`keras_colorize.inference.api`.

For a guided model's ``colorize_guided`` signature, :func:`guided_inputs` turns
the request's hint points and reference photos into the model's ``hints`` and
``reference`` inputs (:mod:`keras_colorize.guidance.hint_ops`).

All functions work on one image (no batch axis) so they can sit inside
``tf.map_fn`` over a batch of differently sized images.
"""

import tensorflow as tf

from keras_colorize import color
from keras_colorize.export.settings import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS  # noqa: F401 - part of this API
from keras_colorize.inference import merge

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def decode_rgb(image_bytes, max_pixels=DEFAULT_MAX_PIXELS, apply_exif_orientation=True):
    """Encoded image (scalar string) -> uint8 RGB ``(H, W, 3)``, upright.

    Raises (as ``InvalidArgumentError`` at run time): empty bytes, bytes that
    are not a decodable image, images with more than ``max_pixels`` pixels.
    Animated GIFs give their first frame. A JPEG's EXIF Orientation is applied
    (:func:`exif_orientation`), as the colorize CLI does with Pillow.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    not_empty = tf.debugging.assert_greater(
        tf.strings.length(image_bytes), 0, message="empty image bytes in the request"
    )
    with tf.control_dependencies([not_empty]):
        height, width = header_size(image_bytes)
        header_ok = _assert_pixels(height, width, max_pixels, "from the file header")
    with tf.control_dependencies([header_ok]):
        image = _decode_upright(image_bytes, apply_exif_orientation)
    shape = tf.shape(image)
    decoded_ok = _assert_pixels(shape[0], shape[1], max_pixels, "decoded")
    nonempty_ok = tf.debugging.assert_greater(shape[0] * shape[1], 0, message="image has no pixels")
    with tf.control_dependencies([decoded_ok, nonempty_ok]):
        return tf.identity(image)


def _decode_upright(image_bytes, apply_exif_orientation=True):
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    if apply_exif_orientation:
        image = orient(image, exif_orientation(image_bytes))
    return image


# ---------------------------------------------------------------------------
# EXIF orientation, read from the JPEG bytes with tensor ops (no Python in the graph)
# ---------------------------------------------------------------------------

# Exif lives in an APP1 segment before the image data; APP segments are at most
# 64 KB each, and cameras put Exif first. Scanning the first 256 KB finds it
# behind an APP0 (JFIF) and a few ICC/XMP segments.
_EXIF_SCAN_BYTES = 1 << 18
_MAX_SEGMENTS = 64
_MAX_IFD_ENTRIES = 256
_EXIF_HEADER = (0x45, 0x78, 0x69, 0x66, 0x00, 0x00)  # b"Exif\0\0"
ORIENTATION_TAG = 0x0112


def exif_orientation(image_bytes):
    """EXIF Orientation (int32 in 1..8) of a JPEG's APP1 Exif segment; 1 when absent, invalid or not a JPEG.

    Walks the JPEG marker segments up to the start of scan, finds ``APP1``
    with the ``Exif\\0\\0`` header, and reads tag 0x0112 of IFD0 in the TIFF
    byte order it declares. Malformed data gives 1, never an error.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    raw = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, _EXIF_SCAN_BYTES), tf.uint8)
    data = tf.concat([tf.cast(raw, tf.int64), tf.zeros([1], tf.int64)], axis=0)  # never empty: gather stays valid
    size = tf.cast(tf.shape(raw)[0], tf.int64)

    def byte(i):
        i = tf.cast(i, tf.int64)
        inside = tf.logical_and(i >= 0, i < size)
        return tf.where(inside, tf.gather(data, tf.clip_by_value(i, 0, size)), tf.zeros_like(i))

    def u16(i, little):
        a, b = byte(i), byte(i + 1)
        return tf.where(little, b * 256 + a, a * 256 + b)

    def u32(i, little):
        return tf.where(little, u16(i + 2, little) * 65536 + u16(i, little), u16(i, little) * 65536 + u16(i + 2, little))

    big_endian = tf.constant(False)
    exif_header = tf.constant(_EXIF_HEADER, tf.int64)

    def more(pos, found, steps):
        return tf.logical_and(tf.logical_and(found < 0, steps < _MAX_SEGMENTS),
                              tf.logical_and(pos + 4 <= size, tf.equal(byte(pos), 0xFF)))

    def step(pos, found, steps):
        marker = byte(pos + 1)
        length = u16(pos + 2, big_endian)
        is_exif = tf.logical_and(tf.equal(marker, 0xE1),
                                 tf.reduce_all(tf.equal(byte(pos + 4 + tf.range(6, dtype=tf.int64)), exif_header)))
        stop = tf.logical_or(tf.logical_or(tf.equal(marker, 0xDA), tf.equal(marker, 0xD9)), length < 2)
        found = tf.where(is_exif, pos + 10, found)
        steps = tf.where(stop, tf.constant(_MAX_SEGMENTS), steps + 1)
        return pos + 2 + length, found, steps

    is_jpeg = tf.logical_and(tf.equal(byte(0), 0xFF), tf.equal(byte(1), 0xD8))
    _, tiff, _ = tf.while_loop(
        more, step,
        (tf.constant(2, tf.int64), tf.where(is_jpeg, tf.constant(-1, tf.int64), tf.constant(-2, tf.int64)),
         tf.constant(0)))
    little = tf.logical_and(tf.equal(byte(tiff), 0x49), tf.equal(byte(tiff + 1), 0x49))  # "II"
    big = tf.logical_and(tf.equal(byte(tiff), 0x4D), tf.equal(byte(tiff + 1), 0x4D))  # "MM"
    ifd = tiff + u32(tiff + 4, little)
    count = tf.minimum(u16(ifd, little), _MAX_IFD_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(count, dtype=tf.int64)
    match = tf.equal(u16(entries, little), ORIENTATION_TAG)
    value = tf.reduce_max(tf.concat([tf.where(match, u16(entries + 8, little), tf.zeros_like(entries)), [0]], 0))
    valid = tf.logical_and(tf.logical_and(tiff >= 0, tf.logical_or(little, big)),
                           tf.logical_and(value >= 1, value <= 8))
    return tf.cast(tf.where(valid, value, 1), tf.int32)


def orient(image, orientation):
    """Turns an ``(H, W, C)`` image upright for an EXIF Orientation 1..8 (what Pillow's ``exif_transpose`` does)."""

    def transpose():
        return tf.transpose(image, [1, 0, 2])

    branches = [
        lambda: image,  # 1: upright
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.image.rot90(image, 2),  # 3: upside down
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        transpose,  # 5: transposed
        lambda: tf.image.rot90(image, 3),  # 6: needs 90 degrees clockwise
        lambda: tf.image.rot90(transpose(), 2),  # 7: transversed
        lambda: tf.image.rot90(image, 1),  # 8: needs 90 degrees counter-clockwise
    ]
    upright = tf.switch_case(tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8) - 1, branches)
    upright.set_shape([None, None, image.shape[-1]])
    return upright


# ---------------------------------------------------------------------------
# A request batch: every image checked, the first bad one named by its index
# ---------------------------------------------------------------------------


def _format_known(image_bytes):
    """True for the formats ``tf.io.decode_image`` reads (JPEG, PNG, GIF, BMP, WebP), by their magic bytes."""
    head = lambda n: tf.strings.substr(image_bytes, 0, n)  # noqa: E731 - substr clips at the end
    return tf.reduce_any(tf.stack([
        tf.io.is_jpeg(image_bytes),
        tf.equal(head(8), _PNG_SIGNATURE),
        tf.equal(head(4), b"GIF8"),
        tf.equal(head(2), b"BM"),
        tf.logical_and(tf.equal(head(4), b"RIFF"),
                       tf.equal(tf.strings.substr(head(12), tf.minimum(8, tf.strings.length(head(12))), 4), b"WEBP")),
    ]))


def _assert_each(ok, message, *details, key=None):
    """Fails with ``"<key>[i]: <message>"`` for the first ``i`` where ``ok`` is False (key: ``image_bytes``)."""
    first = tf.argmin(tf.cast(ok, tf.int32), output_type=tf.int32)
    parts = [tf.strings.join([key or INPUT_KEY, "[", tf.strings.as_string(first), "]: ", message])]
    parts += [tf.gather(d, first) for d in details]
    return tf.debugging.Assert(tf.reduce_all(ok), parts)


INPUT_KEY = "image_bytes"


def model_inputs(image_bytes, image_size, max_pixels=DEFAULT_MAX_PIXELS):
    """A request's encoded images ``(N,)`` -> model inputs ``(N, S, S, 1)``, every image checked.

    The request fails (``InvalidArgumentError``, as TF Serving answers a bad
    batch) if any image is bad, with a message naming the first bad one:
    ``image_bytes[1]: empty image bytes``, ``... Unknown image file format``,
    ``... image too large``, ``... corrupt or truncated image data``.

    Decoder failures are caught per image by ``tf.data``'s ``ignore_errors``
    (the only in-graph way to learn which element a failing op was working on);
    pixel limits are checked from the header before any decode.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    count = tf.size(image_bytes)
    has_images = tf.debugging.Assert(count > 0, ["the request has no images"])
    with tf.control_dependencies([has_images]):
        not_empty = _assert_each(tf.strings.length(image_bytes) > 0, "empty image bytes in the request")
    with tf.control_dependencies([not_empty]):
        known = tf.map_fn(_format_known, image_bytes, fn_output_signature=tf.bool)
    format_ok = _assert_each(known, "Unknown image file format (not JPEG, PNG, GIF, BMP or WebP)")

    def prepare(index, one):
        height, width = header_size(one)
        fits = height * width <= max_pixels

        def decode():
            image = _decode_upright(one)
            shape = tf.cast(tf.shape(image), tf.int64)
            return merge.model_input(color.rgb_to_l(image), image_size), shape[0], shape[1]

        def refuse():
            return tf.zeros([image_size, image_size, 1]), tf.constant(0, tf.int64), tf.constant(0, tf.int64)

        inputs, decoded_height, decoded_width = tf.cond(fits, decode, refuse)
        return index, tf.stack([height, width]), tf.stack([decoded_height, decoded_width]), inputs

    with tf.control_dependencies([format_ok]):
        indices = tf.range(count)
    decoded = tf.data.Dataset.from_tensor_slices((indices, image_bytes)).map(prepare).ignore_errors()
    sentinel = tf.data.Dataset.from_tensors(
        (tf.constant(-1), tf.zeros([2], tf.int64), tf.zeros([2], tf.int64), tf.zeros([image_size, image_size, 1])))
    done, header, pixels, inputs = decoded.concatenate(sentinel).batch(2**31 - 1).get_single_element()
    done, header, pixels, inputs = done[:-1], header[:-1], pixels[:-1], inputs[:-1]
    decoded_ok = tf.scatter_nd(done[:, None], tf.ones_like(done, tf.int32), [count]) > 0
    checks = [_assert_each(decoded_ok, "corrupt or truncated image data (the decoder refused it)")]
    with tf.control_dependencies(checks):  # the gathers below need every image decoded
        position = tf.scatter_nd(done[:, None], tf.range(tf.size(done)), [count])  # image i -> its row
        header = tf.gather(header, position)
        pixels = tf.gather(pixels, position)
        limit = tf.constant(max_pixels, tf.int64)
        too_big = "image too large ({}): more than max_pixels=" + str(max_pixels) + " pixels; height, width ="
        checks.append(_assert_each(header[:, 0] * header[:, 1] <= limit, too_big.format("from the file header"),
                                   header))
        checks.append(_assert_each(pixels[:, 0] * pixels[:, 1] <= limit, too_big.format("decoded"), pixels))
        checks.append(_assert_each(pixels[:, 0] * pixels[:, 1] > 0, "image has no pixels"))
    with tf.control_dependencies(checks):
        return tf.identity(tf.gather(inputs, position))


# ---------------------------------------------------------------------------
# A guided request (``colorize_guided``): hint points and a reference photo per image
# ---------------------------------------------------------------------------

POINTS_KEY, COLORS_KEY, SIZES_KEY, REFERENCE_KEY = "points", "colors_ab", "sizes", "reference_bytes"


def guided_inputs(count, points, colors_ab, sizes, reference_bytes, image_size, max_pixels=DEFAULT_MAX_PIXELS):
    """A guided request's hints -> the model's ``hints`` ``(N, S, S, 3)`` and ``reference`` ``(N, R)``.

    Rows are images, as ``image_bytes``; images with fewer points than the
    request's ``P`` are padded with points of size 0. Every row is checked;
    the first bad one fails the request (``InvalidArgumentError``) naming it:
    ``points[1]: a point lies outside the image ...``.

    Args:
      count: number of images in the request (``N``).
      points: ``(N, P, 2)`` float (x, y) as fractions of the upright image's
        width and height, in [0, 1]; mapped onto the model's grid as
        ``x * S`` (the commands resize the whole photo to S x S).
      colors_ab: ``(N, P, 2)`` float a*b* in Lab units, in [-128, 128].
      sizes: ``(N, P)`` int patch sides in model-grid pixels, 1..9; 0 = padding.
      reference_bytes: ``(N,)`` encoded reference photo of each image; ``b""`` for none.
      image_size: the model's side S.
      max_pixels: largest accepted reference photo.

    Returns:
      ``(hints, reference)`` painted with :func:`keras_colorize.guidance.hint_ops.paint_hints`
      and :func:`keras_colorize.guidance.hint_ops.reference_vector`.
    """
    from keras_colorize.guidance import hint_ops  # noqa: PLC0415 - only guided models need it
    from keras_colorize.guidance import spec  # noqa: PLC0415

    points = tf.convert_to_tensor(points, tf.float32)
    colors_ab = tf.convert_to_tensor(colors_ab, tf.float32)
    sizes = tf.convert_to_tensor(sizes, tf.int32)
    reference_bytes = tf.convert_to_tensor(reference_bytes, tf.string)
    rows = tf.stack([tf.shape(points)[0], tf.shape(colors_ab)[0], tf.shape(sizes)[0], tf.size(reference_bytes)])
    per_image = tf.stack([tf.shape(points)[1], tf.shape(colors_ab)[1], tf.shape(sizes)[1]])
    shapes_ok = tf.debugging.Assert(
        tf.logical_and(tf.reduce_all(tf.equal(rows, tf.cast(count, tf.int32))),
                       tf.reduce_all(tf.equal(per_image, per_image[0]))),
        ["points (N, P, 2), colors_ab (N, P, 2), sizes (N, P) and reference_bytes (N,) must have one row per "
         "image in image_bytes and the same P; rows of points, colors_ab, sizes, reference_bytes, images:",
         rows, count, "; P of points, colors_ab, sizes:", per_image])
    with tf.control_dependencies([shapes_ok]):
        used = sizes > 0
    finite = lambda x: tf.reduce_all(tf.math.is_finite(x), axis=-1)  # noqa: E731
    inside = tf.reduce_all((points >= 0.0) & (points <= 1.0), axis=-1) & finite(points)
    in_gamut = tf.reduce_all(tf.abs(colors_ab) <= spec.HINT_AB_SCALE, axis=-1) & finite(colors_ab)
    checks = [
        _assert_each(tf.reduce_all((sizes >= 0) & (sizes <= spec.MAX_PATCH), axis=-1),
                     f"a size is outside 0..{spec.MAX_PATCH} (patch side in model-grid pixels; 0 = no point); "
                     "sizes =", sizes, key=SIZES_KEY),
        _assert_each(tf.reduce_all(inside | ~used, axis=-1),
                     "a point lies outside the image (x, y are fractions of its width and height, in [0, 1]); "
                     "points =", points, key=POINTS_KEY),
        _assert_each(tf.reduce_all(in_gamut | ~used, axis=-1),
                     "a colour is not an a*b* pair in [-128, 128]; colors_ab =", colors_ab, key=COLORS_KEY),
    ]
    given = tf.strings.length(reference_bytes) > 0
    with tf.control_dependencies(checks):
        known = tf.map_fn(_format_known, reference_bytes, fn_output_signature=tf.bool)
    checks.append(_assert_each(known | ~given, "Unknown image file format (not JPEG, PNG, GIF, BMP or WebP); "
                               "send b'' for no reference", key=REFERENCE_KEY))

    def paint(row):
        row_points, row_colors, row_sizes = row
        keep = row_sizes > 0
        return hint_ops.paint_hints(tf.boolean_mask(row_points, keep) * float(image_size),
                                    tf.boolean_mask(row_colors, keep), tf.boolean_mask(row_sizes, keep), image_size)

    def histogram(data):
        return tf.cond(tf.strings.length(data) > 0,
                       lambda: hint_ops.reference_vector(decode_rgb(data, max_pixels)),
                       lambda: hint_ops.no_reference())

    with tf.control_dependencies(checks):
        hints = tf.map_fn(paint, (points, colors_ab, sizes),
                          fn_output_signature=tf.TensorSpec([image_size, image_size, spec.HINT_CHANNELS], tf.float32))
        reference = tf.map_fn(histogram, reference_bytes,
                              fn_output_signature=tf.TensorSpec([spec.REFERENCE_SIZE], tf.float32))
    return hints, reference


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
