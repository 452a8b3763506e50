"""SQLite storage of a user study: images, respondents, their plans and their answers.

Every answer is committed on its own (WAL journal, `synchronous=FULL`), so a
closed browser, a killed server or a power cut loses nothing already answered.
The file is self-contained: the report needs only it, not the image folders.

Tables:
  meta(key, value): `salt` (keys the opaque image ids), `sources` (JSON list,
    report order), `schema_version`.
  serves(started_at, config): the resolved settings of every `serve` run (JSON).
  images(image_id, source, scene, path)
  respondents(respondent_id, number, created_at, seed, total)
  assignments(respondent_id, position, image_id): the plan, positions 1..total.
  answers(respondent_id, position, image_id, source, scene, answer,
    response_ms, answered_at): `answer` is 'real' or 'fake'; `response_ms` is
    the time from the image appearing to the answer, measured in the browser.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import pathlib
import secrets
import sqlite3
import threading
from typing import Callable, Iterable, Sequence

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS serves (started_at TEXT NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
  image_id TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  scene TEXT NOT NULL,
  path TEXT NOT NULL,
  UNIQUE (source, scene));
CREATE TABLE IF NOT EXISTS respondents (
  respondent_id TEXT PRIMARY KEY,
  number INTEGER NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  seed INTEGER NOT NULL,
  total INTEGER NOT NULL CHECK (total > 0));
CREATE TABLE IF NOT EXISTS assignments (
  respondent_id TEXT NOT NULL REFERENCES respondents (respondent_id),
  position INTEGER NOT NULL CHECK (position > 0),
  image_id TEXT NOT NULL REFERENCES images (image_id),
  PRIMARY KEY (respondent_id, position),
  UNIQUE (respondent_id, image_id));
CREATE TABLE IF NOT EXISTS answers (
  respondent_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  image_id TEXT NOT NULL,
  source TEXT NOT NULL,
  scene TEXT NOT NULL,
  answer TEXT NOT NULL CHECK (answer IN ('real', 'fake')),
  response_ms INTEGER NOT NULL CHECK (response_ms >= 0),
  answered_at TEXT NOT NULL,
  PRIMARY KEY (respondent_id, position),
  UNIQUE (respondent_id, image_id),
  FOREIGN KEY (respondent_id, position) REFERENCES assignments (respondent_id, position));
"""


class AnswerResult(enum.Enum):
    STORED = "stored"
    NOT_ASSIGNED = "not_assigned"  # the image is not in this respondent's plan
    ALREADY_ANSWERED = "already_answered"
    OUT_OF_ORDER = "out_of_order"  # assigned, but another image is due first
    UNKNOWN_RESPONDENT = "unknown_respondent"


