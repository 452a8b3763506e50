"""The studio's web server: the page, and a JSON API over one folder of photos.

Routes (everything else is 404; every `/api/` route needs the run's token):
  GET  /                     the page (static/index.html); the page does the rest.
  GET  /static/<file>        the page's script, style and icons, shipped in the package.
  GET  /api/photos           the folder's photos with their states, and the "Colorize the rest" progress.
  GET  /api/thumb?path=P     a thumbnail (of the saved colorization once there is one).
  GET  /api/photo?path=P     a photo's size and the edit it opens with (draft, saved sidecar or none).
  GET  /api/before?path=P    the photo's gray preview (JPEG).
  POST /api/render           {"path", "edit"}: the colorized preview (JPEG); the edit becomes the draft.
  POST /api/save             {"path", "edit"}: writes the sidecar and the full-resolution colorization.
  POST /api/reference        the bytes of a reference photo (at most 40 MB): {"id", "width", "height"}.
  GET  /api/reference?id=I   a stored reference photo's thumbnail.
  GET  /api/batch            "Colorize the rest" progress; POST {"action": "start"|"cancel"}.

Safety, as it is a server on the user's machine: it binds 127.0.0.1 unless
told otherwise (`serve` warns for any other address), and then answers only
requests whose `Host` names this machine (a page of another site that has its
name resolve to 127.0.0.1, "DNS rebinding", is refused); every `/api/` request
must carry the per-run token (header `X-KC-Token`, or `token=` in the query
for images), which only the printed address holds, so another page open in
the same browser can neither read nor write the user's files through it (it
cannot read the token: the page and the API refuse cross-origin use). Photo
names are checked against the folder's scan and outputs against the output
folder (:mod:`keras_colorize.studio.folder`). The request handling, limits
and static files are the package's shared HTTP layer, :mod:`keras_colorize.webapp`:
every refusal is JSON with a 4xx status and the server goes on serving.

Example::

    config = StudioConfig(photos="scans/", output="scans_colorized/", model="scenes", port=0)
    serve(config)   # blocks; Ctrl+C stops
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import secrets
import sys
import threading
import urllib.parse
import webbrowser

from keras_colorize import pretrained
from keras_colorize import webapp
from keras_colorize.inference import images
from keras_colorize.studio import batch as batch_lib
from keras_colorize.studio import folder as folder_lib
from keras_colorize.studio import render as render_lib
from keras_colorize.studio import session as session_lib
from keras_colorize.webapp import ClientError

log = logging.getLogger(__name__)

#: Body limit of the JSON routes (an edit of 256 points is about 20 KB).
MAX_EDIT_BYTES = 64 * 1024
TOKEN_HEADER = "X-KC-Token"
#: The page shows previews and references as blob: URLs it makes from the API's JPEGs.
STUDIO_CSP = webapp.CONTENT_SECURITY_POLICY.replace("img-src 'self'", "img-src 'self' blob:")


@dataclasses.dataclass(frozen=True)
class StudioConfig:
    """Everything `serve` needs.

    Attributes:
      photos: folder of photos (searched recursively; only read).
      output: folder the colorizations and hint sidecars are written to
        (default: ``<photos>_colorized`` beside it); never inside `photos`.
      model: a bundled model name, a ``.keras`` file or a SavedModel folder.
      host: address to bind; 127.0.0.1 keeps the studio on this machine.
      port: TCP port; 0 picks a free one.
      preview_size: longer side in pixels of what the page shows.
      read_timeout_s: a connection silent this long mid-request gets 408.
      max_connections: connections served at once (one thread each).
      open_browser: open the page in the default browser once serving.
    """

    photos: str
    output: str | None = None
    model: str = pretrained.GUIDED
    host: str = "127.0.0.1"
    port: int = 8765
    preview_size: int = 1600
    read_timeout_s: float = 30.0
    max_connections: int = 32
    open_browser: bool = False

    def validate(self) -> None:
        """Raises ValueError naming the flag and value for out-of-range settings (folders are checked later)."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, got {self.port!r}")
        if not self.host:
            raise ValueError("--host must not be empty")
        if not isinstance(self.preview_size, int) or not 256 <= self.preview_size <= 8192:
            raise ValueError(f"--preview_size must be between 256 and 8192 pixels, got {self.preview_size!r}")
        if not 0 < self.read_timeout_s <= 3600:
            raise ValueError(f"--read_timeout must be in (0, 3600] seconds, got {self.read_timeout_s!r}")
        if not 1 <= self.max_connections <= 1000:
            raise ValueError(f"--max_connections must be between 1 and 1000, got {self.max_connections!r}")


