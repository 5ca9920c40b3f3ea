"""One writer per run: an exclusive ``flock`` on ``DIR/run.lock`` held while a store writes.

The kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a
crashed writer never leaves a run locked: the file it leaves behind (naming it) is no lock. A
writer that ends normally removes the file. Readers (``gw.load``, the report, the diagnosis) never take
the lock; SQLite's WAL mode lets them read while the writer writes. A process forked from the
writer (a ``DataLoader`` worker) does not keep the lock alive after the writer dies: its copy of
the descriptor is closed in the child.

Without ``fcntl`` (Windows) there is no lock, and nothing stops a second writer.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> lock = WriterLock(d); lock.acquire()
    >>> try:
    ...     WriterLock(d).acquire()
    ... except RunLocked as e:
    ...     print(str(e).split(" (")[0].endswith("is being written by this process"))
    True
    >>> lock.release(); WriterLock(d).acquire()
"""

from __future__ import annotations

import json
import os
import socket
import time
import weakref
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from .store import StoreError

LOCK_NAME = "run.lock"
_HELD: "weakref.WeakSet[WriterLock]" = weakref.WeakSet()


class RunLocked(StoreError):
    """Another process (or another store in this one) is writing this run right now.

    Example:
        >>> issubclass(RunLocked, StoreError)
        True
    """


class WriterLock:
    """The exclusive lock of one run directory.

    Args:
        run_dir: the run directory (must exist).

    Example:
        >>> import tempfile
        >>> lock = WriterLock(tempfile.mkdtemp()); lock.acquire(); lock.held
        True
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLocked` naming who holds it."""
        if fcntl is None or self._fd is not None:
            return
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read(fd)
                os.close(fd)
                raise RunLocked(_message(self.path.parent, holder)) from None
            try:  # the file may have been removed by the writer we waited behind: lock the one there now
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        else:  # pragma: no cover - a directory whose lock file keeps being replaced
            raise RunLocked(_message(self.path.parent, {}))
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
        self._fd = fd
        _HELD.add(self)

    def release(self) -> None:
        """Let go of the lock and remove its file (removed while still held: whoever opened it
        meanwhile sees it gone and takes the new one). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.discard(self)
        try:
            try:
                self.path.unlink()
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __del__(self) -> None:  # a store never closed still frees its run when collected
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def check_unlocked(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunLocked` when some process writes ``run_dir`` now (a test, then let go).

    Example:
        >>> import tempfile
        >>> check_unlocked(tempfile.mkdtemp())   # nobody writes there
    """
    d = Path(run_dir)
    if fcntl is None or not (d / LOCK_NAME).exists():
        return
    probe = WriterLock(d)
    probe.acquire()
    probe.release()


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _message(run_dir: Path, holder: dict) -> str:
    pid = holder.get("pid")
    if pid == os.getpid() and holder.get("host") == socket.gethostname():
        who = "this process (another watcher or store writes it)"
    elif pid:
        since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
        who = f"another process (pid {pid} on {holder.get('host', '?')}, since {since})"
    else:
        who = "another process"
    return (f"{str(run_dir)!r} is being written by {who}; a run has one writer: wait for it to end, or write "
            "this one elsewhere (another --out / out=); reading it meanwhile is fine")


def _close_in_child() -> None:
    # a forked child shares the lock's open file description: closing its copy (not unlocking,
    # which would free the parent's lock too) lets the lock end with the parent
    for lock in list(_HELD):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
