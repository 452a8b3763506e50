"""SavedModel export for TF Serving: self-contained signatures on encoded images and on L tensors.

The exported directory is what TF Serving loads as it is
(``<base>/<model_name>/<version>/saved_model.pb`` + ``variables/``). Nothing
from keras_colorize is needed to load or run it: colour conversion, resizing
and the full-resolution merge (:mod:`keras_colorize.export.image_ops`,
:mod:`keras_colorize.inference.merge`) are ops in the graph.

Signatures (names, dtypes and shapes are an API: clients and tests use them):

``serving_default`` (encoded images, what TF Serving's REST API sends as base64)
  inputs:  ``image_bytes``       string ``(N,)``  JPEG/PNG/GIF/BMP/WebP bytes, any size up to ``max_pixels``
  outputs: ``colorized_bytes``   string ``(N,)``  JPEG (or PNG) at each input's own resolution
           ``class_index``       int32  ``(N,)``  predicted scene class (models with a class head)
           ``class_probability`` float32 ``(N,)`` its softmax probability
           ``class_name``        string ``(N,)``  its name, when class names were given

  Output names ending in ``_bytes`` are base64-encoded by TF Serving's REST API.

``colorize_l`` (tensors at the model's size)
  inputs:  ``L``                   float32 ``(N, S, S, 1)``  L*/100 in [0, 1]
  outputs: ``ab``                  float32 ``(N, S, S, 2)``  (a*b* + 128) / 255
           ``class_probabilities`` float32 ``(N, C)``        softmax (models with a class head)

A guided model (``hints=True``; :mod:`keras_colorize.guidance.spec`) keeps
``serving_default`` and ``colorize_l`` as above (zero hints and no reference
are fed inside the graph: automatic colorization) and adds:

``colorize_guided`` (encoded images with colour hints; rows are images, as in ``serving_default``)
  inputs:  ``image_bytes``     string  ``(N,)``       as in ``serving_default``
           ``points``          float32 ``(N, P, 2)``  (x, y) of each hint as fractions of the upright
                                                      image's width and height, in [0, 1]
           ``colors_ab``       float32 ``(N, P, 2)``  its a*b* colour (CIE Lab units, in [-128, 128])
           ``sizes``           int32   ``(N, P)``     its patch side in model-grid pixels (1..9);
                                                      0 = padding, so images may have fewer than P points
           ``reference_bytes`` string  ``(N,)``       a reference photo (its palette steers the whole
                                                      image), ``""`` for none
  outputs: as ``serving_default``

``colorize_l_guided`` (tensors at the model's size: the network's own inputs)
  inputs:  ``L`` ``(N, S, S, 1)``, ``hints`` ``(N, S, S, 3)``, ``reference`` ``(N, R)`` float32
  outputs: as ``colorize_l``

The hint map and the reference histogram are painted in the graph with
:func:`keras_colorize.guidance.hint_ops.paint_hints` and
:func:`~keras_colorize.guidance.hint_ops.reference_vector`, the functions the
commands use; a bad hint fails the request naming its row (``points[1]: ...``).

Bad requests (bytes that are not an image, an empty string, an empty batch, an
image over ``max_pixels``) fail the request with ``INVALID_ARGUMENT``; the
server keeps running. One bad image fails the whole batch (TF Serving's
semantics), and the message names it by index: ``image_bytes[1]: ...``.
JPEGs are turned upright by their EXIF Orientation, as the colorize CLI does.

Example:
  >>> model = build_colorizer(get_preset("tiny"))
  >>> path = export_saved_model(model, "models/colorizer", version=1)
  >>> # models/colorizer/1/saved_model.pb
"""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import tempfile
from typing import Optional, Sequence

import keras
import tensorflow as tf

from keras_colorize import cli
from keras_colorize import color
from keras_colorize.models import model_contract
from keras_colorize.export import bn_folding
from keras_colorize.export import image_ops
from keras_colorize.inference import merge