class StudioApp:
    """The studio behind the HTTP layer: folders, model, edits, the background job and the run's token.

    Args:
      config: the settings.
      colorizer: a ready :class:`keras_colorize.inference.api.Colorizer` (default: loads `config.model`).

    Raises:
      ValueError: bad settings, folders or model (before anything is served).
    """

    def __init__(self, config: StudioConfig, colorizer=None):
        config.validate()
        self.config = config
        output = config.output if config.output else folder_lib.default_output(config.photos)
        self.folder = folder_lib.PhotoFolder(config.photos, output)
        if colorizer is None:
            from keras_colorize.inference.api import Colorizer  # noqa: PLC0415 - TensorFlow

            colorizer = Colorizer(config.model, batch_size=1)
        self.renderer = render_lib.Renderer(colorizer, config.preview_size)
        self.studio = session_lib.Studio(self.folder, self.renderer)
        self.batch = batch_lib.BatchJob(self.studio)
        self.token = secrets.token_urlsafe(24)
        self.static = webapp.load_static("keras_colorize.studio")
        self.folder.scan()

    def token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def close(self) -> None:
        self.batch.cancel()


class StudioHandler(webapp.JsonHandler):
    """The studio's routes; `self.app` is the `StudioApp`. Request plumbing: `keras_colorize.webapp.JsonHandler`."""

    server_version = "kc-studio"
    content_security_policy = STUDIO_CSP

    # ---- helpers ----

    def _check_host(self) -> None:
        """On a loopback address, a 403 for a `Host` that is not this machine (a DNS-rebinding page)."""
        if webapp.is_loopback(self.app.config.host) and not webapp.host_header_is_loopback(self.headers.get("Host")):
            raise ClientError(403, "the Host of the request is not this machine: open the address kc-studio printed")

    def _authorize(self, query: dict) -> None:
        given = self.headers.get(TOKEN_HEADER) or query.get("token")
        if not self.app.token_ok(given):
            raise ClientError(403, "missing or wrong token: open the address kc-studio printed when it started")

    def _name(self, value) -> str:
        if not isinstance(value, str) or not value:
            raise ClientError(400, "path must name a photo of the folder")
        try:
            self.app.folder.photo_path(value)
        except folder_lib.PathRefused as e:
            raise ClientError(404, str(e)) from None
        return value

    def _open(self, name: str) -> render_lib.OpenPhoto:
        try:
            return self.app.renderer.open(self.app.folder.photo_path(name))
        except images.ImageReadError as e:
            raise ClientError(422, f"the photo cannot be read: {str(e).split(': ', 1)[-1]}") from None
        except OSError as e:
            raise ClientError(404, f"the photo cannot be read ({e.strerror or e})") from None

    def _edit(self, payload: dict, photo: render_lib.OpenPhoto) -> session_lib.Edit:
        try:
            return session_lib.parse_edit(payload.get("edit", {}), photo.width, photo.height)
        except session_lib.EditError as e:
            raise ClientError(400, str(e)) from None

    def _jpeg(self, body: bytes, headers: dict | None = None) -> None:
        self.send_body(200, body, "image/jpeg", {"Cache-Control": "no-store", **(headers or {})})

    def _studio_call(self, fn, *args):
        try:
            return fn(*args)
        except session_lib.EditError as e:
            raise ClientError(400, str(e)) from None
        except folder_lib.PathRefused as e:
            raise ClientError(403, str(e)) from None
        except images.ImageReadError as e:
            raise ClientError(422, f"the photo cannot be read: {str(e).split(': ', 1)[-1]}") from None

    # ---- routes ----

    def route_get(self, path: str) -> None:
        self._check_host()
        if self.serve_static(path):
            return
        if not path.startswith("/api/"):
            raise ClientError(404, "not found")
        query = self.query()
        self._authorize(query)
        app = self.app
        if path == "/api/photos":
            self.send_json(200, {"photos": app.studio.photos(), "guided": app.studio.guided,
                                 "ready": app.renderer.ready.is_set(),
                                 "model": str(app.config.model), "photos_dir": str(app.folder.root),
                                 "output_dir": str(app.folder.output), "batch": app.batch.status()})
        elif path == "/api/thumb":
            name = self._name(query.get("path"))
            try:
                output = app.folder.output_path(name)
            except folder_lib.PathRefused:  # a symlink in the output folder: show the photo itself
                output = None
            source = output if output is not None and output.is_file() else app.folder.photo_path(name)
            try:
                self._jpeg(app.renderer.thumbnail(source))
            except (images.ImageReadError, OSError) as e:
                raise ClientError(422, f"no thumbnail: {str(e).split(': ', 1)[-1]}"[:300]) from None
        elif path == "/api/photo":
            name = self._name(query.get("path"))
            photo = self._open(name)
            edit, origin = self._studio_call(app.studio.initial_edit, name, photo.width, photo.height)
            preview_w, preview_h = photo.preview_size
            self.send_json(200, {"path": name, "width": photo.width, "height": photo.height,
                                 "preview_width": preview_w, "preview_height": preview_h,
                                 "edit": edit.to_json(), "edit_from": origin, "state": app.studio.state(name),
                                 "guided": app.studio.guided, "image_size": app.renderer.image_size})
        elif path == "/api/before":
            self._jpeg(self._open(self._name(query.get("path"))).before)
        elif path == "/api/reference":
            reference_id = query.get("id", "")
            try:
                if not app.studio.references.exists(reference_id):
                    raise ClientError(404, "no such reference photo")
                self._jpeg(app.studio.references.thumbnail(reference_id))
            except session_lib.EditError as e:
                raise ClientError(400, str(e)) from None
        elif path == "/api/batch":
            self.send_json(200, app.batch.status())
        else:
            raise ClientError(404, "not found")

    def route_post(self, path: str) -> None:
        self._check_host()
        if not path.startswith("/api/"):
            raise ClientError(404, "not found")
        self._authorize(self.query())
        self.check_origin()
        app = self.app
        if path == "/api/reference":
            content_type = self.headers.get_content_type()
            if not (content_type.startswith("image/") or content_type == "application/octet-stream"):
                raise ClientError(415, "send the reference photo's bytes with an image/* Content-Type")
            body = self.read_body(session_lib.MAX_REFERENCE_BYTES)
            try:
                reference_id, width, height = app.studio.references.add(body)
            except session_lib.EditError as e:
                raise ClientError(413 if "larger" in str(e) or "bomb" in str(e) else 400, str(e)) from None
            self.send_json(200, {"id": reference_id, "width": width, "height": height})
            return
        payload = self.read_json(MAX_EDIT_BYTES)
        if path in ("/api/render", "/api/save"):
            if set(payload) - {"path", "edit"}:
                raise ClientError(400, "the body takes only path and edit")
            name = self._name(payload.get("path"))
            photo = self._open(name)
            edit = self._edit(payload, photo)
            if path == "/api/render":
                body = self._studio_call(app.studio.render, name, edit)
                self._jpeg(body, {"X-KC-State": urllib.parse.quote(app.studio.state(name))})
            else:
                self.send_json(200, self._studio_call(app.studio.save, name, edit))
        elif path == "/api/batch":
            action = payload.get("action")
            if set(payload) != {"action"} or action not in ("start", "cancel"):
                raise ClientError(400, 'batch takes {"action": "start"} or {"action": "cancel"}')
            if action == "start":
                app.batch.start()
            else:
                app.batch.cancel()
            self.send_json(200, app.batch.status())
        else:
            raise ClientError(404, "not found")


