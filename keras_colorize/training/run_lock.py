"""An exclusive lock on a training work directory: one run writes it at a time.

Two trainings on one work directory would both resume from the same step and
overwrite each other's checkpoints. :class:`WorkDirLock` holds
``<work_dir>/.lock``:

* ``fcntl.flock`` on the file is the lock. The kernel drops it when the
  holder exits in any way (``kill -9`` included), so a crashed run never
  blocks its rerun.
* The holder's pid, host, process start time and start date are written
  into the file (and the file's mtime is refreshed every minute), and the
  file is emptied on release. This names the holder in the refusal, and
  catches a second run where ``flock`` is not shared (some network and FUSE
  filesystems): a record of a live process on this host (same pid and same
  start time), or of another host refreshed in the last 10 minutes, refuses
  the lock even though ``flock`` granted it. A record of a dead process is
  stale and is taken over, with a log line.

Example:
  >>> with WorkDirLock("runs/p3"):
  ...     train(...)
"""

import errno
import fcntl
import json
import os
import socket
import threading
import time

from absl import logging

LOCK_NAME = ".lock"
#: The holder refreshes the lock file's mtime this often.
HEARTBEAT_SECONDS = 60
#: A record of another host not refreshed for this long is stale.
STALE_SECONDS = 600


class WorkDirLocked(ValueError):
    """The work directory is held by another run (the message names its pid and host)."""


def _process_start(pid):
    """The start time of ``pid`` in clock ticks since boot (Linux), or None: tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive_here(record):
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    started = _process_start(pid)
    return record.get("start_ticks") is None or started is None or started == record["start_ticks"]


def describe(record):
    """``pid 123 on host h (since 2026-12-01 07:30:00 UTC)`` for a lock record."""
    since = f" (since {record['since']})" if record.get("since") else ""
    return f"pid {record.get('pid')} on host {record.get('host')!r}{since}"


def held_by_another(work_dir):
    """The refusal message if another live run holds ``work_dir``'s lock, else None.

    Reads the record only and takes no lock, so it cannot disturb a run taking
    the lock at the same moment. A run checks this before judging what the
    directory holds: a run stopped between taking the lock and writing its
    ``config.json`` leaves a directory that would otherwise look foreign.
    """
    lock = WorkDirLock(work_dir)
    try:
        fd = os.open(lock.path, os.O_RDONLY)
    except OSError:
        return None
    try:
        record = lock._read(fd)
    finally:
        os.close(fd)
    return lock._refusal(record, "") if record and lock._held(record) else None


class WorkDirLock:
    """``<work_dir>/.lock``, held from :meth:`acquire` to :meth:`release` (or the end of a ``with``).

    Args:
      work_dir: the run directory; created if missing.

    Raises (from :meth:`acquire`):
      WorkDirLocked: another run holds it.
      OSError: the directory cannot be created or written.
    """

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.path = os.path.join(work_dir, LOCK_NAME)
        self._fd = None
        self._stop = threading.Event()
        self._thread = None

    def acquire(self):
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="work-dir-lock", daemon=True)
        self._thread.start()
        return self

    def _take(self, fd):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirLocked(self._refusal(self._read(fd), "")) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            logging.warning("%s: flock is not supported here (%s); relying on the pid/host record only",
                            self.path, e.strerror)
        record = self._read(fd)
        if record:
            if self._held(record):
                raise WorkDirLocked(self._refusal(
                    record, " (flock granted the lock, so this filesystem does not share flock locks between "
                    "processes; the record in the file is what refuses it)"))
            logging.warning("taking over %s from %s, which ended without releasing it", self.path, describe(record))
        record = {
            "pid": os.getpid(), "host": socket.gethostname(), "start_ticks": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)

    def _held(self, record):
        if record.get("host") == socket.gethostname():
            return record.get("pid") != os.getpid() and _alive_here(record)
        # Another host: its process cannot be seen from here; a fresh heartbeat means it is running.
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except OSError:
            return False
        return age < STALE_SECONDS

    def _refusal(self, record, why):
        holder = describe(record) if record else "another process (it wrote no pid yet)"
        return (f"work_dir={self.work_dir!r} is in use by {holder}{why}; wait for that run to end or stop it "
                f"(the lock is {self.path})")

    @staticmethod
    def _read(fd):
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        try:
            record = json.loads(raw) if raw else None
        except ValueError:
            return None  # not a record of ours (or torn by a crash): nothing to honour
        return record if isinstance(record, dict) else None

    def _heartbeat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self):
        """Empties the record and drops the lock (idempotent)."""
        if self._fd is None:
            return
        self._stop.set()
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
