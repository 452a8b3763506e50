"""The HTTP layer of the package's local web apps (the user study and the studio), on Python's `http.server`.

One place for what every route of either app relies on:

* `JsonHandler`: a threaded HTTP/1.1 handler whose every refusal is a JSON
  `{"error": ...}` with a 4xx status, never a dropped connection or a
  traceback: a `ClientError` raised by a route, a malformed request target
  400, malformed JSON or JSON nested too deeply 400, no Content-Length or a
  chunked body 411, a body over the route's limit 413, a body that stops
  arriving within the read timeout 408; the standard library's own checks
  (request line over 64 KB 414, more than 100 header lines 431, an unknown
  method 501) answer JSON too. A bug in a route is a 500 in JSON and the
  server goes on. Every response carries the security headers
  (`SECURITY_HEADERS` and a strict Content-Security-Policy: the pages load
  only their own scripts and styles, nothing from another origin).
* `load_static`: the files a page ships in its package's `static/` folder,
  read once at start; only those are served under `/static/`.
* `AppServer`: a `ThreadingHTTPServer` serving at most `max_connections`
  connections at once (one thread each); a connection that finds them all
  busy for `SLOT_WAIT_S` gets 503 with `Retry-After` before any of its
  request is read, so a 503 never changes anything. Responses end with a
  lingering close, so a refusal sent before the body was read reaches the
  client instead of a reset.

Example::

    class Handler(webapp.JsonHandler):
        def route_get(self, path):
            if not self.serve_static(path):
                raise webapp.ClientError(404, "not found")

    server = webapp.AppServer(app, ("127.0.0.1", 0), Handler, static=webapp.load_static("my.package"))
    server.serve_forever()
"""

from __future__ import annotations

import http.server
import importlib.resources
import ipaddress
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse

log = logging.getLogger(__name__)

#: Default body limit of a JSON request.
MAX_JSON_BYTES = 4096
LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn; 5 (the default) reset connections under load
SLOT_WAIT_S = 1.0  # how long a new connection may wait for a free worker before it gets 503
RETRY_AFTER_S = 2
LINGER_S = 1.0  # after the last response, how long unread request bytes are drained so close() sends no reset
_MAX_DRAIN_BYTES = 64 * 1024
#: Max JSON nesting depth any route accepts (the decoder recurses per level).
MAX_JSON_DEPTH = 32

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                ".woff2": "font/woff2"}

