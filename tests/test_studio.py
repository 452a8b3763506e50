"""kc-studio over HTTP (issue 22): the token, the folders' boundaries, limits, malformed requests, states, saving.

A real server (in a thread, on a free port of 127.0.0.1), real sockets, real files; the models are the tiny
preset (no hint inputs) and `hint_follower`, a tiny guided model whose hint weights are set by hand so that a
hint certainly colours the pixels around it (see its docstring). The browser flow is tests/test_studio_browser.py.
"""

import contextlib
import http.client
import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from keras_colorize import fileio
from keras_colorize.studio import folder as folder_lib
from keras_colorize.studio import server as server_lib
from keras_colorize.studio import session as session_lib
from webapp_helpers import serving_in_a_thread

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- models and photos


def build_hint_follower(image_size=64, pool=7, gain=3.0):
    """A tiny guided colorizer whose output certainly follows its hints (weights set by hand, not trained).

    a*b* = sigmoid(gain * (hint map averaged over a `pool` x `pool` window) + bias): where a hint is given the
    output turns towards the hint's colour, more than `pool` / 2 grid pixels away it stays at the bias (a faint
    warm gray). The reference input joins through a zero dense layer. It fits the guided model contract (inputs
    L, hints, reference; an "ab" output), so every command and the studio load it like a trained model.
    """
    import keras

    from keras_colorize.guidance import spec
    from keras_colorize.models import blocks

    l_input = keras.Input((image_size, image_size, 1), name=spec.L_INPUT)
    hints = keras.Input((image_size, image_size, spec.HINT_CHANNELS), name=spec.HINTS_INPUT)
    reference = keras.Input((spec.REFERENCE_SIZE,), name=spec.REFERENCE_INPUT)
    spread = keras.layers.AveragePooling2D(pool, strides=1, padding="same", name="hint_spread")(hints)
    logits = keras.layers.Conv2D(2, 1, name="hint_to_ab")(keras.layers.Concatenate(name="concat")([spread, l_input]))
    palette = keras.layers.Dense(2, kernel_initializer="zeros", use_bias=False, name="reference_dense")(reference)
    tiled = blocks.SpatialTile(name="reference_tile")([palette, logits])
    ab = keras.layers.Activation("sigmoid", dtype="float32", name="ab")(keras.layers.Add(name="add")([logits, tiled]))
    model = keras.Model({spec.L_INPUT: l_input, spec.HINTS_INPUT: hints, spec.REFERENCE_INPUT: reference},
                        {"ab": ab}, name="hint_follower")
    kernel = np.zeros((1, 1, 4, 2), np.float32)
    kernel[0, 0, 0, 0] = kernel[0, 0, 1, 1] = gain  # a* from the hint's a*, b* from its b*; the mask and L unused
    model.get_layer("hint_to_ab").set_weights([kernel, np.array([0.04, 0.12], np.float32)])
    return model


@pytest.fixture(scope="session")
def hint_follower_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("follower") / "hint_follower.keras"
    build_hint_follower().save(path)
    return path


def _scene(width=160, height=120, seed=0):
    """A gray landscape: a light sky over darker ground, some texture."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None]
    gray = np.where(y < 0.5, 200 - 40 * y, 90 - 30 * y) + rng.normal(0, 6, (height, width))
    return Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L")


@pytest.fixture
def photos(tmp_path):
    """photos/ with a.jpg, b.png, sub/c.jpg, a non-image and a hidden file; out/ beside it."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    _scene(seed=1).save(root / "a.jpg", quality=90)
    _scene(seed=2).convert("RGB").save(root / "b.png")
    _scene(200, 100, seed=3).save(root / "sub" / "c.jpg", quality=90)
    (root / "notes.txt").write_text("not a photo")
    _scene(seed=4).save(root / ".hidden.jpg")
    return root


@pytest.fixture(scope="session")
def tiny_colorizer(tiny_model_path):
    from keras_colorize.inference.api import Colorizer

    return Colorizer(str(tiny_model_path), batch_size=1)