SERVING_SIGNATURE = "serving_default"
TENSOR_SIGNATURE = "colorize_l"
#: Signatures of a guided model (``hints=True``) only.
GUIDED_SIGNATURE = "colorize_guided"
GUIDED_TENSOR_SIGNATURE = "colorize_l_guided"


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How the ``serving_default`` signature treats images.

    Attributes:
      output_format: ``"jpeg"`` (small responses) or ``"png"`` (lossless).
      jpeg_quality: 1..100, used for ``"jpeg"``; 4:4:4 chroma (colour is the point).
      max_pixels: largest accepted image (height * width); bigger ones are refused.
      class_names: names of the model's scene classes, in class-index order;
        adds a ``class_name`` output. Must have one name per class.
    """

    output_format: str = "jpeg"
    jpeg_quality: int = 95
    max_pixels: int = image_ops.DEFAULT_MAX_PIXELS
    class_names: Optional[Sequence[str]] = None

    def validate(self, num_classes):
        image_ops.check_output_format(self.output_format, self.jpeg_quality)
        if int(self.max_pixels) <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels!r}")
        if self.class_names is not None:
            if num_classes is None:
                raise ValueError("class_names were given but the model has no class head")
            if len(self.class_names) != num_classes:
                raise ValueError(
                    f"class_names must have one name per class ({num_classes}), got {len(self.class_names)} names"
                )


def _contract(model):
    contract = model_contract.check_model_contract(model)  # ValueError naming what does not fit
    if contract.ab_key != "ab":
        raise ValueError("model outputs must be a dict with 'ab' (and optionally 'class') to be exported, got "
                         f"{'a single output' if contract.ab_key is None else repr(contract.ab_key)}")
    return contract


def model_geometry(model):
    """(image_size, num_classes or None) of a colorizer, checked against the model contract.

    The shared check (:func:`keras_colorize.models.model_contract.check_model_contract`),
    plus what the signatures here need: the a*b* output under the key ``"ab"``.
    """
    contract = _contract(model)
    return contract.image_size, contract.num_classes


def is_guided(model):
    """Whether ``model`` takes the ``hints`` and ``reference`` inputs (checked against the contract)."""
    return _contract(model).guided


def _call(model, guided, l_input, hints=None, reference=None):
    """The model's outputs on L; a guided model gets zero hints and no reference unless given."""
    if not guided:
        return model(l_input, training=False)
    from keras_colorize.guidance import hint_ops  # noqa: PLC0415 - only guided models need it

    batch = tf.shape(l_input)[0]
    size = int(l_input.shape[1])
    return model({"L": l_input,
                  "hints": hint_ops.no_hints(size, batch) if hints is None else hints,
                  "reference": hint_ops.no_reference(batch) if reference is None else reference}, training=False)


def _tensor_outputs(outputs):
    result = {"ab": tf.cast(outputs["ab"], tf.float32)}
    if "class" in outputs:
        result["class_probabilities"] = tf.cast(outputs["class"], tf.float32)
    return result


def _tensor_fn(model, guided=False):
    """L (N, S, S, 1) -> {'ab', 'class_probabilities'} (a guided model: zero hints, no reference)."""

    def colorize_l(L):  # noqa: N803 (the signature's input key is the paper's name)
        return _tensor_outputs(_call(model, guided, L))

    return colorize_l


def _guided_tensor_fn(model):
    """L (N, S, S, 1), hints (N, S, S, 3), reference (N, R) -> {'ab', 'class_probabilities'}."""

    def colorize_l_guided(L, hints, reference):  # noqa: N803
        return _tensor_outputs(_call(model, True, L, hints, reference))

    return colorize_l_guided


