"""The study's web server: Python's `http.server` (threaded) and a small JSON API.

Routes (everything else is 404):
  GET  /                 the page (static/index.html); the page does the rest.
  GET  /static/<file>    the page's CSS and JS, from a fixed list read at start.
  GET  /img/<image_id>   one study image, JPEG, at the display size (see `display`).
  GET  /api/state        where the respondent is (from the cookie).
  POST /api/start        makes an anonymous respondent and its plan; sets the cookie
                         ({"new": true}: the next person on a shared computer, once this one is done).
  POST /api/answer       {"image_id", "answer": "real"|"fake", "response_ms"}.

Every refusal is a JSON `{"error": ...}` with a 4xx status, never a dropped
connection: malformed JSON or JSON nested too deeply 400, no Content-Length or a
chunked body 411, a body over `MAX_BODY_BYTES` 413, a body that stops arriving
for `read_timeout_s` 408; the standard library's own checks (request line over
64 KB 414, more than 100 header lines or one over 64 KB 431) answer JSON too.
At most `max_connections` connections are served at once (one thread each);
a connection that finds them all busy for `SLOT_WAIT_S` gets 503 with
`Retry-After` before any of its request is read, so a 503 never stores an answer.

Image ids are keyed hashes (`catalog.make_image_id`): URLs carry no path, and
only files found in the configured folders at start are ever read. The
respondent id is a random token in an HttpOnly, SameSite=Strict cookie; it
lasts 30 days, so closing the tab and coming back resumes the session.

Example:
    config = StudyConfig(real_dir="photos", models=(("proposed", "out"),), per_respondent=50)
    serve(config)   # blocks; Ctrl+C stops
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.cookies
import http.server
import importlib.resources
import ipaddress
import json
import logging
import math
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse

from keras_colorize.user_study import catalog as catalog_lib
from keras_colorize.user_study import db as db_lib
from keras_colorize.user_study import display
from keras_colorize.user_study import plan as plan_lib

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn; 5 (the default) reset connections under load
SLOT_WAIT_S = 1.0  # how long a new connection may wait for a free worker before it gets 503
RETRY_AFTER_S = 2
LINGER_S = 1.0  # after the last response, how long unread request bytes are drained so close() sends no reset
_MAX_DRAIN_BYTES = 64 * 1024
MAX_RESPONSE_MS = 24 * 3600 * 1000
COOKIE_MAX_AGE_S = 30 * 24 * 3600
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
_IMG_PATH = re.compile(r"^/img/([0-9a-f]{20})$")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
}


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything `serve` needs.

    Attributes:
      real_dir: folder of real colour photos.
      models: `(name, folder)` per model; the report lists them in this order.
      per_respondent: images each respondent judges (at most the number of scenes).
      db_path: SQLite file (created if absent; reopened to resume a study).
      host: address to bind; 127.0.0.1 keeps the study on this machine.
      port: TCP port; 0 picks a free one (printed at start).
      seed: study seed; respondent n's order depends only on (seed, n).
      display_size: longer side, in pixels, of every image shown.
      read_timeout_s: a connection silent this long (the rest of a request, or
        the next request on a kept-alive connection) gets 408 or is closed,
        and its thread is freed.
      max_connections: connections served at once (one thread each); more
        wait in the listen backlog up to `SLOT_WAIT_S`, then get 503.
    """

    real_dir: str
    models: tuple[tuple[str, str], ...]
    per_respondent: int
    db_path: str = "study.sqlite"
    host: str = "127.0.0.1"
    port: int = 8000
    seed: int = 0
    display_size: int = 256
    read_timeout_s: float = 10.0
    max_connections: int = 128

    def validate(self) -> None:
        """Raises ValueError naming the flag and value for out-of-range settings (folders are checked later)."""
        if not isinstance(self.per_respondent, int) or self.per_respondent < 1:
            raise ValueError(f"--per_respondent must be a positive integer, got {self.per_respondent!r}")
        if not 64 <= self.display_size <= 2048:
            raise ValueError(f"--display_size must be between 64 and 2048 pixels, got {self.display_size!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, got {self.port!r}")
        if not self.host:
            raise ValueError("--host must not be empty")
        if (isinstance(self.read_timeout_s, bool) or not isinstance(self.read_timeout_s, (int, float))
                or not 0 < self.read_timeout_s <= 3600):
            raise ValueError(f"--read_timeout must be a number of seconds in (0, 3600], got {self.read_timeout_s!r}")
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) \
                or not 1 <= self.max_connections <= 10000:
            raise ValueError(f"--max_connections must be an integer between 1 and 10000, got {self.max_connections!r}")