@dataclasses.dataclass(frozen=True)
class RespondentState:
    """Where a respondent is: `position` (1-based) of the image due, or done."""

    respondent_id: str
    total: int
    answered: int
    image_id: str | None  # the image due now; None when done
    next_image_id: str | None  # the one after it (the page preloads it)

    @property
    def done(self) -> bool:
        return self.image_id is None

    @property
    def position(self) -> int:
        return min(self.answered + 1, self.total)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class StudyDB:
    """One study database, shared by the server's threads (one connection behind a lock).

    Args:
      path: SQLite file; created with its schema if absent (its folder must exist).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        if not self.path.parent.is_dir():
            raise ValueError(f"--db: folder {str(self.path.parent)!r} of {str(path)!r} does not exist")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            self._open(path)
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise ValueError(f"--db: {str(path)!r} is not a usable SQLite study database ({e})") from e
        except BaseException:
            self._conn.close()
            raise

    def _open(self, path) -> None:
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._transaction() as c:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            version = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                c.execute("INSERT INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
            elif version[0] != SCHEMA_VERSION:
                raise ValueError(f"--db: {str(path)!r} has schema version {version[0]}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    class _Tx:
        def __init__(self, db: "StudyDB"):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db._lock.acquire()
            try:
                self.db._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.db._lock.release()
                raise
            return self.db._conn

        def __exit__(self, exc_type, exc, tb):
            try:
                self.db._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.db._lock.release()

    def _transaction(self) -> "StudyDB._Tx":
        return StudyDB._Tx(self)

    @property
    def salt(self) -> bytes:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='salt'").fetchone()
        return bytes.fromhex(row[0])

    def sync_images(self, rows: Iterable[tuple[str, str, str, str]], sources: Sequence[str]) -> None:
        """Records `(image_id, source, scene, path)` rows and the source order (kept across restarts)."""
        with self._transaction() as c:
            c.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET path=excluded.path",
                list(rows))
            row = c.execute("SELECT value FROM meta WHERE key='sources'").fetchone()
            order = json.loads(row[0]) if row else []
            order += [s for s in sources if s not in order]
            c.execute("INSERT OR REPLACE INTO meta VALUES ('sources', ?)", (json.dumps(order),))

    def log_serve(self, config: dict) -> None:
        """Records the settings of a `serve` run (folders, seed, per_respondent, ...)."""
        with self._transaction() as c:
            c.execute("INSERT INTO serves VALUES (?, ?)", (_now(), json.dumps(config, sort_keys=True)))

    def pending_image_ids(self) -> set[str]:
        """Images assigned to someone and not answered yet (must stay servable)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT a.image_id FROM assignments a LEFT JOIN answers r "
                "ON r.respondent_id = a.respondent_id AND r.position = a.position WHERE r.position IS NULL"
            ).fetchall()
        return {r[0] for r in rows}

    def create_respondent(self, seed: int, plan: Callable[[int], Sequence[str]]) -> str:
        """Adds a respondent and their plan; `plan(number)` returns the image ids in order."""
        respondent_id = secrets.token_urlsafe(18)
        with self._transaction() as c:
            number = c.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM respondents").fetchone()[0]
            image_ids = list(plan(number))
            c.execute("INSERT INTO respondents VALUES (?, ?, ?, ?, ?)",
                      (respondent_id, number, _now(), seed, len(image_ids)))
            c.executemany("INSERT INTO assignments VALUES (?, ?, ?)",
                          [(respondent_id, i + 1, image_id) for i, image_id in enumerate(image_ids)])
        return respondent_id

    def state(self, respondent_id: str) -> RespondentState | None:
        """The respondent's progress, or None for an unknown id."""
        with self._lock:
            return self._state(self._conn, respondent_id)

    @staticmethod
    def _state(c: sqlite3.Connection, respondent_id: str) -> RespondentState | None:
        row = c.execute("SELECT total FROM respondents WHERE respondent_id = ?", (respondent_id,)).fetchone()
        if row is None:
            return None
        total = row[0]
        answered = c.execute("SELECT COUNT(*) FROM answers WHERE respondent_id = ?", (respondent_id,)).fetchone()[0]
        due = c.execute(
            "SELECT image_id FROM assignments WHERE respondent_id = ? AND position > ? ORDER BY position LIMIT 2",
            (respondent_id, answered)).fetchall()
        return RespondentState(
            respondent_id=respondent_id,
            total=total,
            answered=answered,
            image_id=due[0][0] if due else None,
            next_image_id=due[1][0] if len(due) > 1 else None)

    def record_answer(self, respondent_id: str, image_id: str, answer: str,
                      response_ms: int) -> tuple[AnswerResult, RespondentState | None]:
        """Stores one answer (committed before returning) if it is the one due.

        Returns the outcome and the respondent's state afterwards.
        """
        if answer not in ("real", "fake"):
            raise ValueError(f"answer must be 'real' or 'fake', got {answer!r}")
        with self._transaction() as c:
            state = self._state(c, respondent_id)
            if state is None:
                return AnswerResult.UNKNOWN_RESPONDENT, None
            row = c.execute(
                "SELECT a.position, i.source, i.scene FROM assignments a JOIN images i USING (image_id) "
                "WHERE a.respondent_id = ? AND a.image_id = ?", (respondent_id, image_id)).fetchone()
            if row is None:
                return AnswerResult.NOT_ASSIGNED, state
            position, source, scene = row
            if position <= state.answered:
                return AnswerResult.ALREADY_ANSWERED, state
            if image_id != state.image_id:
                return AnswerResult.OUT_OF_ORDER, state
            c.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (respondent_id, position, image_id, source, scene, answer, int(response_ms), _now()))
            return AnswerResult.STORED, self._state(c, respondent_id)