@pytest.fixture(scope="session")
def follower_colorizer(hint_follower_path):
    from keras_colorize.inference.api import Colorizer

    colorizer = Colorizer(str(hint_follower_path), batch_size=1)
    if not getattr(colorizer, "guided", False):
        pytest.skip("Colorizer does not take hints yet (issue 21's api.py)")
    return colorizer


@contextlib.contextmanager
def running_studio(photos_dir, colorizer, output=None, **overrides):
    config = server_lib.StudioConfig(photos=str(photos_dir), output=str(output) if output else None, port=0,
                                     **{"preview_size": 256, **overrides})
    server = server_lib.make_server(config, colorizer)
    with serving_in_a_thread(server, after_close=lambda: server.app.batch.wait(30)):
        yield server


class Client:
    """Requests to a studio; `token=False` leaves the token out, a string sends that token."""

    def __init__(self, server, token=True):
        self.server = server
        self.token = server.app.token if token is True else token

    def request(self, method, path, body=None, content_type="application/json", headers=None, token=None):
        token = self.token if token is None else token
        all_headers = {**({"X-KC-Token": token} if token else {}), **(headers or {})}
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        if data is not None:
            all_headers.setdefault("Content-Type", content_type)
        conn = http.client.HTTPConnection(*self.server.server_address[:2], timeout=60)
        try:
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            payload = response.read()
            ctype = response.headers.get_content_type()
            return response.status, (json.loads(payload) if ctype == "application/json" else payload), response.headers
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)


def _jpeg_pixels(body):
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), np.float32)


def _ab(rgb):
    from keras_colorize import color

    return np.asarray(color.rgb_to_lab(np.asarray(rgb, np.float32) / 255.0))[..., 1:]


# ---------------------------------------------------------------- folders


def test_scan_is_recursive_and_takes_the_image_kinds_of_kc_colorize(photos, tmp_path):
    folder = folder_lib.PhotoFolder(photos, tmp_path / "out")
    assert folder.scan() == ["a.jpg", "b.png", "sub/c.jpg"]
    assert folder.output_path("sub/c.jpg") == (tmp_path / "out" / "sub" / "c.jpg").resolve()
    assert folder.sidecar_path("a.jpg").name == "a.jpg.hints.json"


