"""Send images to a running TF Serving colorizer and write the colorized results.

Two protocols, same result:

* REST (port 8501): plain HTTP (``urllib``), ``POST /v1/models/<name>[/versions/<v>]:predict``
  with ``{"signature_name": "serving_default", "instances": [{"b64": ...}, ...]}``;
  outputs whose names end in ``_bytes`` come back base64-encoded.
* gRPC (port 8500): ``tensorflow-serving-api``'s ``PredictionService.Predict``.

Command line (``kc-serving-client``, or ``python -m keras_colorize.export.serving_client``;
gRPC needs the ``[serving]`` extra, REST nothing more; exit status in :func:`main`)::

    kc-serving-client --server=localhost:8501 --protocol=rest \\
        --model_name=colorizer --output_dir=colorized scans/*.jpg

writes ``colorized/<name>.<jpg|png>`` (the format the SavedModel was exported
with) and prints the predicted scene class of each image. A guided model
(exported from a model with ``hints=True``) also takes colour hints, sent to its
``colorize_guided`` signature::

    kc-serving-client --output_dir=colorized --hints=scan.jpg.hints.json scan.jpg   # one photo
    kc-serving-client --output_dir=colorized --reference=sunset.jpg scans/*.jpg     # a palette for all

Python::

    results = rest_predict([open("a.jpg", "rb").read()], "http://localhost:8501", "colorizer")
    results[0]["colorized_bytes"], results[0].get("class_name")
    hinted = rest_predict([photo], guidance=[Guidance(points=[(0.3, 0.2)], colors_ab=[(60, 50)], sizes=[3])])
"""

import base64
import json
import pathlib
import re
import sys
import urllib.error
import urllib.request

from keras_colorize import fileio

SIGNATURE = "serving_default"
INPUT_KEY = "image_bytes"
#: A guided model's signature on encoded images with colour hints (keras_colorize.export.saved_model).
GUIDED_SIGNATURE = "colorize_guided"


class Guidance:
    """The hints of one image in a ``colorize_guided`` request.

    Args:
      points: (x, y) pairs as fractions of the upright image's width and height, in [0, 1].
      colors_ab: one (a*, b*) colour per point (CIE Lab units).
      sizes: one patch side per point, in model-grid pixels (1..9).
      reference: encoded reference photo bytes, or ``b""`` for none.
    """

    def __init__(self, points=(), colors_ab=(), sizes=(), reference=b""):
        self.points = [[float(x), float(y)] for x, y in points]
        self.colors_ab = [[float(a), float(b)] for a, b in colors_ab]
        self.sizes = [int(n) for n in sizes]
        self.reference = bytes(reference or b"")
        if not len(self.points) == len(self.colors_ab) == len(self.sizes):
            raise ValueError(f"points, colors_ab and sizes must have one entry per point, got {len(self.points)}, "
                             f"{len(self.colors_ab)} and {len(self.sizes)}")


def _guided_columns(guidance, count):
    """The request's ``points``/``colors_ab``/``sizes``/``reference_bytes`` rows, padded to one P.

    Rows with fewer points get points of size 0 (the signature ignores them);
    P is at least 1, so no row is an empty list (whose shape JSON cannot carry).
    """
    guidance = list(guidance)
    if len(guidance) != count:
        raise ValueError(f"guidance must have one entry per image ({count}), got {len(guidance)}")
    width = max([1] + [len(g.sizes) for g in guidance])
    pad = lambda values, fill: values + [fill] * (width - len(values))  # noqa: E731
    return {
        "points": [pad(g.points, [0.0, 0.0]) for g in guidance],
        "colors_ab": [pad(g.colors_ab, [0.0, 0.0]) for g in guidance],
        "sizes": [pad(g.sizes, 0) for g in guidance],
        "reference_bytes": [g.reference for g in guidance],
    }


class ServingError(RuntimeError):
    """The server refused the request (e.g. INVALID_ARGUMENT for bytes that are not an image)."""


# TF Serving's words for a signature the model does not have: gRPC Predict (FAILED_PRECONDITION)
# ``Serving signature key "X" not found.``, REST (400) ``Serving signature name: "X" not found in signature def``.
_NO_SIGNATURE = re.compile(r'signature (?:key|name):? \\?"(?P<name>[^"\\]+)\\?" not found')