class StudyApp:
    """The study's state behind the HTTP layer: catalog, database, rendered images.

    Raises:
      ValueError: for bad settings or folders (see `StudyConfig.validate`,
        `catalog.build_catalog`), `per_respondent` above the number of
        distinct scenes, or a database whose unanswered assignments refer to
        images that are no longer in the folders.
    """

    def __init__(self, config: StudyConfig):
        config.validate()
        self.config = config
        self.catalog = catalog_lib.build_catalog(config.real_dir, config.models)
        if config.per_respondent > self.catalog.scene_count:
            raise ValueError(
                f"--per_respondent={config.per_respondent} is larger than the number of distinct scenes "
                f"({self.catalog.scene_count}) in the folders; a respondent never sees a scene twice")
        self.warnings = catalog_lib.display_warnings(self.catalog, config.display_size)
        self.db = db_lib.StudyDB(config.db_path)
        try:
            salt = self.db.salt
            self._id_of = {(im.source, im.scene): catalog_lib.make_image_id(salt, im.source, im.scene)
                           for im in self.catalog.images}
            self.db.sync_images(
                [(self._id_of[(im.source, im.scene)], im.source, im.scene, str(im.path)) for im in self.catalog.images],
                self.catalog.sources)
            missing = self.db.pending_image_ids() - set(self._id_of.values())
            if missing:
                raise ValueError(
                    f"--db={config.db_path}: {len(missing)} image(s) assigned to unfinished respondents are not in the "
                    "configured folders any more; serve this study with the folders it started with")
            self.db.log_serve(dataclasses.asdict(config))
        except BaseException:
            self.db.close()
            raise
        self.images = display.DisplayCache(
            {self._id_of[(im.source, im.scene)]: im.path for im in self.catalog.images}, config.display_size)
        self._available = catalog_lib.available_sources(self.catalog)
        self.cookie_name = "kc_study_" + hashlib.sha256(salt).hexdigest()[:8]
        self.static = _load_static()

    def close(self) -> None:
        self.db.close()

    def plan_ids(self, respondent_number: int) -> list[str]:
        plan = plan_lib.make_plan(self._available, self.catalog.sources, self.config.per_respondent,
                                  self.config.seed, respondent_number)
        return [self._id_of[(source, scene)] for scene, source in plan]

    def start(self, respondent_id: str | None, new: bool = False) -> db_lib.RespondentState:
        """The existing respondent's state, or a new respondent's (a second start click resumes).

        `new=True` (the "another person" button of the thank-you page, for a shared lab computer)
        makes a new respondent only if the current one has finished.
        """
        if respondent_id:
            state = self.db.state(respondent_id)
            if state is not None and not (new and state.done):
                return state
        new_id = self.db.create_respondent(self.config.seed, self.plan_ids)
        return self.db.state(new_id)

    def state_json(self, state: db_lib.RespondentState | None) -> dict:
        if state is None:
            return {"started": False, "total": self.config.per_respondent, "display_size": self.config.display_size}
        return {
            "started": True,
            "done": state.done,
            "position": state.position,
            "answered": state.answered,
            "total": state.total,
            "image_id": state.image_id,
            "image": f"/img/{state.image_id}" if state.image_id else None,
            "next_image": f"/img/{state.next_image_id}" if state.next_image_id else None,
            "display_size": self.config.display_size,
        }


