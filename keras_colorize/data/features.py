"""TFRecord feature keys and the Example codec, defined once.

The shard writer (:mod:`keras_colorize.data.shards_lib`), the reader
(:mod:`keras_colorize.data.pipeline`), the demo generator and the tests all
import the keys from here, so a rename is one edit.

One ``tf.train.Example`` per image:

==========================  ========  =============================================
key                         type      meaning
==========================  ========  =============================================
``image/encoded``           bytes     JPEG, RGB, short side = the writer's short side
``image/format``            bytes     ``b"jpeg"``
``image/height``            int64     height of the encoded image
``image/width``             int64     width of the encoded image
``image/class/label``       int64     index into the class list, -1 = no label
``image/class/text``        bytes     class name (Places365 spelling), ``b""`` if none
``image/source``            bytes     source path relative to ``--source`` (provenance)
==========================  ========  =============================================
"""

import tensorflow as tf

IMAGE = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
LABEL = "image/class/label"
CLASS_NAME = "image/class/text"
SOURCE = "image/source"

NO_LABEL = -1


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def make_example(encoded, height, width, label=NO_LABEL, class_name="", source="", image_format="jpeg"):
    """Builds the ``tf.train.Example`` for one encoded image.

    Args:
      encoded: encoded image bytes (JPEG).
      height, width: size of the encoded image in pixels.
      label: class index, or ``NO_LABEL`` (-1).
      class_name: class name as text ("" if unlabelled).
      source: provenance, e.g. the path relative to the source folder.
      image_format: ``"jpeg"``.

    Returns:
      A ``tf.train.Example``; ``.SerializeToString()`` it for a TFRecord.
    """
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE: _bytes(encoded),
                FORMAT: _bytes(image_format.encode()),
                HEIGHT: _int64(height),
                WIDTH: _int64(width),
                LABEL: _int64(label),
                CLASS_NAME: _bytes(class_name.encode()),
                SOURCE: _bytes(source.encode()),
            }
        )
    )


def feature_spec():
    """The parsing spec of :func:`make_example` for ``tf.io.parse_single_example``."""
    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=NO_LABEL),
        CLASS_NAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def parse_example(serialized):
    """Decode step: a serialized Example -> dict of raw tensors (no image decoding)."""
    return tf.io.parse_single_example(serialized, feature_spec())