class StudioServer(webapp.AppServer):
    """The studio's `webapp.AppServer`; `page_url` is the address with the token."""

    def __init__(self, app: StudioApp):
        super().__init__(app, (app.config.host, app.config.port), StudioHandler, static=app.static,
                         read_timeout_s=app.config.read_timeout_s, max_connections=app.config.max_connections,
                         busy_message="the studio is busy: nothing was changed; try again in a few seconds")

    @property
    def page_url(self) -> str:
        return f"{self.url}?token={self.app.token}"


def make_server(config: StudioConfig, colorizer=None) -> StudioServer:
    """Checks the config, folders and model and binds the port (not yet serving)."""
    app = StudioApp(config, colorizer)
    return webapp.bind(StudioServer, app, config.host, config.port)


def serve(config: StudioConfig) -> None:
    """Runs the studio until Ctrl+C or SIGTERM; every save is complete on disk when it returns."""
    server = make_server(config)
    app = server.app
    if not webapp.is_loopback(config.host):
        print(f"kc-studio: warning: --host={config.host}: the studio is reachable from other machines on this "
              "network; anyone who gets the address with its token can see the photos and write to the output "
              "folder", file=sys.stderr, flush=True)
    names = app.folder.names
    print(f"kc-studio: {len(names)} photos in {app.folder.root}; saving to {app.folder.output}; "
          f"model {config.model}{' (takes hints)' if app.studio.guided else ' (no hint inputs)'}", flush=True)
    threading.Thread(target=app.renderer.warm_up, name="kc-studio-warm-up", daemon=True).start()
    print(f"Open {server.page_url}  (Ctrl+C stops)", flush=True)
    if config.open_browser:
        threading.Timer(0.5, webbrowser.open, args=(server.page_url,)).start()
    webapp.serve_until_stopped(server, app.close)