def _refused(signature, model_name, server, where, detail):
    """The exception for a refused request: a guided request to a model without ``colorize_guided`` is
    :class:`~keras_colorize.guidance.hint_file.NoHintInputsError` (a ``ValueError``: bad use, exit 2)."""
    match = _NO_SIGNATURE.search(detail)
    if signature == GUIDED_SIGNATURE and match and match.group("name") == GUIDED_SIGNATURE:
        from keras_colorize.guidance import hint_file  # noqa: PLC0415

        return hint_file.NoHintInputsError(
            f"{hint_file.no_hint_inputs_message(f'{model_name} at {server}', 'hints or a reference photo')} "
            f"(the served model has no {GUIDED_SIGNATURE} signature)")
    return ServingError(f"{where}: {detail}")


def _check_images(images):
    images = [bytes(i) for i in images]
    if not images:
        raise ValueError("images must contain at least one encoded image")
    empty = [n for n, i in enumerate(images) if not i]
    if empty:
        raise ValueError(f"images at positions {empty} are empty (0 bytes)")
    return images


def _decode_rest_value(key, value):
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if key.endswith("_bytes") and isinstance(value, str):
        return base64.b64decode(value)
    if key == "class_name" and isinstance(value, str):
        return value
    return value


def rest_predict(images, server="http://localhost:8501", model_name="colorizer", version=None,
                 signature=None, timeout=120.0, guidance=None):
    """Colorizes encoded images through TF Serving's REST API.

    Args:
      images: list of encoded image bytes (JPEG, PNG, ...).
      server: ``http://host:port`` of the REST endpoint (``host:port`` works too).
      model_name: the served model's name (``models.config``/``--model_name``).
      version: a specific version, or None for the latest.
      signature: default ``serving_default``, or ``colorize_guided`` with ``guidance``.
      guidance: one :class:`Guidance` per image (a guided model's hints), or None.

    Returns:
      list (one per image) of dicts: ``colorized_bytes`` (bytes) and, with a
      class head, ``class_index``, ``class_probability``, ``class_name``.

    Raises:
      ServingError: the server answered with an error (message included).
      NoHintInputsError: ``guidance`` for a served model without the
        ``colorize_guided`` signature (a ``ValueError``).
    """
    images = _check_images(images)
    if "://" not in server:
        server = f"http://{server}"
    path = f"/v1/models/{model_name}" + (f"/versions/{int(version)}" if version is not None else "") + ":predict"
    b64 = lambda data: {"b64": base64.b64encode(data).decode("ascii")}  # noqa: E731
    if guidance is None:
        instances = [b64(i) for i in images]
    else:  # named inputs, one row per image
        columns = _guided_columns(guidance, len(images))
        instances = [{INPUT_KEY: b64(image), "points": columns["points"][n], "colors_ab": columns["colors_ab"][n],
                      "sizes": columns["sizes"][n], "reference_bytes": b64(columns["reference_bytes"][n])}
                     for n, image in enumerate(images)]
    signature = signature or (SIGNATURE if guidance is None else GUIDED_SIGNATURE)
    body = json.dumps({
        "signature_name": signature,
        "instances": instances,
    }).encode()
    request = urllib.request.Request(server.rstrip("/") + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except ValueError:
            pass
        raise _refused(signature, model_name, server, f"{server}{path}", f"HTTP {e.code}: {detail}") from e
    except urllib.error.URLError as e:
        raise ServingError(f"cannot reach TF Serving at {server}: {e.reason}") from e
    predictions = payload["predictions"]
    results = []
    for prediction in predictions:
        if not isinstance(prediction, dict):  # one output only: TF Serving returns the bare value
            prediction = {"colorized_bytes": prediction}
        results.append({k: _decode_rest_value(k, v) for k, v in prediction.items()})
    return results


def grpc_predict(images, server="localhost:8500", model_name="colorizer", version=None,
                 signature=None, timeout=120.0, guidance=None):
    """Same as :func:`rest_predict` over gRPC (``tensorflow-serving-api``)."""
    import grpc  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415 - tensorflow-serving-api depends on it anyway
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: PLC0415
    from keras_colorize import cli  # noqa: PLC0415

    cli.require_extra("tensorflow_serving.apis.predict_pb2", "serving")  # names the extra if it is missing
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: PLC0415

    images = _check_images(images)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature or (SIGNATURE if guidance is None else GUIDED_SIGNATURE)
    if version is not None:
        request.model_spec.version.value = int(version)

    def strings(values):
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]),
            string_val=values)

    request.inputs[INPUT_KEY].CopyFrom(strings(images))
    if guidance is not None:
        columns = _guided_columns(guidance, len(images))
        request.inputs["points"].CopyFrom(tf.make_tensor_proto(columns["points"], tf.float32))
        request.inputs["colors_ab"].CopyFrom(tf.make_tensor_proto(columns["colors_ab"], tf.float32))
        request.inputs["sizes"].CopyFrom(tf.make_tensor_proto(columns["sizes"], tf.int32))
        request.inputs["reference_bytes"].CopyFrom(strings(columns["reference_bytes"]))
    # Colorized images can be large: lift gRPC's 4 MB default message limit.
    options = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            raise _refused(request.model_spec.signature_name, model_name, server, server,
                           f"{e.code().name}: {e.details()}") from e
    columns = {}
    for key, proto in response.outputs.items():
        # make_ndarray reads both encodings a server may use (typed *_val fields or packed tensor_content).
        values = tf.make_ndarray(proto).tolist()
        if key == "class_name":
            values = [v.decode("utf-8") for v in values]
        columns[key] = values
    return [{k: v[i] for k, v in columns.items()} for i in range(len(images))]


