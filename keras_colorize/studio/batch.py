"""'Colorize the rest': every photo not yet saved, rendered at full resolution in the background.

A photo with an unsaved edit is saved with it (sidecar and colorization, as
the Save button does); a photo without output is colorized as ``kc-colorize``
would colorize it (with the sidecar beside it in the photos folder, if any);
saved and already colorized photos are left as they are. The job runs in a
server thread, one photo at a time (interactive renders slip in between), so
the page can be closed: it picks up the progress when it comes back.

Example::

    job = BatchJob(studio)
    job.start()          # False if one is already running
    job.status()         # {"running": True, "done": 3, "total": 12, ...}
"""

from __future__ import annotations

import logging
import threading
import time

from keras_colorize.studio import session as session_lib

log = logging.getLogger(__name__)


class BatchJob:
    """One 'Colorize the rest' run at a time, in a daemon thread."""

    def __init__(self, studio: session_lib.Studio):
        self.studio = studio
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._status = {"running": False, "total": 0, "done": 0, "failed": [], "current": None,
                        "cancelled": False, "seconds": 0.0}

    def status(self) -> dict:
        with self._lock:
            return {**self._status, "failed": list(self._status["failed"])}

    def start(self) -> bool:
        """Starts a run over the photos that are not saved (nor colorized); False if one is running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            todo = [p["name"] for p in self.studio.photos() if p["state"] in ("not done", "edited")]
            self._cancel.clear()
            self._status = {"running": True, "total": len(todo), "done": 0, "failed": [], "current": None,
                            "cancelled": False, "seconds": 0.0}
            self._thread = threading.Thread(target=self._run, args=(todo,), name="kc-studio-batch", daemon=True)
            self._thread.start()
            return True

    def cancel(self) -> None:
        """Stops after the photo being written (that one is finished, atomically)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self, names: list[str]) -> None:
        began = time.monotonic()
        for name in names:
            if self._cancel.is_set():
                with self._lock:
                    self._status["cancelled"] = True
                break
            with self._lock:
                self._status["current"] = name
            try:
                self.studio.colorize_rest_one(name)
            except Exception as e:  # noqa: BLE001 - one bad photo must not stop the run
                log.warning("colorize the rest: %s failed: %s", name, e)
                with self._lock:
                    self._status["failed"].append({"name": name, "error": " ".join(str(e).split())[:300]})
            with self._lock:
                self._status["done"] += 1
                self._status["seconds"] = round(time.monotonic() - began, 2)
        with self._lock:
            self._status.update(running=False, current=None, seconds=round(time.monotonic() - began, 2))