def test_output_inside_the_photos_or_photos_inside_the_output_is_refused(photos, tmp_path):
    with pytest.raises(ValueError, match="inside the photos folder"):
        folder_lib.PhotoFolder(photos, photos / "out")
    with pytest.raises(ValueError, match="inside the output folder"):
        folder_lib.PhotoFolder(photos, tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        folder_lib.PhotoFolder(tmp_path / "missing", tmp_path / "out")
    assert folder_lib.default_output(photos) == photos.with_name("photos_colorized")


def test_symlinks_cannot_lead_reads_or_writes_out_of_the_folders(photos, tmp_path):
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    _scene(seed=9).save(secret_dir / "private.jpg")
    (photos / "link.jpg").symlink_to(secret_dir / "private.jpg")  # a file symlinked out
    (photos / "linked_dir").symlink_to(secret_dir, target_is_directory=True)  # a folder symlinked out
    (photos / "inside.jpg").symlink_to(photos / "a.jpg")  # a symlink that stays inside is a photo
    out = tmp_path / "out"
    folder = folder_lib.PhotoFolder(photos, out)
    assert folder.scan() == ["a.jpg", "b.png", "inside.jpg", "sub/c.jpg"]
    for name in ("link.jpg", "linked_dir/private.jpg", "../secret/private.jpg", str(secret_dir / "private.jpg")):
        with pytest.raises(folder_lib.PathRefused):
            folder.photo_path(name)
    # A symlink planted in the output folder does not redirect a write out of it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir(exist_ok=True)
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(folder_lib.PathRefused, match="outside the output folder"):
        folder.output_path("sub/c.jpg")
    with pytest.raises(folder_lib.PathRefused):
        folder.sidecar_path("sub/c.jpg")
    (out / "a.jpg").symlink_to(secret_dir / "private.jpg")
    with pytest.raises(folder_lib.PathRefused):
        folder.output_path("a.jpg")
    # The folder view still lists every photo (those whose output is refused as "not done").
    studio = session_lib.Studio(folder, renderer=None)
    assert {p["name"]: p["state"] for p in studio.photos()} == {
        "a.jpg": "not done", "b.png": "not done", "inside.jpg": "not done", "sub/c.jpg": "not done"}


# ---------------------------------------------------------------- HTTP: token, traversal, limits


def test_every_api_route_needs_the_token_and_the_page_does_not(photos, tiny_colorizer, tmp_path):
    with running_studio(photos, tiny_colorizer, tmp_path / "out") as server:
        anonymous, wrong, good = Client(server, token=False), Client(server, token="x" * 32), Client(server)
        reads = ["/api/photos", "/api/thumb?path=a.jpg", "/api/photo?path=a.jpg", "/api/before?path=a.jpg",
                 "/api/reference?id=00000000000000000000.png", "/api/batch"]
        writes = [("/api/render", {"path": "a.jpg", "edit": {}}), ("/api/save", {"path": "a.jpg", "edit": {}}),
                  ("/api/batch", {"action": "start"}), ("/api/reference", b"\x89PNG")]
        for client in (anonymous, wrong):
            for path in reads:
                status, payload, _ = client.get(path)
                assert status == 403 and "token" in payload["error"], (path, status, payload)
            for path, body in writes:
                status, payload, _ = client.post(path, body, content_type="image/png" if isinstance(body, bytes)
                                                 else "application/json")
                assert status == 403 and "token" in payload["error"], (path, status, payload)
        assert not (tmp_path / "out" / "a.jpg").exists() and server.app.batch.status()["total"] == 0
        # The token in the query works for images (an <img> cannot send a header).
        status, body, headers = anonymous.get(f"/api/thumb?path=a.jpg&token={server.app.token}")
        assert status == 200 and headers.get_content_type() == "image/jpeg"
        # A page of another origin cannot use the API even with the token (it could not read it anyway).
        status, payload, _ = good.post("/api/save", {"path": "a.jpg", "edit": {}},
                                       headers={"Origin": "http://evil.example"})
        assert status == 403 and "cross-origin" in payload["error"]
        assert not (tmp_path / "out" / "a.jpg").exists()
        # A page of another site whose name an attacker resolves to 127.0.0.1 (DNS rebinding) sends its own
        # Host: refused, the page too; this machine's names are served.
        port = server.server_address[1]
        for path in ("/", "/api/photos", "/api/thumb?path=a.jpg"):
            status, payload, _ = good.get(path, headers={"Host": f"evil.example:{port}"})
            assert status == 403 and "Host" in payload["error"], (path, status, payload)
        status, payload, _ = good.post("/api/save", {"path": "a.jpg", "edit": {}}, headers={"Host": "evil.example"})
        assert status == 403 and not (tmp_path / "out" / "a.jpg").exists()
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1"):
            assert good.get("/api/batch", headers={"Host": host})[0] == 200, host
        # The page and its files need no token and name nothing outside the package.
        for path in ("/", "/static/studio.js", "/static/studio.css", "/static/icon.svg"):
            status, body, headers = anonymous.get(path)
            assert status == 200, path
            assert "default-src 'none'" in headers["Content-Security-Policy"]
            own = body.replace(b'xmlns="http://www.w3.org/2000/svg"', b"")  # a namespace name, never fetched
            assert b"http://" not in own and b"https://" not in own and b"//cdn" not in own, path
        status, photos_json, _ = good.get("/api/photos")
        assert status == 200 and [p["name"] for p in photos_json["photos"]] == ["a.jpg", "b.png", "sub/c.jpg"]


@pytest.mark.parametrize("path", [
    "../secret.jpg", "%2e%2e%2fsecret.jpg", "%252e%252e%252fsecret.jpg", "..%2fsecret.jpg", "sub/../../secret.jpg",
    "%2Ftmp%2Fsecret.jpg", "sub%2F..%2F..%2Fsecret.jpg", "a.jpg%00.png", ".hidden.jpg", "notes.txt", "link.jpg",
])
def test_path_traversal_is_refused_encoded_doubled_or_symlinked(photos, tiny_colorizer, tmp_path, path):
    _scene(seed=5).save(tmp_path / "secret.jpg")
    (photos / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    with running_studio(photos, tiny_colorizer, tmp_path / "out") as server:
        client = Client(server)
        for route in ("/api/photo", "/api/thumb", "/api/before"):
            status, payload, _ = client.get(f"{route}?path={path}")
            assert status in (400, 404) and "error" in payload, (route, status, payload)
        decoded = path.replace("%25", "%").replace("%2e", ".").replace("%2f", "/").replace("%2F", "/")
        for name in (path, decoded):
            status, payload, _ = client.post("/api/save", {"path": name, "edit": {}})
            assert status in (400, 404), (name, status, payload)
        status, _, _ = client.get(f"/static/..%2F..%2Fserver.py")
        assert status == 404
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # nothing written anywhere


def _post_raw(server, data: bytes, timeout=10.0):
    import socket

    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def test_malformed_requests_get_a_json_4xx_and_the_server_keeps_serving(photos, tiny_colorizer, tmp_path):
    with running_studio(photos, tiny_colorizer, tmp_path / "out") as server:
        client, token = Client(server), server.app.token
        cases = [
            ("/api/render", b"{not json", "application/json", 400, "not valid JSON"),
            ("/api/render", b"[" * 5000, "application/json", 400, "nested too deeply"),
            ("/api/render", b'{"path": "a.jpg"}', "text/plain", 400, "Content-Type"),
            ("/api/render", b"[]", "application/json", 400, "JSON object"),
            ("/api/render", b'{"path": "a.jpg", "edit": {}, "x": 1}', "application/json", 400, "only path and edit"),
            ("/api/render", b'{"path": 3}', "application/json", 400, "path"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"colour": 1}}', "application/json", 400, "unknown field"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"saturation": 9}}', "application/json", 400, "saturation"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"saturation": NaN}}', "application/json", 400, "saturation"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"points": [{"x": 500, "y": 1, "color": "#ff0000"}]}}',
             "application/json", 400, "outside the photo"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"points": [{"x": 5, "y": 1, "color": "red"}]}}',
             "application/json", 400, "#rrggbb"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"points": [{"x": 5, "y": 1, "color": "#ff0000", "size": 10}]}}',
             "application/json", 400, "size"),
            ("/api/render", b'{"path": "a.jpg", "edit": {"reference": "../../etc/passwd"}}', "application/json", 400,
             "reference"),
            ("/api/batch", b'{"action": "explode"}', "application/json", 400, "action"),
            ("/api/nowhere", b"{}", "application/json", 404, "not found"),
        ]
        for route, body, ctype, status, needle in cases:
            got, payload, _ = client.post(route, body, content_type=ctype)
            assert got == status and needle in payload["error"], (route, body[:60], got, payload)
            assert client.get("/api/batch")[0] == 200  # still serving
        big = json.dumps({"path": "a.jpg", "edit": {"points": []}, "pad": "x" * server_lib.MAX_EDIT_BYTES}).encode()
        got, payload, _ = client.post("/api/render", big)
        assert got == 413 and str(server_lib.MAX_EDIT_BYTES) in payload["error"]
        head = f"POST /api/render HTTP/1.1\r\nHost: 127.0.0.1\r\nX-KC-Token: {token}\r\nContent-Type: application/json\r\n"
        assert _post_raw(server, (head + "\r\n").encode())[0] == 411
        assert _post_raw(server, (head + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode())[0] == 411
        assert _post_raw(server, b"GARBAGE REQUEST LINE\r\n\r\n")[0] == 400
        assert client.get("/api/photos")[0] == 200
        assert not any((tmp_path / "out").iterdir())


def _png_header(width, height):
    """A PNG that announces `width` x `height` pixels: a decompression bomb's header (no pixels follow)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_reference_uploads_are_limited_and_bombs_refused(photos, tiny_colorizer, tmp_path):
    with running_studio(photos, tiny_colorizer, tmp_path / "out") as server:
        client = Client(server)
        for data, status, needle in [
            (_png_header(20000, 20000), 413, "decompression bomb"),
            (_png_header(100000, 100000), 413, "decompression bomb"),
            (b"GIF89a not really", 400, "not a photo"),
            (b"\xff\xd8\xff\xe0" + b"\0" * 100, 400, "photo"),
        ]:
            got, payload, _ = client.post("/api/reference", data, content_type="image/png")
            assert got == status and needle in payload["error"], (data[:10], got, payload)
        got, payload, _ = client.post("/api/reference", b"x" * 10, content_type="text/plain")
        assert got == 415
        # Over the size limit: refused from the Content-Length, before the body is read.
        head = (f"POST /api/reference HTTP/1.1\r\nHost: 127.0.0.1\r\nX-KC-Token: {server.app.token}\r\nContent-Type: image/jpeg"
                f"\r\nContent-Length: {session_lib.MAX_REFERENCE_BYTES + 1}\r\n\r\n")
        status, payload = _post_raw(server, head.encode() + b"x" * 1000)
        assert status == 413 and "larger than" in payload["error"]
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (220, 120, 40)).save(buffer, format="JPEG")
        got, payload, _ = client.post("/api/reference", buffer.getvalue(), content_type="image/jpeg")
        assert got == 200 and (payload["width"], payload["height"]) == (64, 48)
        stored = tmp_path / "out" / ".kc-studio" / "references" / payload["id"]
        assert stored.read_bytes() == buffer.getvalue()
        got, body, headers = client.get(f"/api/reference?id={payload['id']}")
        assert got == 200 and headers.get_content_type() == "image/jpeg"
        assert client.get("/api/reference?id=../../a.jpg")[0] == 400


# ---------------------------------------------------------------- rendering, saving, states


def test_open_render_and_saturation_without_hints(photos, tiny_colorizer, tmp_path):
    with running_studio(photos, tiny_colorizer, tmp_path / "out") as server:
        client = Client(server)
        status, info, _ = client.get("/api/photo?path=sub/c.jpg")
        assert status == 200 and (info["width"], info["height"]) == (200, 100) and info["guided"] is False
        assert info["edit"] == {"points": [], "reference": None, "saturation": 1.0} and info["state"] == "not done"
        status, before, _ = client.get("/api/before?path=sub/c.jpg")
        gray = _jpeg_pixels(before)
        assert gray.shape == (100, 200, 3) and np.abs(gray[..., 0] - gray[..., 2]).max() <= 3
        _, colour, _ = client.post("/api/render", {"path": "sub/c.jpg", "edit": {"saturation": 2.0}})
        _, plain, headers = client.post("/api/render", {"path": "sub/c.jpg", "edit": {"saturation": 0.0}})
        chroma = lambda body: np.hypot(*np.moveaxis(_ab(_jpeg_pixels(body)), -1, 0)).mean()  # noqa: E731
        assert chroma(plain) < 2.5 < chroma(colour), (chroma(plain), chroma(colour))
        assert headers["X-KC-State"] == "edited"  # saturation 0 differs from the opened edit
        # Hints on a model without hint inputs: a clear 400, nothing written.
        status, payload, _ = client.post("/api/render", {"path": "a.jpg", "edit": {
            "points": [{"x": 10, "y": 10, "color": "#ff0000"}]}})
        assert status == 400 and "no hint inputs" in payload["error"]


def test_save_without_hints_equals_kc_colorize_and_states_follow(photos, tiny_colorizer, tiny_model_path, tmp_path):
    from keras_colorize.inference import photos as photos_lib

    out = tmp_path / "out"
    with running_studio(photos, tiny_colorizer, out) as server:
        client = Client(server)
        states = lambda: {p["name"]: p["state"] for p in client.get("/api/photos")[1]["photos"]}  # noqa: E731
        assert set(states().values()) == {"not done"}
        client.get("/api/photo?path=a.jpg")
        client.post("/api/render", {"path": "a.jpg", "edit": {"saturation": 1.0}})
        assert states()["a.jpg"] == "not done"  # looked at, not changed
        client.post("/api/render", {"path": "a.jpg", "edit": {"saturation": 1.4}})
        assert states()["a.jpg"] == "edited"
        status, saved, _ = client.post("/api/save", {"path": "a.jpg", "edit": {"saturation": 1.0}})
        assert status == 200 and saved == {"output": "a.jpg", "sidecar": "a.jpg.hints.json", "state": "saved"}
        assert states() == {"a.jpg": "saved", "b.png": "not done", "sub/c.jpg": "not done"}
        # "Colorize the rest": the others, in the background, with progress.
        status, batch, _ = client.post("/api/batch", {"action": "start"})
        assert status == 200 and batch["total"] == 2
        assert server.app.batch.wait(120)
        batch = client.get("/api/batch")[1]
        assert (batch["running"], batch["done"], batch["failed"]) == (False, 2, [])
        assert states() == {"a.jpg": "saved", "b.png": "colorized", "sub/c.jpg": "colorized"}
    assert json.loads((out / "a.jpg.hints.json").read_text())["points"] == []
    assert not list(out.rglob("*.partial*"))
    # The same bytes as kc-colorize's library writes for the same photos.
    reference = tmp_path / "kc_colorize"
    summary = photos_lib.run(photos_lib.ColorizeConfig(model=str(tiny_model_path), input=str(photos),
                                                       output=str(reference), batch_size=1), progress=False)
    assert summary.ok
    for name in ("a.jpg", "b.png", "sub/c.jpg"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert sorted(p.name for p in photos.rglob("*")) == sorted(["a.jpg", "b.png", "sub", "c.jpg", "notes.txt",
                                                               ".hidden.jpg"])  # nothing written among the photos


def test_two_tabs_saving_the_same_photo_leave_one_whole_pair(photos, tiny_colorizer, tmp_path):
    out = tmp_path / "out"
    with running_studio(photos, tiny_colorizer, out) as server:
        edits = [{"saturation": 0.5}, {"saturation": 1.5}]
        errors = []

        def tab(edit):
            client = Client(server)
            for _ in range(3):
                status, payload, _ = client.post("/api/save", {"path": "b.png", "edit": edit})
                if status != 200:
                    errors.append(payload)

        threads = [threading.Thread(target=tab, args=(e,)) for e in edits]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        sidecar = json.loads((out / "b.png.hints.json").read_text())
        assert sidecar.get("saturation", 1.0) in (0.5, 1.5)
        Image.open(out / "b.png").load()  # a whole file
        assert not [p for p in out.rglob("*") if fileio.is_partial(p)]


# ---------------------------------------------------------------- the command


def test_command_prints_the_address_with_a_token_and_warns_for_another_host(photos, tiny_model_path, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # Both commands at once: each spends most of its time importing TensorFlow.
    proc = subprocess.Popen([sys.executable, "-m", "keras_colorize.studio", f"--photos={photos}",
                             f"--output={tmp_path / 'out'}", f"--model={tiny_model_path}", "--port=0",
                             "--host=0.0.0.0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        bad = subprocess.run([sys.executable, "-m", "keras_colorize.studio", f"--photos={photos}",
                              f"--output={photos / 'out'}", f"--model={tiny_model_path}"],
                             capture_output=True, text=True, timeout=120, env=env)
        assert bad.returncode == 2 and "kc-studio: error: --output=" in bad.stderr
        assert "inside the photos" in bad.stderr and not (photos / "out").exists()
        line, deadline = "", time.monotonic() + 120
        while time.monotonic() < deadline and not line.startswith("Open "):
            line = proc.stdout.readline()
            if not line:
                break
        assert line.startswith("Open http://0.0.0.0:"), line
        url = line.split()[1]
        assert "?token=" in url and len(url.split("?token=")[1]) >= 30
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "warning: --host=0.0.0.0" in stderr and "reachable from other machines" in stderr


# ---------------------------------------------------------------- guided: points, reference, saturation


def _colour_jpeg(rgb=(230, 110, 40), size=(96, 64)):
    buffer = io.BytesIO()
    gradient = np.linspace(0.6, 1.0, size[0])[None, :, None] * np.array(rgb, np.float32)[None, None]
    Image.fromarray(np.repeat(gradient, size[1], axis=0).astype(np.uint8)).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_points_reference_and_saturation_steer_the_preview_and_save_like_kc_colorize(
        photos, follower_colorizer, hint_follower_path, tmp_path):
    from keras_colorize.inference import photos as photos_lib

    out = tmp_path / "out"
    with running_studio(photos, follower_colorizer, out) as server:
        client = Client(server)
        _, info, _ = client.get("/api/photo?path=a.jpg")
        assert info["guided"] is True and info["image_size"] == 64
        _, reference, _ = client.post("/api/reference", _colour_jpeg(), content_type="image/jpeg")
        _, plain, _ = client.post("/api/render", {"path": "a.jpg", "edit": {}})
        point = {"x": 40.0, "y": 15.0, "color": "#2080f0", "size": 7}
        edit = {"points": [point], "reference": reference["id"], "saturation": 1.3}
        status, hinted, headers = client.post("/api/render", {"path": "a.jpg", "edit": edit})
        assert status == 200 and headers["X-KC-State"] == "edited"
        plain_ab, hinted_ab = _ab(_jpeg_pixels(plain)), _ab(_jpeg_pixels(hinted))
        target = np.asarray(_ab(np.array([[[0x20, 0x80, 0xf0]]], np.float32)))[0, 0]
        near, far = (slice(10, 20), slice(35, 45)), (slice(95, 115), slice(130, 155))
        assert np.linalg.norm(hinted_ab[near].mean((0, 1)) - target) < 0.5 * np.linalg.norm(
            plain_ab[near].mean((0, 1)) - target)
        # Far away only the saturation acts: a*b* scaled by 1.3 about gray (JPEG-rounded).
        np.testing.assert_allclose(hinted_ab[far].mean((0, 1)), 1.3 * plain_ab[far].mean((0, 1)), atol=1.0)

        status, saved, _ = client.post("/api/save", {"path": "a.jpg", "edit": edit})
        assert status == 200 and saved["state"] == "saved"
    sidecar = out / "a.jpg.hints.json"
    document = json.loads(sidecar.read_text())
    assert document == {"version": 1, "points": [point], "saturation": 1.3,
                        "reference": f".kc-studio/references/{reference['id']}"}
    # kc-colorize's library, given the saved sidecar, writes the same bytes.
    summary = photos_lib.run(photos_lib.ColorizeConfig(model=str(hint_follower_path), input=str(photos / "a.jpg"),
                                                       output=str(tmp_path / "cli"), hints=str(sidecar)),
                             progress=False)
    assert summary.ok, summary.failed
    assert (out / "a.jpg").read_bytes() == (tmp_path / "cli" / "a.jpg").read_bytes()

    # Reopening the studio restores the saved edit; a sidecar beside a photo is read too (never written).
    beside = {"version": 1, "units": "fraction", "points": [{"x": 0.5, "y": 0.25, "color": [10.0, -40.0]}]}
    (photos / "b.png.hints.json").write_text(json.dumps(beside))
    with running_studio(photos, follower_colorizer, out) as server:
        client = Client(server)
        _, info, _ = client.get("/api/photo?path=a.jpg")
        assert (info["edit"], info["edit_from"], info["state"]) == (edit, "saved", "saved")
        _, info, _ = client.get("/api/photo?path=b.png")
        assert info["edit_from"] == "photos folder" and info["state"] == "not done"
        (restored,) = info["edit"]["points"]
        assert (restored["x"], restored["y"], restored["size"]) == (80.0, 30.0, 3)
        assert restored["color"].startswith("#")
    assert (photos / "b.png.hints.json").read_text() == json.dumps(beside)


def test_a_folder_corrected_in_the_studio_rerenders_from_the_command_line(
        photos, follower_colorizer, hint_follower_path, tmp_path):
    """`kc-colorize --input=<photos> --hints_dir=<studio output>` finds every saved sidecar (a reference photo
    named from a subfolder's sidecar included) and writes the studio's bytes."""
    from keras_colorize.inference import photos as photos_lib

    out = tmp_path / "out"
    with running_studio(photos, follower_colorizer, out) as server:
        client = Client(server)
        _, reference, _ = client.post("/api/reference", _colour_jpeg((40, 160, 90)), content_type="image/jpeg")
        edits = {"sub/c.jpg": {"points": [{"x": 150.0, "y": 20.0, "color": "#e04010", "size": 5}],
                               "reference": reference["id"], "saturation": 0.8},
                 "a.jpg": {"points": [{"x": 20.5, "y": 100.25, "color": "#30a0ff", "size": 1}]}}
        for name, edit in edits.items():
            status, saved, _ = client.post("/api/save", {"path": name, "edit": edit})
            assert status == 200 and saved["state"] == "saved", saved
    assert json.loads((out / "sub" / "c.jpg.hints.json").read_text())["reference"] == (
        f"../.kc-studio/references/{reference['id']}")
    cli = tmp_path / "cli"
    summary = photos_lib.run(photos_lib.ColorizeConfig(model=str(hint_follower_path), input=str(photos),
                                                       output=str(cli), hints_dir=str(out)), progress=False)
    assert summary.ok, summary.failed
    assert sorted(name for name, _ in summary.hinted) == ["a.jpg", "sub/c.jpg"]
    for name in edits:
        assert (out / name).read_bytes() == (cli / name).read_bytes(), name


def test_a_12_megapixel_scan_opens_and_follows_a_change_in_about_a_second(tmp_path, follower_colorizer, capsys):
    root = tmp_path / "scans"
    root.mkdir()
    rng = np.random.default_rng(0)
    base = np.linspace(60, 200, 3000, dtype=np.float32)[:, None] + rng.normal(0, 8, (3000, 4000)).astype(np.float32)
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "L").save(root / "scan.jpg", quality=90)
    with running_studio(root, follower_colorizer, tmp_path / "out", preview_size=1600) as server:
        server.app.renderer.warm_up()  # kc-studio does this in the background while the user opens the page
        client = Client(server)
        began = time.monotonic()
        status, info, _ = client.get("/api/photo?path=scan.jpg")
        assert status == 200 and (info["width"], info["height"]) == (4000, 3000)
        assert (info["preview_width"], info["preview_height"]) == (1600, 1200)
        assert client.get("/api/before?path=scan.jpg")[0] == 200
        assert client.post("/api/render", {"path": "scan.jpg", "edit": {}})[0] == 200
        opened = time.monotonic() - began
        changes = []
        for i in range(3):
            began = time.monotonic()
            edit = {"points": [{"x": 500.0 + 100 * i, "y": 400.0, "color": "#c04020", "size": 5}]}
            status, body, _ = client.post("/api/render", {"path": "scan.jpg", "edit": edit})
            changes.append(time.monotonic() - began)
            assert status == 200 and Image.open(io.BytesIO(body)).size == (1600, 1200)
    with capsys.disabled():
        print(f"\n12 MP scan: opened and colorized in {opened:.2f} s; each change in "
              f"{', '.join(f'{c:.2f}' for c in changes)} s (2 shared CPU cores)")
    # Loose bounds: the test machine's two cores are shared with other work; the printed times are the figures.
    assert opened < 12.0 and min(changes) < 2.0
