"""SavedModel export: TF Serving layout, self-contained signatures, parity with Keras, bad requests.

The SavedModel is reloaded with plain TensorFlow in a fresh Python process
that never imports keras_colorize, and driven with ``saved_model_cli`` as an
operator would.
"""

import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize import color
from keras_colorize.inference import api
from keras_colorize.export import bn_statistics
from keras_colorize.export import image_ops
from keras_colorize.export import saved_model
from keras_colorize.inference import merge
from keras_colorize.models import build_colorizer, get_preset

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASS_NAMES = ("sky", "sea", "field", "mountain")
SAVED_MODEL_CLI = str(pathlib.Path(sys.executable).with_name("saved_model_cli"))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    net = build_colorizer(get_preset("tiny"))
    # Trained-like activation scale (see bn_statistics) from smooth random images.
    rng = np.random.default_rng(0)
    smooth = tf.image.resize(rng.uniform(0, 1, (8, 8, 8, 1)).astype("float32"), [64, 64]).numpy()
    bn_statistics.reestimate_batch_norm(net, smooth)
    return net


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving") / "colorizer"
    config = saved_model.ServingConfig(output_format="png", class_names=CLASS_NAMES, max_pixels=600 * 600)
    return saved_model.export_saved_model(model, base, 1, config)


