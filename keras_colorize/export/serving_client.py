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
with) and prints the predicted scene class of each image.

Python::

    results = rest_predict([open("a.jpg", "rb").read()], "http://localhost:8501", "colorizer")
    results[0]["colorized_bytes"], results[0].get("class_name")
"""

import base64
import json
import pathlib
import sys
import urllib.error
import urllib.request

from keras_colorize import fileio

SIGNATURE = "serving_default"
INPUT_KEY = "image_bytes"


class ServingError(RuntimeError):
    """The server refused the request (e.g. INVALID_ARGUMENT for bytes that are not an image)."""


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
                 signature=SIGNATURE, timeout=120.0):
    """Colorizes encoded images through TF Serving's REST API.

    Args:
      images: list of encoded image bytes (JPEG, PNG, ...).
      server: ``http://host:port`` of the REST endpoint (``host:port`` works too).
      model_name: the served model's name (``models.config``/``--model_name``).
      version: a specific version, or None for the latest.

    Returns:
      list (one per image) of dicts: ``colorized_bytes`` (bytes) and, with a
      class head, ``class_index``, ``class_probability``, ``class_name``.

    Raises:
      ServingError: the server answered with an error (message included).
    """
    images = _check_images(images)
    if "://" not in server:
        server = f"http://{server}"
    path = f"/v1/models/{model_name}" + (f"/versions/{int(version)}" if version is not None else "") + ":predict"
    body = json.dumps({
        "signature_name": signature,
        "instances": [{"b64": base64.b64encode(i).decode("ascii")} for i in images],
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
        raise ServingError(f"{server}{path}: HTTP {e.code}: {detail}") from e
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
                 signature=SIGNATURE, timeout=120.0):
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
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs[INPUT_KEY].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(images))]),
        string_val=images,
    ))
    # Colorized images can be large: lift gRPC's 4 MB default message limit.
    options = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            raise ServingError(f"{server}: {e.code().name}: {e.details()}") from e
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


def colorize_files(inputs, output_dir, protocol="rest", server=None, model_name="colorizer", version=None,
                   batch_size=4, overwrite=False, progress=True):
    """Sends image files to the server in batches and writes ``<output_dir>/<stem>.<ext>``.

    Returns:
      list of ``(output path, result dict without the image bytes)``.
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
    predict = rest_predict if protocol == "rest" else grpc_predict
    server = server or ("localhost:8501" if protocol == "rest" else "localhost:8500")
    from tqdm import tqdm  # noqa: PLC0415

    written = []
    bar = tqdm(total=len(inputs), disable=not progress, unit="image")
    for start in range(0, len(inputs), int(batch_size)):
        chunk = inputs[start:start + int(batch_size)]
        results = predict([p.read_bytes() for p in chunk], server, model_name, version)
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
    flags.mark_flag_as_required("output_dir")


COMMAND = "kc-serving-client"


def main(argv):
    """``kc-serving-client --output_dir=... images...``.

    Exit status: 0 every image written; 1 the server refused a request or
    cannot be reached (the images of earlier requests are written); 2 bad
    arguments (a missing or unparsable flag, no or missing inputs, an output
    that exists without ``--overwrite``, ``--protocol=grpc`` without the
    ``[serving]`` extra), as one line ``kc-serving-client: error: ...``.
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
                                 flag_values.overwrite)
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