def _image_outputs(image_bytes, outputs, config):
    """The encoded images' outputs: colorized_bytes (N,) + class outputs, from the model's outputs."""
    max_pixels = int(config.max_pixels)

    def finish(args):
        one, ab_target = args
        rgb = image_ops.decode_rgb(one, max_pixels)
        merged = merge.merge_graph(color.rgb_to_l(rgb), ab_target)
        return image_ops.encode(merged, config.output_format, config.jpeg_quality)

    ab = tf.cast(outputs["ab"], tf.float32)
    result = {"colorized_bytes": tf.map_fn(finish, (image_bytes, ab), fn_output_signature=tf.TensorSpec([], tf.string))}
    if "class" in outputs:
        probabilities = tf.cast(outputs["class"], tf.float32)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        result["class_index"] = index
        result["class_probability"] = tf.reduce_max(probabilities, axis=-1)
        if config.class_names is not None:
            result["class_name"] = tf.gather(tf.constant(list(config.class_names), tf.string), index)
    return result


def _image_fn(model, image_size, config, guided=False):
    """image_bytes (N,) -> colorized_bytes (N,) + class outputs (a guided model: zero hints, no reference)."""

    def serving_default(image_bytes):
        # Every image is checked before the model runs; a bad one fails the whole request (TF Serving's
        # semantics for a batch) with INVALID_ARGUMENT naming it: "image_bytes[1]: ...".
        inputs = image_ops.model_inputs(image_bytes, image_size, int(config.max_pixels))
        return _image_outputs(image_bytes, _call(model, guided, inputs), config)

    return serving_default


def _guided_image_fn(model, image_size, config):
    """image_bytes (N,) + points, colors_ab, sizes, reference_bytes -> what serving_default returns."""

    def colorize_guided(image_bytes, points, colors_ab, sizes, reference_bytes):
        inputs = image_ops.model_inputs(image_bytes, image_size, int(config.max_pixels))
        hints, reference = image_ops.guided_inputs(tf.size(image_bytes), points, colors_ab, sizes, reference_bytes,
                                                   image_size, int(config.max_pixels))
        return _image_outputs(image_bytes, _call(model, True, inputs, hints, reference), config)

    return colorize_guided


def guided_input_signature():
    """The ``colorize_guided`` inputs, in argument order (names, dtypes and shapes are the API)."""
    return [
        tf.TensorSpec([None], tf.string, name=image_ops.INPUT_KEY),
        tf.TensorSpec([None, None, 2], tf.float32, name=image_ops.POINTS_KEY),
        tf.TensorSpec([None, None, 2], tf.float32, name=image_ops.COLORS_KEY),
        tf.TensorSpec([None, None], tf.int32, name=image_ops.SIZES_KEY),
        tf.TensorSpec([None], tf.string, name=image_ops.REFERENCE_KEY),
    ]


def _guided_tensor_spec(batch_size, image_size):
    from keras_colorize.guidance import spec  # noqa: PLC0415

    return [
        tf.TensorSpec([batch_size, image_size, image_size, 1], tf.float32, name=spec.L_INPUT),
        tf.TensorSpec([batch_size, image_size, image_size, spec.HINT_CHANNELS], tf.float32, name=spec.HINTS_INPUT),
        tf.TensorSpec([batch_size, spec.REFERENCE_SIZE], tf.float32, name=spec.REFERENCE_INPUT),
    ]


def signature_names(model):
    """The signatures :func:`build_export_archive` writes for ``model`` (with the image signatures)."""
    names = [SERVING_SIGNATURE, TENSOR_SIGNATURE]
    return names + [GUIDED_SIGNATURE, GUIDED_TENSOR_SIGNATURE] if is_guided(model) else names