def _load_static() -> dict[str, tuple[bytes, str]]:
    """`{url path: (bytes, content type)}` for the files shipped in `static/`, read once."""
    files = {}
    folder = importlib.resources.files("keras_colorize.user_study") / "static"
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _STATIC_TYPES:
            files[f"/static/{entry.name}"] = (entry.read_bytes(), _STATIC_TYPES[suffix])
    files["/"] = files.pop("/static/index.html")
    return files


class _ClientError(Exception):
    """A refusal: `status` with `{"error": message, **extra}`; the connection is closed after it."""

    def __init__(self, status: int, message: str, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra or {}


def _netloc(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url).netloc
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        return None


class StudyHandler(http.server.BaseHTTPRequestHandler):
    """HTTP handler; `self.server.app` is the `StudyApp`."""

    server_version = "kc-user-study"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    _responded = False  # a response has been written for the current request

    @property
    def app(self) -> StudyApp:
        return self.server.app

    @property
    def timeout(self) -> float:  # `StreamRequestHandler.setup` puts it on the socket: every read is bounded
        return self.app.config.read_timeout_s

    # ---- plumbing ----

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**_SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json",
                   {"Cache-Control": "no-store", **(headers or {})})

    def _not_found(self) -> None:
        self._send_json(404, {"error": "not found"})

    def send_error(self, code, message=None, explain=None):
        """The standard library's own refusals (bad request line, 414, 431, 501, ...), as JSON like ours."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9" and len(getattr(self, "requestline", "").split()) >= 3:
            self.request_version = "HTTP/1.0"  # a bad version ("HTTP/2.0") is no HTTP/0.9 request: send a status line
        try:
            self._send_json(int(code), {"error": message or self.responses.get(code, ("error",))[0]},
                            {"Connection": "close"})
        except OSError:
            pass

    def _guarded(self, route) -> None:
        """Runs a route: a refusal, a vanished client or a bug ends the request with a status, never a traceback
        on the connection."""
        self._responded = False
        try:
            try:
                route()
            except _ClientError as e:
                self.close_connection = True  # the body may be unread: do not reuse the connection
                if not self._responded:
                    self._send_json(e.status, {"error": e.message, **e.extra}, {"Connection": "close"})
            except OSError:
                raise
            except Exception:
                log.exception("error answering %s %s", self.command, self.path[:200])
                self.close_connection = True
                if not self._responded:
                    self._send_json(500, {"error": "internal server error"}, {"Connection": "close"})
        except OSError as e:  # the client went away or stopped reading: nothing more to tell it
            self.close_connection = True
            log.info("%s %s %s: connection lost (%r)", self.address_string(), self.command, self.path[:200], e)

    def _path(self) -> str:
        try:
            return urllib.parse.urlsplit(self.path).path
        except ValueError:
            raise _ClientError(400, "malformed request target") from None

    def _respondent_id(self) -> str | None:
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return None
        morsel = cookies.get(self.app.cookie_name)
        return morsel.value if morsel else None

    def _read_json(self) -> dict:
        origin = self.headers.get("Origin")
        if origin and _netloc(origin) != self.headers.get("Host"):
            raise _ClientError(403, "cross-origin request refused")
        body = self._read_body()
        if self.headers.get_content_type() != "application/json":
            raise _ClientError(400, "Content-Type must be application/json")
        try:
            payload = json.loads(body.decode("utf-8") or "null")
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            raise _ClientError(400, "body is not valid JSON") from None
        except RecursionError:  # '[' * 2000: the decoder recurses per level
            raise _ClientError(400, "body is nested too deeply: an answer is one flat JSON object") from None
        if not isinstance(payload, dict):
            raise _ClientError(400, "body must be a JSON object")
        return payload

    def _read_body(self) -> bytes:
        """The body its Content-Length announces (at most `MAX_BODY_BYTES`), read within the read timeout."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise _ClientError(411, "chunked bodies are not accepted: send a Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise _ClientError(411, "Content-Length required")
        if len(lengths) > 1:
            raise _ClientError(400, "Content-Length given more than once")
        length = lengths[0].strip()
        if not re.fullmatch(r"[0-9]+", length):  # ASCII only: str.isdigit() also accepts "²" and "٣"
            raise _ClientError(400, f"Content-Length must be a number of bytes, got {length[:40]!r}")
        if len(length) > 9 or int(length) > MAX_BODY_BYTES:
            raise _ClientError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        size = int(length)
        try:
            body = self.rfile.read(size)
        except TimeoutError:
            raise _ClientError(408, f"the request body did not arrive within {self.timeout:g} s") from None
        if len(body) < size:
            raise _ClientError(400, f"the body ended after {len(body)} of the {size} bytes of its Content-Length")
        return body

    # ---- routes ----

    def do_GET(self):  # noqa: N802 (http.server naming)
        self._guarded(self._get)

    def do_HEAD(self):  # noqa: N802
        self._guarded(self._get)

    def do_POST(self):  # noqa: N802
        self._guarded(self._post)

    def _get(self) -> None:
        path = self._path()
        if path in self.app.static:
            body, content_type = self.app.static[path]
            self._send(200, body, content_type, {"Cache-Control": "no-cache"})
            return
        match = _IMG_PATH.match(path)
        if match:
            image_id = match.group(1)
            if image_id not in self.app.images:
                self._not_found()
                return
            try:
                body = self.app.images.get(image_id)
            except OSError:
                log.exception("cannot render image %s", image_id)
                self._send_json(500, {"error": "image cannot be read"})
                return
            self._send(200, body, "image/jpeg", {"Cache-Control": "private, max-age=86400"})
            return
        if path == "/api/state":
            respondent_id = self._respondent_id()
            state = self.app.db.state(respondent_id) if respondent_id else None
            self._send_json(200, self.app.state_json(state))
            return
        self._not_found()

    def _post(self) -> None:
        path = self._path()
        if path == "/api/start":
            payload = self._read_json()
            if set(payload) - {"new"} or not isinstance(payload.get("new", False), bool):
                raise _ClientError(400, 'start takes {} or {"new": true}')
            state = self.app.start(self._respondent_id(), new=payload.get("new", False))
            cookie = (f"{self.app.cookie_name}={state.respondent_id}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; "
                      "HttpOnly; SameSite=Strict")
            self._send_json(200, self.app.state_json(state), {"Set-Cookie": cookie})
        elif path == "/api/answer":
            self._answer(self._read_json())
        else:
            raise _ClientError(404, "not found")

    def _answer(self, payload: dict) -> None:
        image_id, answer, response_ms = _validate_answer(payload)
        respondent_id = self._respondent_id()
        if not respondent_id:
            raise _ClientError(403, "no study session: start the study first")
        result, state = self.app.db.record_answer(respondent_id, image_id, answer, response_ms)
        if result is db_lib.AnswerResult.UNKNOWN_RESPONDENT:
            raise _ClientError(403, "unknown study session: start the study first")
        if result is db_lib.AnswerResult.NOT_ASSIGNED:
            raise _ClientError(403, "this image is not part of your session")
        if result in (db_lib.AnswerResult.ALREADY_ANSWERED, db_lib.AnswerResult.OUT_OF_ORDER):
            message = ("this image is already answered" if result is db_lib.AnswerResult.ALREADY_ANSWERED
                       else "another image is due first")
            raise _ClientError(409, message, {"state": self.app.state_json(state)})
        self._send_json(200, self.app.state_json(state))