#: The pages' default policy: their own scripts, styles and images, nothing from elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a URL's query (the studio's token) never leaves in a Referer
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class ClientError(Exception):
    """A refusal: `status` with `{"error": message, **extra}`; the connection is closed after it."""

    def __init__(self, status: int, message: str, extra: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.extra, self.headers = status, message, extra or {}, headers or {}


def load_static(package: str, folder: str = "static", index: str = "index.html") -> dict[str, tuple[bytes, str]]:
    """`{url path: (bytes, content type)}` for the files shipped in `<package>/<folder>/`, read once.

    `index` is served at `/`; every other file at `/static/<name>`. Files of
    other types than `STATIC_TYPES` are not served.
    """
    files = {}
    root = importlib.resources.files(package) / folder
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[f"/static/{entry.name}"] = (entry.read_bytes(), STATIC_TYPES[suffix])
    files["/"] = files.pop(f"/static/{index}")
    return files


def netloc(url: str) -> str | None:
    """The host[:port] of a URL, or None when it does not parse."""
    try:
        return urllib.parse.urlsplit(url).netloc
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        return None


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_header_is_loopback(value: str | None) -> bool:
    """True when a request's `Host` header names this machine (``localhost``, ``127.0.0.1:8765``, ``[::1]``).

    A server bound to a loopback address refuses other names: a page of another site whose name an attacker
    points at 127.0.0.1 (DNS rebinding) sends its own name as `Host`.
    """
    if not value:
        return False
    try:
        hostname = urllib.parse.urlsplit("//" + value.strip()).hostname
    except ValueError:
        return False
    return hostname is not None and is_loopback(hostname)


def _json_depth_ok(text: str, limit: int) -> bool:
    """False when brackets nest deeper than `limit` (outside strings): refused before the recursive decoder runs."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """Request plumbing shared by the apps; subclasses define `route_get(path)` and `route_post(path)`.

    `self.app` is the server's app object; `self.server.static` the page's
    files (`load_static`). A route answers with `send_json` / `send_body`, or
    raises `ClientError`.
    """

    server_version = "kc-webapp"
    sys_version = ""
    content_security_policy = CONTENT_SECURITY_POLICY
    protocol_version = "HTTP/1.1"
    _responded = False  # a response has been written for the current request

    @property
    def app(self):
        return self.server.app

    @property
    def timeout(self) -> float:  # `StreamRequestHandler.setup` puts it on the socket: every read is bounded
        return self.server.read_timeout_s

    # ---- responses ----

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        log.info("%s %s", self.address_string(), format % args)

    def send_body(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        merged = {**SECURITY_HEADERS, "Content-Security-Policy": self.content_security_policy, **(headers or {})}
        for key, value in merged.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json",
                       {"Cache-Control": "no-store", **(headers or {})})

    def send_error(self, code, message=None, explain=None):
        """The standard library's own refusals (bad request line, 414, 431, 501, ...), as JSON like ours."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9" and len(getattr(self, "requestline", "").split()) >= 3:
            self.request_version = "HTTP/1.0"  # a bad version ("HTTP/2.0") is no HTTP/0.9 request: send a status line
        try:
            self.send_json(int(code), {"error": message or self.responses.get(code, ("error",))[0]},
                           {"Connection": "close"})
        except OSError:
            pass

    def serve_static(self, path: str) -> bool:
        """Answers with one of the page's files if `path` names one; False otherwise."""
        static = self.server.static
        if path not in static:
            return False
        body, content_type = static[path]
        self.send_body(200, body, content_type, {"Cache-Control": "no-cache"})
        return True

    # ---- dispatch ----

    def do_GET(self):  # noqa: N802 (http.server naming)
        self.guarded(lambda: self.route_get(self.request_path()))

    def do_HEAD(self):  # noqa: N802
        self.guarded(lambda: self.route_get(self.request_path()))

    def do_POST(self):  # noqa: N802
        self.guarded(lambda: self.route_post(self.request_path()))

    def route_get(self, path: str) -> None:
        raise ClientError(404, "not found")

    def route_post(self, path: str) -> None:
        raise ClientError(404, "not found")

    def guarded(self, route) -> None:
        """Runs a route: a refusal, a vanished client or a bug ends the request with a status, never a traceback
        on the connection."""
        self._responded = False
        try:
            try:
                route()
            except ClientError as e:
                self.close_connection = True  # the body may be unread: do not reuse the connection
                if not self._responded:
                    self.send_json(e.status, {"error": e.message, **e.extra}, {"Connection": "close", **e.headers})
            except OSError:
                raise
            except Exception:
                log.exception("error answering %s %s", self.command, self.path[:200])
                self.close_connection = True
                if not self._responded:
                    self.send_json(500, {"error": "internal server error"}, {"Connection": "close"})
        except OSError as e:  # the client went away or stopped reading: nothing more to tell it
            self.close_connection = True
            log.info("%s %s %s: connection lost (%r)", self.address_string(), self.command, self.path[:200], e)

    # ---- reading the request ----

    def request_path(self) -> str:
        """The path of the request target (percent-encoding kept), or a 400."""
        try:
            return urllib.parse.urlsplit(self.path).path
        except ValueError:
            raise ClientError(400, "malformed request target") from None

    def query(self) -> dict[str, str]:
        """The query string's parameters (each at most once), decoded; a 400 for a malformed one."""
        try:
            pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True,
                                           strict_parsing=False, errors="strict", max_num_fields=32)
        except (ValueError, UnicodeDecodeError):
            raise ClientError(400, "malformed query string") from None
        result = {}
        for key, value in pairs:
            if key in result:
                raise ClientError(400, f"query parameter {key!r} given more than once")
            result[key] = value
        return result

    def check_origin(self) -> None:
        """A 403 for a request a page of another origin sent (its `Origin` is not this server's `Host`)."""
        origin = self.headers.get("Origin")
        if origin and netloc(origin) != self.headers.get("Host"):
            raise ClientError(403, "cross-origin request refused")

    def read_json(self, max_bytes: int = MAX_JSON_BYTES):
        """The body as a JSON object (a dict), from the same origin, at most `max_bytes`; else a 4xx."""
        self.check_origin()
        body = self.read_body(max_bytes)
        if self.headers.get_content_type() != "application/json":
            raise ClientError(400, "Content-Type must be application/json")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientError(400, "body is not valid JSON (not UTF-8)") from None
        if not _json_depth_ok(text, MAX_JSON_DEPTH):
            raise ClientError(400, f"body is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
        try:
            payload = json.loads(text or "null")
        except ValueError:
            raise ClientError(400, "body is not valid JSON") from None
        except RecursionError:  # belt and braces: the depth check above should have refused it
            raise ClientError(400, "body is nested too deeply") from None
        if not isinstance(payload, dict):
            raise ClientError(400, "body must be a JSON object")
        return payload

    def read_body(self, max_bytes: int) -> bytes:
        """The body its Content-Length announces (at most `max_bytes`), read within the read timeout."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise ClientError(411, "chunked bodies are not accepted: send a Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise ClientError(411, "Content-Length required")
        if len(lengths) > 1:
            raise ClientError(400, "Content-Length given more than once")
        length = lengths[0].strip()
        if not re.fullmatch(r"[0-9]+", length):  # ASCII only: str.isdigit() also accepts "²" and "٣"
            raise ClientError(400, f"Content-Length must be a number of bytes, got {length[:40]!r}")
        if len(length) > 12 or int(length) > max_bytes:
            raise ClientError(413, f"body larger than {max_bytes} bytes")
        size = int(length)
        try:
            body = self.rfile.read(size)
        except TimeoutError:
            raise ClientError(408, f"the request body did not arrive within {self.timeout:g} s") from None
        if len(body) < size:
            raise ClientError(400, f"the body ended after {len(body)} of the {size} bytes of its Content-Length")
        return body


def linger_close(sock: socket.socket, seconds: float) -> None:
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


def busy_response(message: str) -> bytes:
    """A complete `503 Service Unavailable` with `Retry-After`, JSON `{"error": message}`."""
    body = json.dumps({"error": message}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Retry-After": str(RETRY_AFTER_S),
               "Cache-Control": "no-store", "Connection": "close", **SECURITY_HEADERS,
               "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    head = "HTTP/1.1 503 Service Unavailable\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


class AppServer(http.server.ThreadingHTTPServer):
    """`ThreadingHTTPServer` carrying an app; `url` is its address.

    One thread per connection, at most `max_connections` at once; the accept
    loop waits up to `SLOT_WAIT_S` for a free one (the connection waits in the
    listen backlog), then answers 503 without reading the request. Once a wait
    has failed, further connections get 503 at once until a thread is free.

    Args:
      app: the app object handlers reach as `self.app`.
      address: `(host, port)`; port 0 picks a free one.
      handler: a `JsonHandler` subclass.
      static: the page's files (`load_static`).
      read_timeout_s: a connection silent this long mid-request gets 408, an idle one is closed.
      max_connections: connections served at once.
      busy_message: the 503's error text.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, app, address, handler, *, static=None, read_timeout_s=10.0, max_connections=128,
                 busy_message="the server is busy: nothing was changed; try again in a few seconds"):
        self.app = app
        self.static = static or {}
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.busy_message = busy_message
        self._slots = threading.Condition()
        self._active = 0
        self._saturated = False
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    @property
    def active_connections(self) -> int:
        """Connections being served now (each holds one thread)."""
        with self._slots:
            return self._active

    def _take_slot(self) -> bool:
        with self._slots:
            if not self._slots.wait_for(lambda: self._active < self.max_connections,
                                        0 if self._saturated else SLOT_WAIT_S):
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
            log.warning("%s: all %d connections busy: 503", client_address[0], self.max_connections)
            try:
                request.settimeout(1.0)
                request.sendall(busy_response(self.busy_message))
            except OSError:
                pass
            linger_close(request, 0.2)  # in the accept loop: keep it short
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
        linger_close(request, LINGER_S)

    def handle_error(self, request, client_address):
        log.exception("unexpected error on the connection from %s", client_address[0])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def serve_until_stopped(server: AppServer, close_app) -> None:
    """Serves until Ctrl+C or SIGTERM, then closes the server and the app (``close_app()``), whichever stopped it.

    SIGTERM is turned into the same orderly stop as Ctrl+C when called from the
    main thread (a signal handler can only be installed there); the previous
    handler is restored afterwards.
    """
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
        close_app()
        server.server_close()


def bind(server_class, app, host: str, port: int):
    """``server_class(app)``, bound to its port; if the port cannot be had, closes the app and raises ValueError
    naming ``--host`` and ``--port`` (the commands turn it into one line and exit status 2)."""
    try:
        return server_class(app)
    except OSError as e:
        app.close()
        raise ValueError(f"--host={host} --port={port}: cannot listen there ({e.strerror})") from e