def build_export_archive(model, config=None, batch_size=None, image_signature=True):
    """A ``keras.export.ExportArchive`` holding the colorizer and its signatures.

    Args:
      model: colorizer following the model contract (input ``L`` (S, S, 1),
        or a guided model's ``L``, ``hints``, ``reference``; outputs dict with
        ``ab`` and optionally ``class``).
      config: :class:`ServingConfig` for the image signature.
      batch_size: fixed batch size of the tensor signature (``1`` for TFLite),
        ``None`` for any.
      image_signature: add ``serving_default`` on encoded images (and, for a
        guided model, ``colorize_guided``); without it the tensor signature is
        the default one (what TFLite converts): on ``L`` only, or on ``L``,
        ``hints`` and ``reference`` for a guided model.

    Returns:
      The archive; ``archive.write_out(path)`` writes the SavedModel.
    """
    config = config or ServingConfig()
    contract = _contract(model)
    image_size, guided = contract.image_size, contract.guided
    config.validate(contract.num_classes)
    archive = keras.export.ExportArchive()
    # No archive.track(model): endpoints capture the variables they use, and
    # tracking the model as well would store every weight twice (the Keras
    # variables and their tf.Variables; 484 MB instead of 242 MB for the paper
    # network) and walk the whole model at save time. The colorizer has no
    # lookup tables, the only other reason to track.
    l_spec = tf.TensorSpec([batch_size, image_size, image_size, 1], tf.float32, name="L")
    if image_signature:
        archive.add_endpoint(
            SERVING_SIGNATURE,
            _image_fn(model, image_size, config, guided),
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
        )
        archive.add_endpoint(TENSOR_SIGNATURE, _tensor_fn(model, guided), input_signature=[l_spec])
        if guided:
            archive.add_endpoint(GUIDED_SIGNATURE, _guided_image_fn(model, image_size, config),
                                 input_signature=guided_input_signature())
            archive.add_endpoint(GUIDED_TENSOR_SIGNATURE, _guided_tensor_fn(model),
                                 input_signature=_guided_tensor_spec(batch_size, image_size))
    elif guided:
        archive.add_endpoint(SERVING_SIGNATURE, _guided_tensor_fn(model),
                             input_signature=_guided_tensor_spec(batch_size, image_size))
    else:
        archive.add_endpoint(SERVING_SIGNATURE, _tensor_fn(model), input_signature=[l_spec])
    return archive


def _check_version(version):
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or str(number) != str(version).strip():
        raise ValueError(f"version must be a non-negative integer (TF Serving's version folder), got {version!r}")
    return number


METADATA_FILE = "assets.extra/keras_colorize.json"


def _write_metadata(directory, model, config):
    """What was exported and how, beside the graph (TF Serving ignores ``assets.extra``)."""
    import keras_colorize  # noqa: PLC0415

    image_size, num_classes = model_geometry(model)
    metadata = {
        "keras_colorize_version": keras_colorize.__version__,
        "tensorflow_version": tf.__version__,
        "model_name": model.name,
        "image_size": image_size,
        "num_classes": num_classes,
        "guided": is_guided(model),
        "signatures": signature_names(model),
        "serving_config": {**dataclasses.asdict(config),
                           "class_names": list(config.class_names) if config.class_names else None},
    }
    path = pathlib.Path(directory) / METADATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metadata, indent=1))


WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


def _write_warmup(directory, guided=False):
    """One request per image signature that TF Serving replays at load time.

    Without it the first real request pays for graph initialization and
    kernel selection; with it the model is marked available only when warm.
    The request is a small gray PNG, so the merge path runs too; a guided
    model's ``colorize_guided`` request adds one hint point and the same PNG
    as reference photo.
    """
    cli.require_extra("tensorflow_serving.apis.predict_pb2", "serving")  # names the extra if it is missing
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # noqa: PLC0415

    png = tf.io.encode_png(tf.fill([32, 48, 3], tf.constant(128, tf.uint8))).numpy()
    requests = [(SERVING_SIGNATURE, {image_ops.INPUT_KEY: tf.make_tensor_proto([png], dtype=tf.string)})]
    if guided:
        requests.append((GUIDED_SIGNATURE, {
            image_ops.INPUT_KEY: tf.make_tensor_proto([png], dtype=tf.string),
            image_ops.POINTS_KEY: tf.make_tensor_proto([[[0.5, 0.5]]], dtype=tf.float32),
            image_ops.COLORS_KEY: tf.make_tensor_proto([[[20.0, -30.0]]], dtype=tf.float32),
            image_ops.SIZES_KEY: tf.make_tensor_proto([[3]], dtype=tf.int32),
            image_ops.REFERENCE_KEY: tf.make_tensor_proto([png], dtype=tf.string),
        }))
    path = pathlib.Path(directory) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature),
                                                 inputs=inputs)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def check_target(output, version, overwrite=False):
    """``<output>/<version>`` as a Path; ValueError for a bad version, FileExistsError if it exists."""
    number = _check_version(version)
    target = pathlib.Path(output) / str(number)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    return target