def _validate_answer(payload: dict) -> tuple[str, str, int]:
    """`(image_id, answer, response_ms)` from an answer body, or a 400 naming the bad field."""
    unknown = set(payload) - {"image_id", "answer", "response_ms"}
    if unknown:
        raise _ClientError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    image_id = payload.get("image_id")
    if not isinstance(image_id, str) or not catalog_lib.IMAGE_ID_PATTERN.match(image_id):
        raise _ClientError(400, "image_id must be an image id string")
    answer = payload.get("answer")
    if answer not in ("real", "fake"):
        raise _ClientError(400, "answer must be 'real' or 'fake'")
    response_ms = payload.get("response_ms")
    if (isinstance(response_ms, bool) or not isinstance(response_ms, (int, float))
            or not math.isfinite(response_ms) or not 0 <= response_ms <= MAX_RESPONSE_MS):
        raise _ClientError(400, f"response_ms must be a number of milliseconds in [0, {MAX_RESPONSE_MS}]")
    return image_id, answer, round(response_ms)


def _linger_close(sock: socket.socket, seconds: float) -> None:
    """Closes after the response: half-close, then drain what the client still sends (bounded in time and bytes).

    Closing a socket with unread bytes makes the kernel send a reset, which can
    destroy the response the client has not read yet (a 413 or 408 sent before
    the body was read).
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline, drained = time.monotonic() + seconds, 0
        while drained < _MAX_DRAIN_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            chunk = sock.recv(16384)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass
    finally:
        sock.close()


def _busy_response() -> bytes:
    body = json.dumps({"error": "the study server is busy: nothing was saved; try again in a few seconds"}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Retry-After": str(RETRY_AFTER_S),
               "Cache-Control": "no-store", "Connection": "close", **_SECURITY_HEADERS}
    head = "HTTP/1.1 503 Service Unavailable\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


class StudyServer(http.server.ThreadingHTTPServer):
    """`ThreadingHTTPServer` carrying the `StudyApp`; `url` is where respondents go.

    One thread per connection, at most `config.max_connections` at once; the
    accept loop waits up to `SLOT_WAIT_S` for a free one (the connection waits
    in the listen backlog), then answers 503 without reading the request. Once
    a wait has failed, further connections get 503 at once until a thread is free.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, app: StudyApp):
        self.app = app
        self._slots = threading.Condition()
        self._active = 0
        self._saturated = False
        if ":" in app.config.host:
            self.address_family = socket.AF_INET6
        super().__init__((app.config.host, app.config.port), StudyHandler)

    @property
    def active_connections(self) -> int:
        """Connections being served now (each holds one thread)."""
        with self._slots:
            return self._active

    def _take_slot(self) -> bool:
        limit = self.app.config.max_connections
        with self._slots:
            if not self._slots.wait_for(lambda: self._active < limit, 0 if self._saturated else SLOT_WAIT_S):
                self._saturated = True
                return False
            self._active += 1
            return True

    def _free_slot(self) -> None:
        with self._slots:
            self._active -= 1
            self._saturated = False
            self._slots.notify()

    def process_request(self, request, client_address):
        if not self._take_slot():
            log.warning("%s: all %d connections busy: 503", client_address[0], self.app.config.max_connections)
            try:
                request.settimeout(1.0)
                request.sendall(_busy_response())
            except OSError:
                pass
            _linger_close(request, 0.2)  # in the accept loop: keep it short
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self._free_slot()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._free_slot()

    def shutdown_request(self, request):
        _linger_close(request, LINGER_S)

    def handle_error(self, request, client_address):
        log.exception("unexpected error on the connection from %s", client_address[0])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def make_server(config: StudyConfig) -> StudyServer:
    """Checks the config and folders, opens the database and binds the port (not yet serving)."""
    app = StudyApp(config)
    try:
        return StudyServer(app)
    except OSError as e:
        app.close()
        raise ValueError(f"--host={config.host} --port={config.port}: cannot listen there ({e.strerror})") from e


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: StudyConfig) -> None:
    """Runs the study until Ctrl+C or SIGTERM; every answer is already committed when it returns."""
    server = make_server(config)
    app = server.app
    for warning in app.warnings:
        log.warning("%s", warning)
    if not _is_loopback(config.host):
        log.warning("--host=%s: the study is reachable from other machines on this network", config.host)
    counts = ", ".join(f"{s}: {app.catalog.count(s)}" for s in app.catalog.sources)
    print(f"User study: {app.catalog.scene_count} scenes ({counts}); {config.per_respondent} images per "
          f"respondent; answers go to {config.db_path}", flush=True)
    print(f"Serving the study at {server.url} (Ctrl+C stops)", flush=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if in_main_thread else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr, flush=True)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        server.server_close()
        app.close()