def _extension(encoded):
    if encoded[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if encoded[:2] == b"\xff\xd8":
        return ".jpg"
    return ".img"


def upright_size(photo):
    """(width, height) of an image file as displayed (EXIF orientation applied), from its header."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(photo) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def guidance_for(photo, hints=None, reference=None):
    """The :class:`Guidance` of one photo file: a hint file's points and/or a reference photo.

    Points are sent as fractions of the photo's upright width and height
    (pixel coordinates of the hint file are divided by the photo's size);
    ``reference`` (a photo file) is sent when the hint file names none, as
    ``Colorizer.colorize(image, hints=..., reference=...)`` does.

    Raises:
      ValueError: a bad hint file (:class:`keras_colorize.guidance.hint_file.HintFileError`),
        a point outside the photo, a reference that is not an image, or a
        ``saturation`` other than 1 (applied after the model by the commands;
        the signature has no such input).
    """
    from keras_colorize.guidance import hint_file  # noqa: PLC0415 - only guided requests need it

    points, colors_ab, sizes, reference_bytes = [], [], [], b""
    if hints:
        parsed = hint_file.Hints.load(hints)
        if parsed.saturation != 1.0:
            raise ValueError(f"hints file {str(hints)!r}: saturation {parsed.saturation:g} is applied after the model "
                             "by kc-colorize; the colorize_guided signature has no such input (remove it)")
        width, height = upright_size(photo)
        parsed.check_photo(width, height)
        xy, ab, patch = parsed.grid_points(width, height, 1)  # a grid of side 1: fractions of width and height
        points, colors_ab, sizes = xy.tolist(), ab.tolist(), patch.tolist()
        if parsed.reference is not None:
            reference_bytes = parsed.reference.read_bytes()
    if reference:
        hint_file.check_reference(reference)
        reference_bytes = reference_bytes or pathlib.Path(reference).read_bytes()
    return Guidance(points, colors_ab, sizes, reference_bytes)


def colorize_files(inputs, output_dir, protocol="rest", server=None, model_name="colorizer", version=None,
                   batch_size=4, overwrite=False, progress=True, hints=None, reference=None):
    """Sends image files to the server in batches and writes ``<output_dir>/<stem>.<ext>``.

    With ``hints`` (a hint file for the one input photo) and/or ``reference``
    (a reference photo for every input) the requests go to a guided model's
    ``colorize_guided`` signature (:func:`guidance_for`).

    Returns:
      list of ``(output path, result dict without the image bytes)``.

    Raises:
      ValueError: bad arguments, a bad hint file or reference photo (checked
        for every input before the first request), or hints for a served model
        without ``colorize_guided``
        (:class:`~keras_colorize.guidance.hint_file.NoHintInputsError`); nothing is written then.
      ServingError: the server refused a request or cannot be reached.
    """
    if protocol not in ("rest", "grpc"):
        raise ValueError(f"protocol must be 'rest' or 'grpc', got {protocol!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if not output_dir:
        raise ValueError("output_dir is required")
    inputs = [pathlib.Path(p) for p in inputs]
    missing = [str(p) for p in inputs if not p.is_file()]
    if not inputs or missing:
        raise ValueError(f"inputs must be existing image files; missing: {missing or 'no inputs given'}")
    output_dir = pathlib.Path(output_dir)
    if any(p.resolve().parent == output_dir.resolve() for p in inputs):
        raise ValueError(f"output_dir {str(output_dir)!r} holds input files; choose another folder")
    if hints and len(inputs) != 1:
        raise ValueError(f"hints are for one photo (its points are in that photo's coordinates), got {len(inputs)} "
                         "inputs")
    guidance = [guidance_for(p, hints, reference) for p in inputs] if hints or reference else None
    predict = rest_predict if protocol == "rest" else grpc_predict
    server = server or ("localhost:8501" if protocol == "rest" else "localhost:8500")
    from tqdm import tqdm  # noqa: PLC0415

    written = []
    bar = tqdm(total=len(inputs), disable=not progress, unit="image")
    for start in range(0, len(inputs), int(batch_size)):
        chunk = inputs[start:start + int(batch_size)]
        results = predict([p.read_bytes() for p in chunk], server, model_name, version,
                          guidance=None if guidance is None else guidance[start:start + int(batch_size)])
        for source, result in zip(chunk, results):
            encoded = result.pop("colorized_bytes")
            target = output_dir / (source.stem + _extension(encoded))
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite)")
            fileio.atomic_write_bytes(target, encoded)
            written.append((target, result))
        bar.update(len(chunk))
    bar.close()
    return written


def _define_flags():
    from absl import flags  # noqa: PLC0415

    flags.DEFINE_string("output_dir", None, "Folder for the colorized files (<input stem>.<jpg|png>).")
    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "REST (plain HTTP) or gRPC (tensorflow-serving-api).")
    flags.DEFINE_string("server", None, "host:port; default localhost:8501 (REST) or localhost:8500 (gRPC).")
    flags.DEFINE_string("model_name", "colorizer", "Served model name.")
    flags.DEFINE_integer("version", None, "Model version; default the latest served.")
    flags.DEFINE_integer("batch_size", 4, "Images per request.")
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
    flags.DEFINE_string("hints", None, "Hint file (JSON) for the one input photo: sent to a guided model's "
                        "colorize_guided signature.")
    flags.DEFINE_string("reference", None, "Reference photo for every input whose hint file names none "
                        "(colorize_guided).")
    flags.mark_flag_as_required("output_dir")


COMMAND = "kc-serving-client"


def main(argv):
    """``kc-serving-client --output_dir=... images...``.

    Exit status: 0 every image written; 1 the server refused a request or
    cannot be reached (the images of earlier requests are written); 2 bad
    arguments (a missing or unparsable flag, no or missing inputs, an output
    that exists without ``--overwrite``, ``--protocol=grpc`` without the
    ``[serving]`` extra, a bad hint file or reference photo, ``--hints`` for
    more than one input, ``--hints``/``--reference`` for a served model
    without the ``colorize_guided`` signature), as one line
    ``kc-serving-client: error: ...``; nothing is written then.
    """
    from absl import flags  # noqa: PLC0415

    from keras_colorize import cli  # noqa: PLC0415

    flag_values = flags.FLAGS
    if flag_values.protocol == "grpc":
        cli.require_extra("tensorflow_serving.apis.predict_pb2", "serving")  # before any request
    inputs = argv[1:]
    try:
        written = colorize_files(inputs, flag_values.output_dir, flag_values.protocol, flag_values.server,
                                 flag_values.model_name, flag_values.version, flag_values.batch_size,
                                 flag_values.overwrite, hints=flag_values.hints, reference=flag_values.reference)
    except ServingError as e:
        print(f"{COMMAND}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    for path, result in written:
        label = result.get("class_name", result.get("class_index", ""))
        probability = result.get("class_probability")
        print(f"{path}\t{label}" + (f"\t{probability:.3f}" if probability is not None else ""))
    return 0


def run():
    """Console-script entry point (``kc-serving-client``); exit status 0, 1 or 2 as in :func:`main`."""
    from keras_colorize import cli  # noqa: PLC0415

    _define_flags()  # only when run as a command: importing this module defines no flags
    cli.run(main, COMMAND)


if __name__ == "__main__":
    run()