# Staging folders: ".tmp-<version>-<pid>-<random>" (the export being written) and
# ".old-<version>-<pid>-<random>" (the replaced version, during an overwrite).
# The pid names the exporter, so a later export can tell a dead one's debris
# from a concurrent live export's work.
_STAGING_RE = re.compile(r"^\.(tmp|old)-(\d+)-(\d+)-")


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staging(output):
    """Removes the staging folders that killed exporters left in ``output``; returns their names.

    Folders of live processes (a concurrent export) are kept. A dead
    exporter's ``.old-<version>-*`` (a replaced version caught between the
    two renames of an overwrite) is moved back to ``<output>/<version>`` when
    that version is missing, so nothing is lost.
    """
    output = pathlib.Path(output)
    removed = []
    if not output.is_dir():
        return removed
    for entry in sorted(output.iterdir()):
        match = _STAGING_RE.match(entry.name)
        if not match or not entry.is_dir() or _pid_alive(int(match.group(3))):
            continue
        target = output / match.group(2)
        if match.group(1) == "old" and (entry / "model").is_dir() and not target.exists():
            os.replace(entry / "model", target)
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def export_saved_model(model, output, version, config=None, overwrite=False, fold_batch_norm=True, warmup=True):
    """Write the serving SavedModel to ``<output>/<version>/``, atomically.

    The SavedModel is written into a temporary folder inside ``output`` (a name
    TF Serving ignores, as it is not a number) and renamed into place only when
    complete, so a watching server never sees half a model. Staging folders
    left by killed exporters are removed first (:func:`remove_stale_staging`).

    Args:
      model: the colorizer (a Keras model following the model contract).
      output: the model's base folder, ``<base>/<model_name>`` (TF Serving's
        ``base_path``).
      version: integer version; the folder name TF Serving loads.
      config: :class:`ServingConfig`.
      overwrite: replace an existing ``<output>/<version>``; without it an
        existing version is an error.
      fold_batch_norm: serve the model with every inference-mode BatchNorm
        folded into the preceding conv/Dense (same outputs within float
        rounding, about 10 % less latency on the CPU; see BUILD_NOTES.md).
      warmup: write TF Serving's warmup request (needs the ``[serving]``
        extra, checked before any work); False for a SavedModel only loaded
        in Python (the TFLite report's reference).

    Returns:
      ``pathlib.Path`` of the written version folder.
    """
    if warmup:
        cli.require_extra("tensorflow_serving.apis.predict_pb2", "serving")
    remove_stale_staging(output)  # first: it may move back a version a killed overwrite had taken away
    target = check_target(output, version, overwrite)
    number = int(target.name)
    output = target.parent
    served = bn_folding.fold_batch_norms(model)[0] if fold_batch_norm else model
    archive = build_export_archive(served, config)
    output.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{number}-{os.getpid()}-", dir=output))
    try:
        archive.write_out(str(staging / "model"), verbose=False)
        _write_metadata(staging / "model", model, config or ServingConfig())
        if warmup:
            _write_warmup(staging / "model", is_guided(model))
        if target.exists():
            retired = pathlib.Path(tempfile.mkdtemp(prefix=f".old-{number}-{os.getpid()}-", dir=output))
            os.replace(target, retired / "model")
            os.replace(staging / "model", target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
