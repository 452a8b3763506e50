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
connection; bodies are at most `MAX_BODY_BYTES`. At most `max_connections`
connections are served at once (one thread each); a connection that finds them
all busy for `SLOT_WAIT_S` gets 503 with `Retry-After` before any of its
request is read, so a 503 never stores an answer. The request handling, limits
and static files are the package's shared HTTP layer, `keras_colorize.webapp`.

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
import logging
import math
import re

from keras_colorize import webapp
from keras_colorize.user_study import catalog as catalog_lib
from keras_colorize.user_study import db as db_lib
from keras_colorize.user_study import display
from keras_colorize.user_study import plan as plan_lib
from keras_colorize.webapp import ClientError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
SLOT_WAIT_S = webapp.SLOT_WAIT_S  # see keras_colorize.webapp.AppServer
RETRY_AFTER_S = webapp.RETRY_AFTER_S
MAX_RESPONSE_MS = 24 * 3600 * 1000
COOKIE_MAX_AGE_S = 30 * 24 * 3600
_IMG_PATH = re.compile(r"^/img/([0-9a-f]{20})$")


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
        self.static = webapp.load_static("keras_colorize.user_study")

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


class StudyHandler(webapp.JsonHandler):
    """The study's routes; `self.app` is the `StudyApp`. Request plumbing: `keras_colorize.webapp.JsonHandler`."""

    server_version = "kc-user-study"

    def _respondent_id(self) -> str | None:
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return None
        morsel = cookies.get(self.app.cookie_name)
        return morsel.value if morsel else None

    # ---- routes ----

    def route_get(self, path: str) -> None:
        if self.serve_static(path):
            return
        match = _IMG_PATH.match(path)
        if match:
            image_id = match.group(1)
            if image_id not in self.app.images:
                raise ClientError(404, "not found")
            try:
                body = self.app.images.get(image_id)
            except OSError:
                log.exception("cannot render image %s", image_id)
                raise ClientError(500, "image cannot be read") from None
            self.send_body(200, body, "image/jpeg", {"Cache-Control": "private, max-age=86400"})
            return
        if path == "/api/state":
            respondent_id = self._respondent_id()
            state = self.app.db.state(respondent_id) if respondent_id else None
            self.send_json(200, self.app.state_json(state))
            return
        raise ClientError(404, "not found")

    def route_post(self, path: str) -> None:
        if path == "/api/start":
            payload = self.read_json(MAX_BODY_BYTES)
            if set(payload) - {"new"} or not isinstance(payload.get("new", False), bool):
                raise ClientError(400, 'start takes {} or {"new": true}')
            state = self.app.start(self._respondent_id(), new=payload.get("new", False))
            cookie = (f"{self.app.cookie_name}={state.respondent_id}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; "
                      "HttpOnly; SameSite=Strict")
            self.send_json(200, self.app.state_json(state), {"Set-Cookie": cookie})
        elif path == "/api/answer":
            self._answer(self.read_json(MAX_BODY_BYTES))
        else:
            raise ClientError(404, "not found")

    def _answer(self, payload: dict) -> None:
        image_id, answer, response_ms = _validate_answer(payload)
        respondent_id = self._respondent_id()
        if not respondent_id:
            raise ClientError(403, "no study session: start the study first")
        result, state = self.app.db.record_answer(respondent_id, image_id, answer, response_ms)
        if result is db_lib.AnswerResult.UNKNOWN_RESPONDENT:
            raise ClientError(403, "unknown study session: start the study first")
        if result is db_lib.AnswerResult.NOT_ASSIGNED:
            raise ClientError(403, "this image is not part of your session")
        if result in (db_lib.AnswerResult.ALREADY_ANSWERED, db_lib.AnswerResult.OUT_OF_ORDER):
            message = ("this image is already answered" if result is db_lib.AnswerResult.ALREADY_ANSWERED
                       else "another image is due first")
            raise ClientError(409, message, {"state": self.app.state_json(state)})
        self.send_json(200, self.app.state_json(state))


def _validate_answer(payload: dict) -> tuple[str, str, int]:
    """`(image_id, answer, response_ms)` from an answer body, or a 400 naming the bad field."""
    unknown = set(payload) - {"image_id", "answer", "response_ms"}
    if unknown:
        raise ClientError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    image_id = payload.get("image_id")
    if not isinstance(image_id, str) or not catalog_lib.IMAGE_ID_PATTERN.match(image_id):
        raise ClientError(400, "image_id must be an image id string")
    answer = payload.get("answer")
    if answer not in ("real", "fake"):
        raise ClientError(400, "answer must be 'real' or 'fake'")
    response_ms = payload.get("response_ms")
    if (isinstance(response_ms, bool) or not isinstance(response_ms, (int, float))
            or not math.isfinite(response_ms) or not 0 <= response_ms <= MAX_RESPONSE_MS):
        raise ClientError(400, f"response_ms must be a number of milliseconds in [0, {MAX_RESPONSE_MS}]")
    return image_id, answer, round(response_ms)


class StudyServer(webapp.AppServer):
    """The study's `webapp.AppServer` carrying the `StudyApp`; `url` is where respondents go.

    At most `config.max_connections` connections at once; beyond, 503 with
    `Retry-After` and nothing stored (see `keras_colorize.webapp.AppServer`).
    """

    def __init__(self, app: StudyApp):
        super().__init__(app, (app.config.host, app.config.port), StudyHandler, static=app.static,
                         read_timeout_s=app.config.read_timeout_s, max_connections=app.config.max_connections,
                         busy_message="the study server is busy: nothing was saved; try again in a few seconds")


def make_server(config: StudyConfig) -> StudyServer:
    """Checks the config and folders, opens the database and binds the port (not yet serving)."""
    app = StudyApp(config)
    return webapp.bind(StudyServer, app, config.host, config.port)


def serve(config: StudyConfig) -> None:
    """Runs the study until Ctrl+C or SIGTERM; every answer is already committed when it returns."""
    server = make_server(config)
    app = server.app
    for warning in app.warnings:
        log.warning("%s", warning)
    if not webapp.is_loopback(config.host):
        log.warning("--host=%s: the study is reachable from other machines on this network", config.host)
    counts = ", ".join(f"{s}: {app.catalog.count(s)}" for s in app.catalog.sources)
    print(f"User study: {app.catalog.scene_count} scenes ({counts}); {config.per_respondent} images per "
          f"respondent; answers go to {config.db_path}", flush=True)
    print(f"Serving the study at {server.url} (Ctrl+C stops)", flush=True)
    webapp.serve_until_stopped(server, app.close)