def _photo_bytes(size=(451, 300), fmt="JPEG", seed=0):
    """A smooth colour test image (not from ../shared) encoded as bytes."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=95)
    return buffer.getvalue()


def test_tf_serving_layout_and_no_overwrite(model, exported, tmp_path):
    assert exported.name == "1"
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables" / "variables.index").is_file()
    metadata = json.loads((exported / saved_model.METADATA_FILE).read_text())
    assert metadata["image_size"] == 64 and metadata["num_classes"] == 4
    assert metadata["serving_config"]["class_names"] == list(CLASS_NAMES)
    # The TF Serving warm-up request is a valid serving_default request.
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(exported / saved_model.WARMUP_FILE)).as_numpy_iterator())
    assert len(records) == 1
    request = prediction_log_pb2.PredictionLog.FromString(records[0]).predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    images = tf.make_ndarray(request.inputs["image_bytes"])
    out = tf.saved_model.load(str(exported)).signatures["serving_default"](image_bytes=tf.constant(images))
    assert Image.open(io.BytesIO(out["colorized_bytes"].numpy()[0])).size == (48, 32)
    assert sorted(p.name for p in exported.parent.iterdir()) == ["1"]  # no staging leftovers

    fingerprint = (exported / "saved_model.pb").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        saved_model.export_saved_model(model, exported.parent, 1)
    assert (exported / "saved_model.pb").read_bytes() == fingerprint

    for bad in (-1, "1a", 1.5, None):
        with pytest.raises(ValueError, match="version"):
            saved_model.export_saved_model(model, tmp_path / "m", bad)
    with pytest.raises(ValueError, match="class_names"):
        saved_model.export_saved_model(model, tmp_path / "m", 1, saved_model.ServingConfig(class_names=("a",)))
    with pytest.raises(ValueError, match="output_format"):
        saved_model.export_saved_model(model, tmp_path / "m", 1, saved_model.ServingConfig(output_format="gif"))
    assert not (tmp_path / "m" / "1").exists()

    shutil.copytree(exported, tmp_path / "m" / "3")
    (tmp_path / "m" / "3" / "old_marker").write_text("from the old version")
    again = saved_model.export_saved_model(model, tmp_path / "m", 3, saved_model.ServingConfig(), overwrite=True)
    assert again == tmp_path / "m" / "3" and (again / "saved_model.pb").is_file()
    assert not (again / "old_marker").exists()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["3"]


_FRESH_PROCESS = textwrap.dedent(
    """
    import sys, json
    import numpy as np
    import tensorflow as tf
    path, inputs, image_path, out = sys.argv[1:5]
    loaded = tf.saved_model.load(path)
    l_input = np.load(inputs)
    tensors = loaded.signatures["colorize_l"](L=tf.constant(l_input))
    image = open(image_path, "rb").read()
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([image, image]))
    np.savez(out, ab=tensors["ab"].numpy(), probs=tensors["class_probabilities"].numpy(),
             colorized=np.array(served["colorized_bytes"].numpy(), dtype=object),
             class_index=served["class_index"].numpy(), class_name=np.array(served["class_name"].numpy(), dtype=object),
             class_probability=served["class_probability"].numpy())
    print(json.dumps({"keras_colorize_imported": any(m.startswith("keras_colorize") for m in sys.modules)}))
    """
)


def test_fresh_process_matches_keras(model, exported, tmp_path):
    rng = np.random.default_rng(1)
    l_input = tf.image.resize(rng.uniform(0, 1, (3, 8, 8, 1)).astype("float32"), [64, 64]).numpy()
    np.save(tmp_path / "l.npy", l_input)
    image = _photo_bytes()
    (tmp_path / "photo.jpg").write_bytes(image)
    script = tmp_path / "reload.py"
    script.write_text(_FRESH_PROCESS)
    # cwd outside the repository so keras_colorize cannot even be found.
    done = subprocess.run([sys.executable, str(script), str(exported), str(tmp_path / "l.npy"),
                           str(tmp_path / "photo.jpg"), str(tmp_path / "out.npz")],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"keras_colorize_imported": False}
    got = np.load(tmp_path / "out.npz", allow_pickle=True)

    expected = model(l_input, training=False)
    assert np.abs(got["ab"] - np.asarray(expected["ab"])).max() <= 1e-5
    # Softmax over a Dense chain that TF's graph optimizer rewrites: float32 rounding, not a 1e-5 contract.
    assert np.abs(got["probs"] - np.asarray(expected["class"])).max() <= 1e-4

    # serving_default: full resolution, and the colorize CLI's merge (merge.merge_chunked) of the same
    # prediction, given the same decoded pixels (TF's and Pillow's JPEG decoders differ by a few levels).
    # The two paths' inputs and merges are compared step by step in tests/test_merge.py.
    rgb = tf.io.decode_jpeg(image, channels=3).numpy()
    l_graph = np.asarray(merge.model_input(color.rgb_to_l(rgb), 64))
    ab_small = np.asarray(model(l_graph[None], training=False)["ab"])[0]
    reference = merge.merge_chunked(merge.lightness(rgb), ab_small)
    for encoded in got["colorized"]:
        served = np.asarray(Image.open(io.BytesIO(encoded)))
        assert served.shape == rgb.shape
        assert np.abs(served.astype(int) - reference.astype(int)).max() <= 1
    probs = np.asarray(model(l_graph[None], training=False)["class"])[0]
    assert list(got["class_index"]) == [int(np.argmax(probs))] * 2
    assert list(got["class_name"]) == [CLASS_NAMES[int(np.argmax(probs))].encode()] * 2
    np.testing.assert_allclose(got["class_probability"], [probs.max()] * 2, atol=1e-3)


_SERVING_IMPORTS = textwrap.dedent(
    """
    import json, sys
    # Blocked, not merely absent: TensorFlow's own Keras import tries Pillow optionally (and loads it
    # when installed), so "PIL not in sys.modules" cannot be asked of any TF process; blocked, any
    # `import PIL` on the serving path raises ImportError instead.
    sys.modules["PIL"] = None
    import tensorflow as tf
    from keras_colorize.export import image_ops, saved_model
    png = tf.io.encode_png(tf.fill([9, 13, 3], tf.constant(90, tf.uint8)))
    inputs = image_ops.model_inputs(tf.stack([png]), 64)
    merged = saved_model.merge.merge_graph(tf.fill([9, 13, 1], 50.0), tf.fill([64, 64, 2], 0.5))
    loaded = sorted(m for m in sys.modules if m.startswith("keras_colorize.inference") or m.split(".")[0] == "PIL")
    print(json.dumps({"loaded": loaded, "PIL": repr(sys.modules["PIL"]),
                      "shapes": [inputs.shape.as_list(), merged.shape.as_list()]}))
    """
)


def test_serving_graph_imports_neither_pillow_nor_the_photo_api():
    """export.saved_model / image_ops (the serving graph) run with Pillow blocked and without inference.api."""
    done = subprocess.run([sys.executable, "-c", _SERVING_IMPORTS], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"loaded": ["PIL", "keras_colorize.inference", "keras_colorize.inference.merge"],
                      "PIL": "None", "shapes": [[1, 64, 64, 1], [9, 13, 3]]}


def _show(path):
    done = subprocess.run([SAVED_MODEL_CLI, "show", "--all", "--dir", str(path)], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _signature_io(show_output, signature):
    """{('inputs'|'outputs', key): (dtype, shape)} of one signature from `saved_model_cli show --all`."""
    block = show_output.split(f"signature_def['{signature}']:")[1].split("signature_def[")[0]
    block = block.split("Concrete Functions")[0]
    found = {}
    for kind, key, dtype, shape in re.findall(
            r"(inputs|outputs)\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", block):
        found[(kind, key)] = (dtype, shape)
    return found


#: What the image-bytes signatures (serving_default, colorize_guided) return, as saved_model_cli shows it.
_BYTES_OUTPUTS = {
    ("outputs", "colorized_bytes"): ("DT_STRING", "(-1)"),
    ("outputs", "class_index"): ("DT_INT32", "(-1)"),
    ("outputs", "class_name"): ("DT_STRING", "(-1)"),
    ("outputs", "class_probability"): ("DT_FLOAT", "(-1)"),
}


def test_saved_model_cli_show_lists_documented_signatures(exported):
    out = _show(exported)
    assert _signature_io(out, "serving_default") == {
        ("inputs", "image_bytes"): ("DT_STRING", "(-1)"),
        **_BYTES_OUTPUTS,
    }
    assert _signature_io(out, "colorize_l") == {
        ("inputs", "L"): ("DT_FLOAT", "(-1, 64, 64, 1)"),
        ("outputs", "ab"): ("DT_FLOAT", "(-1, 64, 64, 2)"),
        ("outputs", "class_probabilities"): ("DT_FLOAT", "(-1, 4)"),
    }
    assert "Method name is: tensorflow/serving/predict" in out
    assert "colorize_guided" not in out and "colorize_l_guided" not in out  # an unguided model: no hint signatures
    metadata = json.loads((exported / saved_model.METADATA_FILE).read_text())
    assert metadata["guided"] is False and metadata["signatures"] == ["serving_default", "colorize_l"]


def test_no_class_head_model_has_only_ab(tmp_path):
    net = build_colorizer(get_preset("tiny", fusion=False))
    path = saved_model.export_saved_model(net, tmp_path / "nofusion", 1)
    out = _show(path)
    assert set(_signature_io(out, "serving_default")) == {("inputs", "image_bytes"), ("outputs", "colorized_bytes")}
    assert set(_signature_io(out, "colorize_l")) == {("inputs", "L"), ("outputs", "ab")}


def _cli_run(path, request, outdir):
    return subprocess.run([SAVED_MODEL_CLI, "run", "--dir", str(path), "--tag_set", "serve", "--signature_def",
                           "serving_default", "--inputs", f"image_bytes={request}", "--outdir", str(outdir),
                           "--overwrite"], env=ENV, capture_output=True, text=True, timeout=300)


def test_saved_model_cli_run_on_real_jpeg(exported, landscapes_dir, tmp_path):
    source = sorted(pathlib.Path(landscapes_dir).glob("*.jpg"))[0]
    # A non-square crop of a real photo, re-encoded as JPEG, so "same size" is not the model's square.
    photo = Image.open(source).convert("RGB").crop((10, 20, 471, 343))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    np.save(tmp_path / "request.npy", np.array([buffer.getvalue()], dtype=object))
    done = _cli_run(exported, tmp_path / "request.npy", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    encoded = np.load(tmp_path / "out" / "colorized_bytes.npy", allow_pickle=True)
    result = Image.open(io.BytesIO(encoded[0]))
    result.load()
    assert result.size == photo.size and result.mode == "RGB"
    assert 0 <= int(np.load(tmp_path / "out" / "class_index.npy")[0]) < len(CLASS_NAMES)


def test_garbage_bytes_are_an_error_not_a_crash(exported, tmp_path):
    np.save(tmp_path / "garbage.npy", np.array([b"this is not an image"], dtype=object))
    done = _cli_run(exported, tmp_path / "garbage.npy", tmp_path / "out")
    assert done.returncode != 0
    assert "Unknown image file format" in done.stderr
    assert not (tmp_path / "out" / "colorized_bytes.npy").exists()

    loaded = tf.saved_model.load(str(exported))
    serve = loaded.signatures["serving_default"]
    good = _photo_bytes(size=(80, 50), fmt="PNG")
    truncated = _photo_bytes()[:300]
    too_large = _photo_bytes(size=(700, 600))  # 420,000 px > max_pixels 360,000
    cases = [
        ([b"GIF89a nonsense"], "image"),
        ([good, b""], "empty image bytes"),
        ([truncated], None),
        ([too_large], "too large"),
        ([], "no images"),
    ]
    for request, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(image_bytes=tf.constant(request, tf.string))
        # The model keeps serving after each bad request.
        out = serve(image_bytes=tf.constant([good]))
        assert Image.open(io.BytesIO(out["colorized_bytes"].numpy()[0])).size == (80, 50)


def test_export_cli(tmp_path):
    base = tmp_path / "models" / "colorizer"
    command = [sys.executable, str(REPO / "export" / "export_saved_model.py"), "--preset=tiny", f"--output={base}",
               "--version=7", "--output_format=jpeg"]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (base / "7" / "saved_model.pb").is_file()
    again = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "already exists" in again.stderr


# ----------------------------------------------------------------------------
# serving_client against TF Serving's two protocols.
#
# TF Serving itself does not run on this machine (no docker daemon, no
# tensorflow_model_server), so these tests stand up the same two interfaces in
# process: the REST :predict route (row format, b64 for "_bytes" outputs, HTTP
# 400 + {"error"} for bad requests) and the gRPC PredictionService, both
# running the real exported SavedModel. The README's docker command is the
# real deployment.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulated_servers(exported):
    yield from _emulate_servers(exported)


def _emulate_servers(exported):
    import base64
    import http.server
    import threading
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    loaded = tf.saved_model.load(str(exported))

    class NoSignature(Exception):
        """A signature the model lacks: TF Serving answers REST with 400 and gRPC with FAILED_PRECONDITION."""

    def run(signature, inputs):
        """inputs: {key: list or ndarray}; TF Serving converts each to the signature's dtype."""
        if signature not in loaded.signatures:
            raise NoSignature(signature)
        fn = loaded.signatures[signature]
        specs = fn.structured_input_signature[1]
        if set(inputs) != set(specs):
            raise tf.errors.InvalidArgumentError(None, None, f"inputs {sorted(inputs)} do not match {sorted(specs)}")
        return fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})

    def rest_inputs(instances):
        """TF Serving's row format: bare values (one input) or dicts of named inputs; {"b64": ...} is bytes."""
        decode = lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict) else v  # noqa: E731
        if all(isinstance(i, dict) and "b64" not in i for i in instances):
            return {k: [decode(i[k]) for i in instances] for k in instances[0]}
        return {"image_bytes": [decode(i) for i in instances]}

    class Rest(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self.path.startswith("/v1/models/colorizer") or not self.path.endswith(":predict"):
                return self._reply(404, {"error": f"no route {self.path}"})
            try:
                inputs = rest_inputs(body["instances"])
                outputs = run(body.get("signature_name", "serving_default"), inputs)
            except tf.errors.InvalidArgumentError as e:
                return self._reply(400, {"error": e.message})
            except NoSignature as e:  # TF Serving's words (the REST row format's input lookup)
                return self._reply(400, {"error": f'Serving signature name: "{e}" not found in signature def'})
            rows = []
            for n in range(len(body["instances"])):
                row = {}
                for key, value in outputs.items():
                    v = value.numpy()[n]
                    if key.endswith("_bytes"):
                        row[key] = {"b64": base64.b64encode(v).decode()}
                    elif isinstance(v, bytes):
                        row[key] = v.decode()
                    else:
                        row[key] = v.item()
                rows.append(row)
            self._reply(200, {"predictions": rows})

        def _reply(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Grpc(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            try:
                outputs = run(request.model_spec.signature_name or "serving_default", inputs)
            except tf.errors.InvalidArgumentError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
            except NoSignature as e:  # TF Serving's words (predict_util.cc)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{e}" not found.')
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Rest)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Grpc(), grpc_server)
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield {"rest": f"127.0.0.1:{http_server.server_address[1]}", "grpc": f"127.0.0.1:{grpc_port}"}
    http_server.shutdown()
    grpc_server.stop(None)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_serving_client_round_trip(emulated_servers, protocol, tmp_path):
    from keras_colorize.export import serving_client

    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = {"a": (120, 90), "b": (64, 200), "c": (33, 47)}
    for name, size in sizes.items():
        (inputs / f"{name}.jpg").write_bytes(_photo_bytes(size=size, seed=len(name) + size[0]))
    written = serving_client.colorize_files(sorted(inputs.iterdir()), tmp_path / "out", protocol,
                                            emulated_servers[protocol], batch_size=2, progress=False)
    assert [p.name for p, _ in written] == ["a.png", "b.png", "c.png"]  # the export writes PNG
    for path, result in written:
        assert Image.open(path).size == sizes[path.stem]
        assert result["class_name"] in CLASS_NAMES
        assert CLASS_NAMES[result["class_index"]] == result["class_name"]
        assert 0.25 <= result["class_probability"] <= 1.0

    predict = serving_client.rest_predict if protocol == "rest" else serving_client.grpc_predict
    with pytest.raises(serving_client.ServingError, match="Unknown image file format"):
        predict([b"definitely not an image"], emulated_servers[protocol], "colorizer")
    with pytest.raises(ValueError, match="empty"):
        predict([b""], emulated_servers[protocol], "colorizer")


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_serving_client_hints_for_a_model_without_hint_inputs(emulated_servers, protocol, tmp_path):
    """Hints (or a reference) sent to a served model without colorize_guided: a clear error, exit 2, nothing
    written."""
    from keras_colorize.export import serving_client
    from keras_colorize.guidance import hint_file

    photo = tmp_path / "in" / "scan.jpg"
    photo.parent.mkdir()
    photo.write_bytes(_photo_bytes(size=(120, 90), seed=3))
    hints = tmp_path / "scan.jpg.hints.json"
    hints.write_text(json.dumps({"version": 1, "points": [{"x": 30, "y": 20, "color": "#d2691e"}]}))
    for kwargs in (dict(hints=hints), dict(reference=photo)):
        with pytest.raises(hint_file.NoHintInputsError, match="has no hint inputs.*no colorize_guided signature"):
            serving_client.colorize_files([photo], tmp_path / "out", protocol, emulated_servers[protocol],
                                          progress=False, **kwargs)
        assert not (tmp_path / "out").exists()
    # Other refusals stay ServingError (status 1), also for a guided request.
    predict = serving_client.rest_predict if protocol == "rest" else serving_client.grpc_predict
    with pytest.raises(serving_client.ServingError, match="not found"):
        predict([photo.read_bytes()], emulated_servers[protocol], "colorizer", signature="colorize_nothing")
    if protocol == "rest":  # the command, in a fresh process: one line, exit 2
        done = subprocess.run([sys.executable, "-m", "keras_colorize.export.serving_client",
                               f"--server={emulated_servers['rest']}", f"--output_dir={tmp_path / 'out'}",
                               f"--hints={hints}", str(photo)],
                              cwd=pathlib.Path(__file__).resolve().parents[1], env=ENV, capture_output=True, text=True,
                              timeout=300)
        lines = re.findall(r"kc-serving-client: error: [^\n]*", done.stderr)  # the progress bar's output may precede it
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(lines) == 1 and "has no hint inputs" in lines[0] and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Reliability: a bad image in a batch is named by its index; EXIF orientation;
# staging folders of killed exporters.
# ----------------------------------------------------------------------------


def test_bad_image_in_batch_is_named_by_index(exported, tmp_path):
    good = _photo_bytes(size=(80, 50), fmt="PNG")
    # saved_model_cli in a fresh process, as an operator would see it.
    np.save(tmp_path / "mixed.npy", np.array([good, b"this is not an image"], dtype=object))
    done = _cli_run(exported, tmp_path / "mixed.npy", tmp_path / "out")
    assert done.returncode != 0
    assert "image_bytes[1]: Unknown image file format" in done.stderr
    assert not (tmp_path / "out" / "colorized_bytes.npy").exists()  # the whole request fails

    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    truncated = _photo_bytes()[:300]
    too_large = _photo_bytes(size=(700, 600))  # 420,000 px > max_pixels 360,000
    cases = [
        ([good, b""], r"image_bytes\[1\]: empty image bytes"),
        ([good, good, b"GIF89a nonsense"], r"image_bytes\[2\]: corrupt or truncated"),
        ([good, truncated], r"image_bytes\[1\]: corrupt or truncated"),
        ([truncated, good], r"image_bytes\[0\]: corrupt or truncated"),
        ([good, too_large], r"image_bytes\[1\]: image too large \(from the file header\).*\[600 700\]"),
        ([good, b"junk", b""], r"image_bytes\[2\]: empty image bytes"),  # checked in order: empty first
    ]
    for request, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(image_bytes=tf.constant(request, tf.string))
    out = serve(image_bytes=tf.constant([good, good]))
    assert [Image.open(io.BytesIO(b)).size for b in out["colorized_bytes"].numpy()] == [(80, 50)] * 2


def _oriented_jpegs(folder):
    """One real JPEG per EXIF orientation 1..8 (Pillow-written), of a picture with no symmetry."""
    rng = np.random.default_rng(3)
    small = rng.uniform(0, 255, (5, 7, 3)).astype(np.uint8)
    small[0, 0] = (255, 255, 255)  # a bright top-left corner
    small[-1, -1] = (0, 0, 0)
    picture = Image.fromarray(small).resize((140, 100), Image.NEAREST)
    paths = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = folder / f"o{orientation}.jpg"
        picture.save(path, "JPEG", quality=95, exif=exif.tobytes())
        paths.append(path)
    return paths


def test_exif_orientation_matches_cli(model, exported, tmp_path):
    from keras_colorize.inference import images

    paths = _oriented_jpegs(tmp_path)
    np.save(tmp_path / "request.npy", np.array([p.read_bytes() for p in paths], dtype=object))
    done = _cli_run(exported, tmp_path / "request.npy", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    served = np.load(tmp_path / "out" / "colorized_bytes.npy", allow_pickle=True)
    cli = api.Colorizer(model)
    for orientation, path, encoded in zip(range(1, 9), paths, served):
        ours = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")).astype(int)
        (reference, _), = cli.colorize_pictures([images.read_image(path)])  # what the colorize CLI writes
        assert ours.shape == reference.shape, orientation
        assert ours.shape[:2] == ((100, 140) if orientation <= 4 else (140, 100)), orientation
        # TF's and Pillow's JPEG decoders differ by a few levels at the sharp block edges: mean ~5.
        assert np.abs(ours - reference.astype(int)).mean() < 8, orientation
        if orientation != 1:  # the picture tells orientations apart: the raw (unrotated) pixels differ a lot
            raw = np.asarray(Image.open(path).convert("RGB")).astype(int)
            assert raw.shape != ours.shape or np.abs(ours - raw).mean() > 20, orientation


def test_exif_orientation_parser_never_fails_on_junk():
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    assert int(image_ops.exif_orientation(data)) == 6
    for junk in (b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\xff\xff", data[:40], b"\x89PNG\r\n\x1a\n" + b"\0" * 30,
                 data.replace(b"MM\x00*", b"XX\x00*").replace(b"II*\x00", b"XX*\x00")):
        assert int(image_ops.exif_orientation(junk)) == 1, junk[:50]


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_killed_exporter_staging_is_cleaned_up(model, tmp_path):
    import signal
    import time

    base = tmp_path / "models" / "colorizer"
    command = [sys.executable, str(REPO / "export" / "export_saved_model.py"), "--preset=tiny", f"--output={base}",
               "--version=7"]
    exporter = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    staging = []
    while time.time() < deadline and exporter.poll() is None:
        staging = [p for p in base.glob(".tmp-7-*") if p.is_dir()] if base.is_dir() else []
        if staging:
            break
        time.sleep(0.02)
    assert staging, "the exporter never created its staging folder"
    os.kill(exporter.pid, signal.SIGKILL)
    exporter.wait()
    assert staging[0].name.startswith(f".tmp-7-{exporter.pid}-") and staging[0].is_dir()
    assert not (base / "7").exists()

    live = base / f".tmp-9-{os.getpid()}-concurrent"  # a live exporter's work (this test process)
    live.mkdir()
    dead = _dead_pid()
    retired = base / f".old-5-{dead}-abc"  # a killed overwrite: version 5 was moved away, not yet replaced
    (retired / "model").mkdir(parents=True)
    (retired / "model" / "saved_model.pb").write_bytes(b"version 5")
    path = saved_model.export_saved_model(model, base, 7)
    assert sorted(p.name for p in base.iterdir()) == sorted(["5", "7", live.name])
    assert (base / "5" / "saved_model.pb").read_bytes() == b"version 5"
    assert (path / "saved_model.pb").is_file()


# ----------------------------------------------------------------------------
# A guided model (hints=True): serving_default unchanged, colorize_guided and
# colorize_l_guided added, hints painted inside the graph.
# ----------------------------------------------------------------------------

GUIDANCE_LAYERS = ("hint_input_conv", "reference_fusion_dense")


def guided_tiny_model(seed=0, scale=0.2):
    """A tiny guided model whose output depends on its hints.

    A fresh guided model's guidance layers are zeros (it colorizes as its automatic twin until
    trained); random weights in them make hints and the reference change the result.
    """
    import keras

    keras.utils.set_random_seed(seed)
    net = build_colorizer(get_preset("tiny", hints=True))
    rng = np.random.default_rng(seed)
    for name in GUIDANCE_LAYERS:
        layer = net.get_layer(name)
        layer.set_weights([rng.normal(0, scale, w.shape).astype("float32") for w in layer.weights])
    smooth = tf.image.resize(rng.uniform(0, 1, (8, 8, 8, 1)).astype("float32"), [64, 64]).numpy()
    bn_statistics.reestimate_batch_norm(net, smooth)
    return net


@pytest.fixture(scope="module")
def guided_model():
    return guided_tiny_model()


@pytest.fixture(scope="module")
def guided_exported(guided_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("guided_serving") / "colorizer"
    config = saved_model.ServingConfig(output_format="png", class_names=CLASS_NAMES, max_pixels=600 * 600)
    return saved_model.export_saved_model(guided_model, base, 1, config)


# Two images in one request: the first with one hint and no reference, the second with two hints
# (its row padded with a size-0 point that may lie anywhere) and a reference photo.
GUIDED_POINTS = [[[0.25, 0.30], [0.0, 0.0], [-5.0, 7.0]], [[0.70, 0.60], [0.10, 0.90], [0.5, 0.5]]]
GUIDED_COLORS = [[[70.0, 60.0], [0.0, 0.0], [999.0, 0.0]], [[-50.0, 40.0], [20.0, -60.0], [0.0, 0.0]]]
GUIDED_SIZES = [[5, 0, 0], [3, 9, 0]]


def _guided_request(image, reference):
    return {"image_bytes": np.array([image, image], dtype=object),
            "points": np.array(GUIDED_POINTS, np.float32), "colors_ab": np.array(GUIDED_COLORS, np.float32),
            "sizes": np.array(GUIDED_SIZES, np.int32), "reference_bytes": np.array([b"", reference], dtype=object)}


def _expected_guided(model, rgb, reference_rgb, row):
    """What colorize_guided must return for one request row, computed in Python from hint_ops' inputs."""
    from keras_colorize.guidance import hint_ops

    sizes = np.array(GUIDED_SIZES[row])
    keep = sizes > 0
    hints = hint_ops.paint_hints(np.array(GUIDED_POINTS[row])[keep] * 64, np.array(GUIDED_COLORS[row])[keep],
                                 sizes[keep], 64)
    reference = hint_ops.no_reference() if reference_rgb is None else hint_ops.reference_vector(reference_rgb)
    l_graph = merge.model_input(color.rgb_to_l(rgb), 64)
    ab = model({"L": l_graph[None], "hints": hints[None], "reference": reference[None]}, training=False)["ab"]
    return merge.merge_chunked(merge.lightness(rgb), np.asarray(ab)[0])


_GUIDED_FRESH_PROCESS = textwrap.dedent(
    """
    import sys, json
    import numpy as np
    import tensorflow as tf
    path, request, out = sys.argv[1:4]
    loaded = tf.saved_model.load(path)
    request = dict(np.load(request, allow_pickle=True))
    tensors = {k: tf.constant(list(v) if v.dtype == object else v) for k, v in request.items()}
    guided = loaded.signatures["colorize_guided"](**tensors)
    plain = loaded.signatures["serving_default"](image_bytes=tensors["image_bytes"])
    none = loaded.signatures["colorize_guided"](
        image_bytes=tensors["image_bytes"], points=tf.zeros([2, 0, 2]), colors_ab=tf.zeros([2, 0, 2]),
        sizes=tf.zeros([2, 0], tf.int32), reference_bytes=tf.constant([b"", b""]))
    np.savez(out, guided=np.array(guided["colorized_bytes"].numpy(), dtype=object),
             plain=np.array(plain["colorized_bytes"].numpy(), dtype=object),
             none=np.array(none["colorized_bytes"].numpy(), dtype=object),
             class_name=np.array(guided["class_name"].numpy(), dtype=object))
    print(json.dumps({"keras_colorize_imported": any(m.startswith("keras_colorize") for m in sys.modules),
                      "signatures": sorted(loaded.signatures)}))
    """
)


def _pixels(encoded):
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")).astype(int)


def test_guided_fresh_process_matches_keras_on_hint_ops_inputs(guided_model, guided_exported, tmp_path):
    image, reference = _photo_bytes(size=(240, 180), seed=4), _photo_bytes(size=(100, 70), fmt="PNG", seed=9)
    np.savez(tmp_path / "request.npz", **_guided_request(image, reference))
    script = tmp_path / "reload.py"
    script.write_text(_GUIDED_FRESH_PROCESS)
    done = subprocess.run([sys.executable, str(script), str(guided_exported), str(tmp_path / "request.npz"),
                           str(tmp_path / "out.npz")], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"keras_colorize_imported": False, "signatures": [
        "colorize_guided", "colorize_l", "colorize_l_guided", "serving_default"]}
    got = np.load(tmp_path / "out.npz", allow_pickle=True)

    rgb = tf.io.decode_jpeg(image, channels=3).numpy()
    reference_rgb = tf.io.decode_png(reference, channels=3).numpy()
    for row, reference_row in ((0, None), (1, reference_rgb)):
        served = _pixels(got["guided"][row])
        expected = _expected_guided(guided_model, rgb, reference_row, row)
        assert served.shape == expected.shape == rgb.shape
        # float32 rounding of the BN-folded graph, then 8-bit rounding: at most one level.
        assert np.abs(served - expected.astype(int)).max() <= 1, row
    # No points and no reference is the automatic case: what serving_default returns.
    for row in (0, 1):
        assert np.abs(_pixels(got["none"][row]) - _pixels(got["plain"][row])).max() <= 1
    assert set(got["class_name"]) <= {n.encode() for n in CLASS_NAMES}


def test_guided_hint_changes_the_result_near_it(guided_exported):
    """One point changes the colours around it much more than far from it (rows are images, as served)."""
    serve = tf.saved_model.load(str(guided_exported)).signatures
    image = _photo_bytes(size=(256, 256), fmt="PNG", seed=2)
    plain = _pixels(serve["serving_default"](image_bytes=tf.constant([image]))["colorized_bytes"].numpy()[0])
    hinted = serve["colorize_guided"](
        image_bytes=tf.constant([image]), points=tf.constant([[[0.2, 0.2]]]), colors_ab=tf.constant([[[80.0, 70.0]]]),
        sizes=tf.constant([[5]]), reference_bytes=tf.constant([b""]))
    diff = np.abs(_pixels(hinted["colorized_bytes"].numpy()[0]) - plain).sum(axis=-1)
    near, far = diff[36:66, 36:66].mean(), diff[180:, 180:].mean()  # the point is at (51, 51) of 256 x 256
    # The hint also enters the global features (it is added to the encoder's input), so the far side moves a
    # little too (about a quarter as much with this model's random guidance weights).
    assert near > 20 and near > 2.5 * far, (near, far)


def test_guided_saved_model_cli_show_and_run(guided_model, guided_exported, landscapes_dir, tmp_path):
    out = _show(guided_exported)
    # serving_default and colorize_l are those of an unguided model.
    assert _signature_io(out, "serving_default") == {
        ("inputs", "image_bytes"): ("DT_STRING", "(-1)"),
        **_BYTES_OUTPUTS,
    }
    assert set(_signature_io(out, "colorize_l")) == {("inputs", "L"), ("outputs", "ab"),
                                                     ("outputs", "class_probabilities")}
    assert _signature_io(out, "colorize_guided") == {
        ("inputs", "image_bytes"): ("DT_STRING", "(-1)"),
        ("inputs", "points"): ("DT_FLOAT", "(-1, -1, 2)"),
        ("inputs", "colors_ab"): ("DT_FLOAT", "(-1, -1, 2)"),
        ("inputs", "sizes"): ("DT_INT32", "(-1, -1)"),
        ("inputs", "reference_bytes"): ("DT_STRING", "(-1)"),
        **_BYTES_OUTPUTS,
    }
    assert _signature_io(out, "colorize_l_guided") == {
        ("inputs", "L"): ("DT_FLOAT", "(-1, 64, 64, 1)"),
        ("inputs", "hints"): ("DT_FLOAT", "(-1, 64, 64, 3)"),
        ("inputs", "reference"): ("DT_FLOAT", "(-1, 262)"),
        ("outputs", "ab"): ("DT_FLOAT", "(-1, 64, 64, 2)"),
        ("outputs", "class_probabilities"): ("DT_FLOAT", "(-1, 4)"),
    }
    metadata = json.loads((guided_exported / saved_model.METADATA_FILE).read_text())
    assert metadata["guided"] is True
    assert metadata["signatures"] == ["serving_default", "colorize_l", "colorize_guided", "colorize_l_guided"]

    # saved_model_cli run on a real photo (a non-square crop) with a real reference photo.
    files = sorted(pathlib.Path(landscapes_dir).glob("*.jpg"))
    photo = Image.open(files[0]).convert("RGB").crop((10, 20, 471, 343))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    request = _guided_request(buffer.getvalue(), files[1].read_bytes())
    for key, value in request.items():
        np.save(tmp_path / f"{key}.npy", value)
    inputs = ";".join(f"{key}={tmp_path / key}.npy" for key in request)
    done = subprocess.run([SAVED_MODEL_CLI, "run", "--dir", str(guided_exported), "--tag_set", "serve",
                           "--signature_def", "colorize_guided", "--inputs", inputs, "--outdir", str(tmp_path / "out"),
                           "--overwrite"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    encoded = np.load(tmp_path / "out" / "colorized_bytes.npy", allow_pickle=True)
    rgb = tf.io.decode_jpeg(buffer.getvalue(), channels=3).numpy()
    reference_rgb = tf.io.decode_jpeg(files[1].read_bytes(), channels=3).numpy()
    for row, reference_row in ((0, None), (1, reference_rgb)):
        served = _pixels(encoded[row])
        assert served.shape == rgb.shape
        assert np.abs(served - _expected_guided(guided_model, rgb, reference_row, row).astype(int)).max() <= 1


def test_guided_bad_hints_are_errors_named_by_row(guided_exported):
    serve = tf.saved_model.load(str(guided_exported)).signatures["colorize_guided"]
    good = _photo_bytes(size=(80, 50), fmt="PNG")

    def request(points=((0.5, 0.5),), colors=((10.0, 10.0),), sizes=(3,), reference=b"", second=None):
        rows = [(points, colors, sizes, reference), second or ([[0.1, 0.1]], [[0.0, 0.0]], [1], b"")]
        return dict(image_bytes=tf.constant([good, good]),
                    points=tf.constant([r[0] for r in rows], tf.float32),
                    colors_ab=tf.constant([r[1] for r in rows], tf.float32),
                    sizes=tf.constant([r[2] for r in rows], tf.int32),
                    reference_bytes=tf.constant([r[3] for r in rows]))

    cases = [
        (request(second=([[1.2, 0.5]], [[0.0, 0.0]], [3], b"")), r"points\[1\]: a point lies outside the image"),
        (request(points=((float("nan"), 0.5),)), r"points\[0\]: a point lies outside"),
        (request(sizes=(12,)), r"sizes\[0\]: a size is outside 0..9"),
        (request(sizes=(-1,)), r"sizes\[0\]: a size is outside"),
        (request(colors=((200.0, 0.0),)), r"colors_ab\[0\]: a colour is not an a\*b\* pair"),
        (request(second=([[0.1, 0.1]], [[0.0, 0.0]], [1], b"not an image")),
         r"reference_bytes\[1\]: Unknown image file format"),
        (dict(request(), reference_bytes=tf.constant([b""])), "one row per image"),
        (dict(request(), sizes=tf.constant([[3, 3], [1, 1]])), "the same P"),
    ]
    for inputs, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(**inputs)
    # Padding (size 0) may hold anything; the model keeps serving after the bad requests.
    out = serve(**request(points=((0.5, 0.5), (-3.0, 9.0)), colors=((10.0, 10.0), (500.0, 0.0)), sizes=(3, 0),
                          second=([[0.1, 0.1], [0.2, 0.2]], [[0.0, 0.0], [5.0, 5.0]], [1, 2], good)))
    assert [Image.open(io.BytesIO(b)).size for b in out["colorized_bytes"].numpy()] == [(80, 50)] * 2


def test_guided_warmup_requests_replay(guided_exported):
    from tensorflow_serving.apis import prediction_log_pb2

    loaded = tf.saved_model.load(str(guided_exported))
    records = list(tf.data.TFRecordDataset(str(guided_exported / saved_model.WARMUP_FILE)).as_numpy_iterator())
    requests = [prediction_log_pb2.PredictionLog.FromString(r).predict_log.request for r in records]
    assert [r.model_spec.signature_name for r in requests] == ["serving_default", "colorize_guided"]
    for r in requests:
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in r.inputs.items()}
        out = loaded.signatures[r.model_spec.signature_name](**inputs)
        assert Image.open(io.BytesIO(out["colorized_bytes"].numpy()[0])).size == (48, 32)


@pytest.fixture(scope="module")
def guided_servers(guided_exported):
    yield from _emulate_servers(guided_exported)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_serving_client_guided_request(guided_exported, guided_servers, protocol):
    """The client's colorize_guided request (rows padded to one P) gives what the signature gives."""
    from keras_colorize.export import serving_client

    images = [_photo_bytes(size=(120, 90), seed=5), _photo_bytes(size=(64, 200), fmt="PNG", seed=6)]
    reference = _photo_bytes(size=(50, 40), seed=7)
    guidance = [serving_client.Guidance(points=[(0.2, 0.3), (0.8, 0.5)], colors_ab=[(70, 60), (-40, 20)], sizes=[5, 1]),
                serving_client.Guidance(reference=reference)]
    predict = serving_client.rest_predict if protocol == "rest" else serving_client.grpc_predict
    results = predict(images, guided_servers[protocol], "colorizer", guidance=guidance)
    direct = tf.saved_model.load(str(guided_exported)).signatures["colorize_guided"](
        image_bytes=tf.constant(images), points=tf.constant([[[0.2, 0.3], [0.8, 0.5]], [[0, 0], [0, 0]]], tf.float32),
        colors_ab=tf.constant([[[70, 60], [-40, 20]], [[0, 0], [0, 0]]], tf.float32),
        sizes=tf.constant([[5, 1], [0, 0]]), reference_bytes=tf.constant([b"", reference]))
    plain = predict(images, guided_servers[protocol], "colorizer")  # serving_default
    for n, result in enumerate(results):
        assert np.array_equal(_pixels(result["colorized_bytes"]), _pixels(direct["colorized_bytes"].numpy()[n]))
        assert result["class_name"] in CLASS_NAMES
        # Points move colours a lot; this model's reference only a little (it enters at the fusion layer).
        changed = np.abs(_pixels(result["colorized_bytes"]) - _pixels(plain[n]["colorized_bytes"])).mean()
        assert changed > (1.0 if n == 0 else 0.1), (n, changed)
    # Without any point the padding still gives every row one (ignored) point: JSON cannot carry a (N, 0, 2).
    none = predict(images[:1], guided_servers[protocol], "colorizer", guidance=[serving_client.Guidance()])
    assert np.abs(_pixels(none[0]["colorized_bytes"]) - _pixels(plain[0]["colorized_bytes"])).max() <= 1
    with pytest.raises(serving_client.ServingError, match=r"points\[0\]: a point lies outside"):
        predict(images[:1], guided_servers[protocol], "colorizer",
                guidance=[serving_client.Guidance(points=[(1.5, 0.5)], colors_ab=[(0, 0)], sizes=[3])])
    with pytest.raises(ValueError, match="one entry per image"):
        predict(images, guided_servers[protocol], "colorizer", guidance=guidance[:1])


def test_serving_client_hint_file_matches_keras_on_hint_file_inputs(guided_model, guided_servers, tmp_path):
    """kc-serving-client --hints: a hint file in photo pixels (of an EXIF-rotated JPEG, upright) and its
    reference give what the guided Keras model gives on hint_file.model_inputs for the same photo."""
    from keras_colorize.export import serving_client
    from keras_colorize.guidance import hint_file

    exif = Image.Exif()
    exif[0x0112] = 6  # stored 240 x 180, shown 180 x 240
    photo = tmp_path / "in" / "scan.jpg"
    photo.parent.mkdir()
    Image.open(io.BytesIO(_photo_bytes(size=(240, 180), seed=11))).save(photo, "JPEG", quality=95, exif=exif.tobytes())
    (tmp_path / "palette.png").write_bytes(_photo_bytes(size=(60, 40), fmt="PNG", seed=12))
    hints = tmp_path / "scan.jpg.hints.json"
    hints.write_text(json.dumps({"version": 1, "reference": "palette.png", "points": [
        {"x": 40, "y": 200.5, "color": "#d2691e", "size": 5}, {"x": 150, "y": 30, "color": [-50, 40], "size": 1}]}))
    assert serving_client.upright_size(photo) == (180, 240)

    written = serving_client.colorize_files([photo], tmp_path / "out", "rest", guided_servers["rest"], hints=hints,
                                            progress=False)
    (path, result), = written
    served = np.asarray(Image.open(path).convert("RGB")).astype(int)
    rgb = image_ops.decode_rgb(photo.read_bytes()).numpy()  # upright, TF's decoder as on the server
    assert served.shape == rgb.shape == (240, 180, 3)
    hint_map, reference = hint_file.model_inputs(hint_file.Hints.load(hints), 180, 240, 64)
    l_graph = merge.model_input(color.rgb_to_l(rgb), 64)
    ab = guided_model({"L": l_graph[None], "hints": tf.constant(hint_map[None]),
                       "reference": tf.constant(reference[None])}, training=False)["ab"]
    expected = merge.merge_chunked(merge.lightness(rgb), np.asarray(ab)[0]).astype(int)
    assert np.abs(served - expected).max() <= 1

    with pytest.raises(ValueError, match="one photo"):
        serving_client.colorize_files([photo, tmp_path / "palette.png"], tmp_path / "out2", "rest",
                                      guided_servers["rest"], hints=hints, progress=False)
    hints.write_text(json.dumps({"version": 1, "points": [{"x": 200, "y": 10, "color": "#ff0000"}]}))
    with pytest.raises(ValueError, match=r"points\[0\].x: 200 is outside the photo \(180 x 240"):
        serving_client.colorize_files([photo], tmp_path / "out3", "rest", guided_servers["rest"], hints=hints,
                                      progress=False)
    assert not (tmp_path / "out3").exists()


def test_colorize_guided_matches_colorizer_with_hints(guided_model, guided_exported, guided_servers, tmp_path):
    """The served colorize_guided result equals Colorizer(...).colorize(image, hints=...) in Python, both on the
    Keras model and on the SavedModel (whose colorize_l_guided the Colorizer uses), for the same hint file."""
    from keras_colorize.export import serving_client

    photo = tmp_path / "in" / "photo.png"  # PNG: TF and Pillow decode it to the same pixels
    photo.parent.mkdir()
    photo.write_bytes(_photo_bytes(size=(200, 150), fmt="PNG", seed=21))
    # A PNG reference too: TF's and Pillow's JPEG decoders differ by a few levels, which can move a pixel of
    # the reference histogram to the next a*b* bin.
    (tmp_path / "palette.png").write_bytes(_photo_bytes(size=(64, 48), fmt="PNG", seed=22))
    hints = tmp_path / "photo.png.hints.json"
    hints.write_text(json.dumps({"version": 1, "units": "fraction", "reference": "palette.png", "points": [
        {"x": 0.3, "y": 0.25, "color": "#3060e0", "size": 7}, {"x": 0.75, "y": 0.8, "color": [45, 45]}]}))
    (path, _), = serving_client.colorize_files([photo], tmp_path / "out", "grpc", guided_servers["grpc"], hints=hints,
                                               progress=False)
    served = np.asarray(Image.open(path).convert("RGB")).astype(int)
    for model in (guided_model, str(guided_exported)):
        colorizer = api.Colorizer(model)
        assert colorizer.guided
        expected = np.asarray(colorizer.colorize(str(photo), hints=str(hints))).astype(int)
        assert served.shape == expected.shape == (150, 200, 3)
        assert np.abs(served - expected).max() <= 1, model
    plain = np.asarray(api.Colorizer(guided_model).colorize(str(photo))).astype(int)
    assert np.abs(served - plain).mean() > 1  # the hints are not a no-op here
