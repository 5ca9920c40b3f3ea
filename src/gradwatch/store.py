"""The run store: one SQLite database per run (``DIR/run.db``), written off the training thread.

Schema (``SCHEMA_VERSION`` 2, kept in ``PRAGMA user_version`` and in ``meta.schema``; every value
is plain data, nothing is pickled). Schema 1 (``user_version`` 0) is the same layout without the
version pragma: such records open as they are and are brought to schema 2 when resumed. A record
of a newer schema than this gradwatch knows is refused with a message, never half read.

``meta(key, value)``
    JSON values: ``schema``, ``gradwatch``, ``torch``, ``started``, ``argv``, ``config``
    (watch settings), ``model`` (what the model looks like: see :mod:`gradwatch.probes.model_info`),
    ``loss_fn`` (the autograd node of the loss, e.g. ``"MseLossBackward0"``), ``ended``, ``status``.
``params(id, name, module, shape, numel, dtype)``
    One row per parameter tensor; ``id`` indexes the per-parameter vectors.
``modules(id, name, type, activation, kind)``
    One row per named module (``""`` is the root); ``id`` indexes the per-module vectors.
``steps(step, time, loss, grad_norm, step_time, lr, stats, extra, nonfinite)``
    One row per optimizer step: loss (NaN when unknown), global gradient L2 norm, seconds since
    the previous step, the learning rate of each param group (JSON list), and whether the slow
    statistics were measured at this step; ``extra`` holds scalars given to ``Watcher.log``.
``series(step, metric, data)``
    A whole layer vector per (step, metric), packed (``bfloat16`` by default: float32's range,
    so a 1e-30 norm survives, with ~3 significant digits; ``float32`` on request).
    Metrics indexed by parameter id: ``PARAM_METRICS``; by module id: ``MODULE_METRICS``.
``calls(step, module, data)``
    Per time step of a recurrent module: ‖∂L/∂s_t‖ at a cell's state (mean over the step's
    sequences; NaN where none arrived), ‖∂L/∂x_t‖ at a fused RNN's input; per call, in call
    order, for other modules called several times in one step.
``events(id, step, kind, detail)``
    Anything that happens once: guard actions, clipping, warnings; ``detail`` is JSON. A
    ``restart`` event marks each resume (:meth:`RunStore.restart`): the step the resumed run
    starts at, where that number came from, how many recorded steps it supersedes.
``superseded_steps``, ``superseded_series``, ``superseded_calls``, ``superseded_events`` (schema 2)
    The rows of the steps a resumed run trains again (recorded after its checkpoint, before the
    crash), moved out of the tables above with the number of the ``restart`` that superseded
    them as their first column: kept, never mixed into the new ones. The diagnosis reads only
    the tables above.

Example:
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> s = RunStore(d)
    >>> s.write_layout(params=[("w", "", (2,), 2, "float32")], modules=[("", "Linear", "", "param")])
    >>> s.write_steps([dict(step=0, time=0.0, loss=1.0, grad_norm=2.0, step_time=0.1, lr=[0.1], stats=True)])
    >>> s.write_series(0, {"grad_norm": np.array([2.0], dtype=np.float32)})
    >>> s.close()
    >>> float(load_series(d, "grad_norm").iloc[0, 0])
    2.0
"""

from __future__ import annotations

import json
import math
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

SCHEMA_VERSION = 2  # also in _SET_VERSION: change both
DB_NAME = "run.db"

#: per-parameter vectors, indexed by ``params.id``
PARAM_METRICS = {
    "grad_norm": "L2 norm of the gradient",
    "grad_max": "max |g| (NaN/Inf when any entry is)",
    "grad_nonfinite": "count of non-finite gradient entries",
    "weight_norm": "L2 norm of the weights (before the step)",
    "update_norm": "‖w_after − w_before‖ over the optimizer step",
    "grad_prior_norm": "‖.grad‖ as the step's first backward reached the parameters (0 or none unless not zeroed)",
    "identical_frac": "fraction of the tensor's units (rows) identical to another unit",
}
#: per-module vectors, indexed by ``modules.id``
MODULE_METRICS = {
    "delta": "‖∂L/∂h‖ at the module's output (root-sum-square over its calls in the step)",
    "act_mean": "mean activation",
    "act_std": "activation standard deviation",
    "act_sat": "fraction of activations in the flat tails (sigmoid <0.02 or >0.98, |tanh|>0.98)",
    "act_zero": "fraction of activations exactly zero",
    "act_silent": "fraction of units that never fired (>0) in this batch",
    "act_dead": "fraction of units that never fired over the dead-unit window",
    "act_nonfinite": "count of non-finite entries in the module's output (every module)",
    "act_identical": "fraction of units whose output equals another unit's on this batch",
    "calls": "number of times the module ran in the step",
    "order": "position of the module's first output in the step's forward pass (0 = first)",
    "time_gain": "per-step gain of the gradient through the module's recurrence, ‖∂(v·s_t)/∂s_{t−1}‖ for "
                 "a random unit v (geometric mean over its time steps; recurrent modules only)",
}

_SCHEMA_SQL = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS params(id INTEGER PRIMARY KEY, name TEXT NOT NULL, module TEXT NOT NULL,
    shape TEXT NOT NULL, numel INTEGER NOT NULL, dtype TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS modules(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
    activation TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps(step INTEGER PRIMARY KEY, time REAL, loss REAL, grad_norm REAL,
    step_time REAL, lr TEXT, stats INTEGER NOT NULL DEFAULT 0, extra TEXT, nonfinite TEXT);
CREATE TABLE IF NOT EXISTS series(step INTEGER NOT NULL, metric TEXT NOT NULL, dtype TEXT NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY(step, metric));
CREATE TABLE IF NOT EXISTS calls(step INTEGER NOT NULL, module INTEGER NOT NULL, dtype TEXT NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY(step, module));
CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS superseded_steps(restart INTEGER NOT NULL, step INTEGER NOT NULL, time REAL, loss REAL,
    grad_norm REAL, step_time REAL, lr TEXT, stats INTEGER NOT NULL DEFAULT 0, extra TEXT, nonfinite TEXT,
    PRIMARY KEY(restart, step));
CREATE TABLE IF NOT EXISTS superseded_series(restart INTEGER NOT NULL, step INTEGER NOT NULL, metric TEXT NOT NULL,
    dtype TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY(restart, step, metric));
CREATE TABLE IF NOT EXISTS superseded_calls(restart INTEGER NOT NULL, step INTEGER NOT NULL, module INTEGER NOT NULL,
    dtype TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY(restart, step, module));
CREATE TABLE IF NOT EXISTS superseded_events(restart INTEGER NOT NULL, id INTEGER NOT NULL, step INTEGER,
    kind TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY(restart, id));
"""

#: schema version, as the pragma writes it (SQL is never built from strings: see _migrate)
_SET_VERSION = "PRAGMA user_version = 2"


def _supersede(con: sqlite3.Connection, n: int, start: int, before_id: int) -> None:
    """Move the rows of steps ``start`` and on into the ``superseded_*`` tables as restart ``n``;
    of the events, only those written before the restart (id ≤ ``before_id``), never a restart's."""
    a = {"n": n, "start": start, "before": before_id}
    con.execute("INSERT OR REPLACE INTO superseded_steps(restart, step, time, loss, grad_norm, step_time, lr, stats, "
                "extra, nonfinite) SELECT :n, step, time, loss, grad_norm, step_time, lr, stats, extra, nonfinite "
                "FROM steps WHERE step >= :start", a)
    con.execute("DELETE FROM steps WHERE step >= :start", a)
    con.execute("INSERT OR REPLACE INTO superseded_series(restart, step, metric, dtype, data) "
                "SELECT :n, step, metric, dtype, data FROM series WHERE step >= :start", a)
    con.execute("DELETE FROM series WHERE step >= :start", a)
    con.execute("INSERT OR REPLACE INTO superseded_calls(restart, step, module, dtype, data) "
                "SELECT :n, step, module, dtype, data FROM calls WHERE step >= :start", a)
    con.execute("DELETE FROM calls WHERE step >= :start", a)
    con.execute("INSERT OR REPLACE INTO superseded_events(restart, id, step, kind, detail) SELECT :n, id, step, "
                "kind, detail FROM events WHERE step >= :start AND kind != 'restart' AND id <= :before", a)
    con.execute("DELETE FROM events WHERE step >= :start AND kind != 'restart' AND id <= :before", a)


def _unsupersede(con: sqlite3.Connection, n: int) -> None:
    """Put the rows restart ``n`` superseded back where they were."""
    a = {"n": n}
    con.execute("INSERT OR REPLACE INTO steps(step, time, loss, grad_norm, step_time, lr, stats, extra, nonfinite) "
                "SELECT step, time, loss, grad_norm, step_time, lr, stats, extra, nonfinite FROM superseded_steps "
                "WHERE restart = :n", a)
    con.execute("DELETE FROM superseded_steps WHERE restart = :n", a)
    con.execute("INSERT OR REPLACE INTO series(step, metric, dtype, data) SELECT step, metric, dtype, data "
                "FROM superseded_series WHERE restart = :n", a)
    con.execute("DELETE FROM superseded_series WHERE restart = :n", a)
    con.execute("INSERT OR REPLACE INTO calls(step, module, dtype, data) SELECT step, module, dtype, data "
                "FROM superseded_calls WHERE restart = :n", a)
    con.execute("DELETE FROM superseded_calls WHERE restart = :n", a)
    con.execute("INSERT OR REPLACE INTO events(id, step, kind, detail) SELECT id, step, kind, detail "
                "FROM superseded_events WHERE restart = :n", a)
    con.execute("DELETE FROM superseded_events WHERE restart = :n", a)


class StoreError(RuntimeError):
    """The run directory cannot be written or read.

    Example:
        >>> try:
        ...     db_path("/no/such/run")
        ... except StoreError as e:
        ...     print(str(e).split(";")[0])
        no gradwatch run at '/no/such/run' (missing run.db)
    """


# ---------------------------------------------------------------- packing


def pack(values: np.ndarray, dtype: str = "bfloat16") -> bytes:
    """Pack a float vector as ``bfloat16`` (round to nearest even) or ``float32`` bytes.

    Example:
        >>> v = unpack(pack(np.array([1.0, 1e-30, np.nan]), "bfloat16"), "bfloat16")
        >>> v[0], bool(abs(v[1] / 1e-30 - 1) < 2 ** -8), bool(np.isnan(v[2]))  # ~3 significant digits
        (np.float32(1.0), True, True)
    """
    v = np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "float32":
        return v.tobytes()
    if dtype != "bfloat16":
        raise ValueError(f"unknown packing {dtype!r}: use 'bfloat16' or 'float32'")
    bits = v.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(v)
    out[nan] = 0x7FC0  # keep NaN a NaN (rounding could carry it into Inf)
    return out.tobytes()


def pack_rows(vectors: list[np.ndarray], dtype: str = "bfloat16") -> list[bytes]:
    """:func:`pack` of each vector, in one pass over those of equal length (a batch of steps).

    Example:
        >>> rows = pack_rows([np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0])], "float32")
        >>> [unpack(r, "float32").tolist() for r in rows]
        [[1.0, 2.0], [3.0, 4.0], [5.0]]
    """
    out: list[bytes | None] = [None] * len(vectors)
    by_len: dict[int, list[int]] = {}
    for i, v in enumerate(vectors):
        by_len.setdefault(len(v), []).append(i)
    for n, ix in by_len.items():
        data = pack(np.stack([vectors[i] for i in ix]) if len(ix) > 1 else vectors[ix[0]], dtype)
        width = len(data) // len(ix)
        for j, i in enumerate(ix):
            out[i] = data[j * width:(j + 1) * width]
    return out  # type: ignore[return-value]


def unpack(data: bytes, dtype: str = "bfloat16") -> np.ndarray:
    """Inverse of :func:`pack`; returns float32.

    Example:
        >>> unpack(pack(np.array([0.5, -2.0]), "float32"), "float32")
        array([ 0.5, -2. ], dtype=float32)
    """
    if dtype == "float32":
        return np.frombuffer(data, dtype=np.float32).copy()
    half = np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16
    return half.view(np.float32)


# ---------------------------------------------------------------- writer


class RunExists(StoreError):
    """The run directory already holds a recorded run, and neither resuming nor replacing it was asked.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> s = RunStore(d); s.write_steps([dict(step=0, loss=1.0)]); s.close()
        >>> try:
        ...     RunStore(d)
        ... except RunExists as e:
        ...     print(str(e).split(";")[1].strip())
        continue it with --resume (resume=True) or replace it with --overwrite (overwrite=True)
    """


def recorded_steps(path: Path) -> int | None:
    """How many steps the database at ``path`` holds: 0 when there is none, None when the file is
    not a gradwatch run.

    Example:
        >>> recorded_steps(Path("/no/such/run.db"))
        0
    """
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return int(con.execute("SELECT count(*) FROM steps").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None


def check_out(out: str | os.PathLike, resume: bool = False, overwrite: bool = False,
              probe_lock: bool = True) -> int | None:
    """Whether a run may be written to ``out`` as asked; returns the steps recorded there.

    Raises:
        RunLocked: another process writes ``out`` now (checked unless ``probe_lock`` is False).
        RunExists: ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
        StoreError: ``out/run.db`` is some other file (unless ``overwrite``), or a newer
            gradwatch's record.

    Example:
        >>> import tempfile
        >>> check_out(tempfile.mkdtemp())
        0
    """
    out = Path(out)
    path = out / DB_NAME
    if probe_lock:
        from .runlock import check_unlocked

        check_unlocked(out)
    held = recorded_steps(path)
    if held and not overwrite:  # a newer gradwatch's record is neither continued nor refused as "exists"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            _check_schema(con, path)
        finally:
            con.close()
    if held is None and not overwrite:
        raise StoreError(f"{str(path)!r} exists and is not a gradwatch run; give out= a directory of "
                         "its own (or --overwrite / overwrite=True to replace that file)")
    if held and not (resume or overwrite):
        raise RunExists(
            f"{str(out)!r} already holds a gradwatch run ({held} steps); continue it with --resume "
            "(resume=True) or replace it with --overwrite (overwrite=True)")
    return held


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        f = Path(str(path) + suffix)
        if f.exists():
            f.unlink()


class RunStore:
    """Writes one run to ``DIR/run.db`` from a background thread, committing at every batch.

    Calls return at once; the data is queued and written in order by a writer thread, so a
    training step never waits on the disk. ``flush()`` waits until everything queued is
    committed. After a ``kill -9`` the database opens and holds every committed batch.

    A record is never replaced without being asked: a directory that already holds a run (one
    recorded step or more) is refused unless ``resume`` (continue that record) or ``overwrite``
    (delete it and start afresh) is given. A directory whose database holds no step (a run that
    died before its first write) is simply started again.

    Args:
        out: the run directory (created if missing).
        precision: ``"bfloat16"`` (default) or ``"float32"`` for the per-layer vectors.
        resume: continue the run recorded there (a new run if there is none).
        overwrite: delete the run recorded there, if any, and start a new one.

    One store writes a run at a time: it holds ``DIR/run.lock`` (:mod:`gradwatch.runlock`) until
    :meth:`close`, and a second writer is refused while it does; a killed writer's lock is gone
    with its process. Readers never need the lock.

    Raises:
        RunLocked: another store (in this or another process) writes ``out`` now.
        RunExists: ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
        StoreError: the directory cannot be created or written.

    Example:
        >>> import tempfile
        >>> s = RunStore(tempfile.mkdtemp()); s.event(0, "note", {"text": "hi"}); s.close()
    """

    def __init__(self, out: str | os.PathLike, precision: str = "bfloat16", *, resume: bool = False,
                 overwrite: bool = False) -> None:
        if precision not in ("bfloat16", "float32"):
            raise ValueError(f"precision must be 'bfloat16' or 'float32', got {precision!r}")
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: continue the recorded run (resume) "
                             "or replace it (overwrite), not both")
        self.dir = Path(out)
        self.precision = precision
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".gradwatch-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise StoreError(
                f"cannot write the run directory {str(self.dir)!r} ({e.strerror or e}); "
                "pass out= a directory you can write"
            ) from None
        self.path = self.dir / DB_NAME
        from .runlock import WriterLock

        self._lock = WriterLock(self.dir)  # one writer: a second store here is refused (RunLocked)
        self._lock.acquire()
        try:
            held = check_out(self.dir, resume=resume, overwrite=overwrite, probe_lock=False)
            #: whether this store continues a record that was there (resume), even one without steps
            self.continued = bool(resume and held is not None and self.path.exists())
            if not self.continued:
                _remove_db(self.path)  # nothing kept from a replaced (or empty) record: no mixing
            #: steps the record held when this store opened it (0 for a new run)
            self.resumed_steps = held if resume else 0
            self.last_step = _last_step(self.path) if resume and held else None
        except BaseException:
            self._lock.release()
            raise
        self._queue: queue.Queue[Callable[[sqlite3.Connection], None] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gradwatch-store", daemon=True)
        self._thread.start()
        self._restart: tuple[int, int, int] | None = None  # (number, last event id before it, its event id)
        self._ready.wait()
        if self._error:
            self._lock.release()
            raise StoreError(f"cannot open {self.path}: {self._error}") from None
        self._closed = False

    # -- the writer thread
    def _loop(self) -> None:
        try:
            con = sqlite3.connect(self.path, isolation_level=None)
            con.executescript(_SCHEMA_SQL)
            con.execute("PRAGMA synchronous=NORMAL")
            _migrate(con)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                break
            try:
                con.execute("BEGIN")
                job(con)
                con.execute("COMMIT")
            except Exception as e:  # noqa: BLE001 - kept, raised on the next flush()
                self._error = e
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self._queue.task_done()
        con.close()

    def _submit(self, job: Callable[[sqlite3.Connection], None]) -> None:
        if self._closed:
            raise StoreError("the run store is closed")
        self._queue.put(job)

    # -- what the watcher writes
    def set_meta(self, **values: Any) -> None:
        """Store JSON-serialisable metadata under each key."""
        rows = [(k, json.dumps(v, default=str)) for k, v in values.items()]
        self._submit(lambda con: con.executemany("INSERT OR REPLACE INTO meta VALUES(?, ?)", rows))

    def write_layout(
        self,
        params: Iterable[tuple[str, str, tuple[int, ...], int, str]],
        modules: Iterable[tuple[str, str, str, str]],
    ) -> None:
        """Store the parameter rows ``(name, module, shape, numel, dtype)`` and module rows
        ``(name, type, activation, kind)``; their order defines the vector indices."""
        prow = [(i, n, m, json.dumps(list(s)), k, d) for i, (n, m, s, k, d) in enumerate(params)]
        mrow = [(i, n, t, a, k) for i, (n, t, a, k) in enumerate(modules)]

        def job(con: sqlite3.Connection) -> None:
            con.execute("DELETE FROM params")
            con.execute("DELETE FROM modules")
            con.executemany("INSERT INTO params VALUES(?, ?, ?, ?, ?, ?)", prow)
            con.executemany("INSERT INTO modules VALUES(?, ?, ?, ?, ?)", mrow)

        self._submit(job)

    def write_steps(self, rows: list[dict[str, Any]]) -> None:
        """Store step rows (keys: step, time, loss, grad_norm, step_time, lr, stats)."""
        data = [_step_row(r) for r in rows]
        self._submit(
            lambda con: con.executemany("INSERT OR REPLACE INTO steps VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", data)
        )

    def write_series(self, step: int, vectors: dict[str, np.ndarray]) -> None:
        """Store one packed vector per metric for ``step``."""
        p = self.precision
        rows = [(int(step), m, p, pack(v, p)) for m, v in vectors.items()]
        self._submit(lambda con: con.executemany("INSERT OR REPLACE INTO series VALUES(?, ?, ?, ?)", rows))

    def write_batch(
        self,
        steps: list[dict[str, Any]],
        series: list[tuple[int, dict[str, np.ndarray]]],
        calls: list[tuple[int, int, np.ndarray]] = (),
    ) -> None:
        """Store a batch of steps, their vectors and per-call norms in one transaction."""
        self._submit(lambda con: self._write_rows(con, steps, series, calls))

    def write_later(self, make: Callable[[], tuple]) -> None:
        """:meth:`write_batch` of what ``make()`` returns, called on the writer thread.

        The watcher hands over its pending records as they are (tensors still on their device):
        the transfer to the host, the packing and the rows are made off the training thread, where
        touching numpy, json and SQLite once every few seconds would cost it milliseconds of
        cold caches each time.
        """
        self._submit(lambda con: self._write_rows(con, *make()))

    def _write_rows(self, con: sqlite3.Connection, steps, series, calls=()) -> None:
        p = self.precision
        step_rows = [_step_row(r) for r in steps]
        keys = [(int(s), m) for s, vecs in series for m in vecs]
        blobs = pack_rows([v for _, vecs in series for v in vecs.values()], p)
        srows = [(s, m, p, b) for (s, m), b in zip(keys, blobs)]
        cblobs = pack_rows([v for _, _, v in calls], p)
        crows = [(int(s), int(mod), p, b) for (s, mod, _), b in zip(calls, cblobs)]
        con.executemany("INSERT OR REPLACE INTO steps VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", step_rows)
        con.executemany("INSERT OR REPLACE INTO series VALUES(?, ?, ?, ?)", srows)
        con.executemany("INSERT OR REPLACE INTO calls VALUES(?, ?, ?, ?)", crows)

    def event(self, step: int | None, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Record something that happened once (a guard action, a warning, a clip)."""
        row = (step, kind, json.dumps(detail or {}, default=str))
        self._submit(lambda con: con.execute("INSERT INTO events(step, kind, detail) VALUES(?, ?, ?)", row))

    def restart(self, start: int, **detail: Any) -> dict[str, Any]:
        """Mark a resume at step ``start``: the recorded steps from ``start`` on (which the resumed
        run trains again) and their vectors, calls and events move to the ``superseded_*`` tables,
        and a ``restart`` event is written. Waits until it is committed; returns the event's detail.

        Called again by the same store (the start step learnt later, from a checkpoint's watcher
        state), it first puts back what its previous call moved, then supersedes from the new
        ``start``: one restart, one event.

        Example:
            >>> import tempfile
            >>> d = tempfile.mkdtemp()
            >>> s = RunStore(d); s.write_steps([dict(step=i, loss=1.0) for i in range(5)]); s.close()
            >>> s = RunStore(d, resume=True); info = s.restart(3, source="given"); s.close()
            >>> info["superseded"], info["last_recorded"], info["restart"]
            (2, 4, 1)
        """
        out: dict[str, Any] = {}

        def job(con: sqlite3.Connection) -> None:
            out.update(self._restart_rows(con, int(start), detail))

        self._submit(job)
        self.flush()
        return out

    def _restart_rows(self, con: sqlite3.Connection, start: int, detail: dict[str, Any]) -> dict[str, Any]:
        again = self._restart
        if again is not None:  # undo this store's earlier call: the rows back, its event gone
            n, before_id, event_id = again
            _unsupersede(con, n)
            con.execute("DELETE FROM events WHERE id = ?", (event_id,))
        else:
            n = 1 + con.execute("SELECT count(*) FROM events WHERE kind = 'restart'").fetchone()[0]
            before_id = con.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        last = con.execute("SELECT max(step) FROM steps").fetchone()[0]
        superseded = con.execute("SELECT count(*) FROM steps WHERE step >= ?", (start,)).fetchone()[0]
        _supersede(con, n, start, before_id)
        info = {"restart": n, "from_step": start, "last_recorded": last, "superseded": superseded,
                # steps trained before the restart but never written (the process died before its flush)
                "unrecorded": [last + 1 if last is not None else 0, start - 1]
                if start > (last + 1 if last is not None else 0) else None,
                **detail}
        cur = con.execute("INSERT INTO events(step, kind, detail) VALUES(?, 'restart', ?)",
                          (start, json.dumps(info, default=str)))
        self._restart = (n, before_id, cur.lastrowid)
        return info

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is committed; re-raise a writer error."""
        if self._thread.is_alive():
            if timeout is None:
                self._queue.join()
            else:
                deadline = time.monotonic() + timeout
                while self._queue.unfinished_tasks and time.monotonic() < deadline:
                    time.sleep(0.005)
        if self._error is not None:
            err, self._error = self._error, None
            raise StoreError(f"writing {self.path} failed: {err}") from err

    def close(self) -> None:
        """Commit everything queued and stop the writer thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._lock.release()
        if self._error is not None:
            err, self._error = self._error, None
            raise StoreError(f"writing {self.path} failed: {err}") from err


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a record (new, or of schema 1) to ``SCHEMA_VERSION``: the tables new in schema 2 are
    created by ``_SCHEMA_SQL`` (``IF NOT EXISTS``), then the version is written."""
    con.execute(_SET_VERSION)
    con.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (json.dumps(SCHEMA_VERSION),))


def schema_of(con: sqlite3.Connection) -> tuple[int, str]:
    """The store schema of an open record and the gradwatch version that wrote it.

    Example:
        >>> con = sqlite3.connect(":memory:"); _ = con.executescript(_SCHEMA_SQL)
        >>> schema_of(con)   # no version pragma, no meta row: schema 1
        (1, 'unknown')
    """
    version = int(con.execute("PRAGMA user_version").fetchone()[0])
    rows = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('schema', 'gradwatch')").fetchall())
    try:
        in_meta = int(json.loads(rows.get("schema", "1")))
    except (TypeError, ValueError):
        in_meta = 1
    try:
        writer = str(json.loads(rows["gradwatch"]))
    except (KeyError, ValueError):
        writer = "unknown"
    return max(version, in_meta, 1), writer


def _check_schema(con: sqlite3.Connection, path: Path) -> None:
    version, writer = schema_of(con)
    if version > SCHEMA_VERSION:
        from . import __version__

        raise StoreError(
            f"{str(path)!r} was written by a newer gradwatch ({writer}, store schema {version}); this gradwatch "
            f"({__version__}) reads store schemas up to {SCHEMA_VERSION}: upgrade it (pip install -U gradwatch)")


def _last_step(path: Path) -> int | None:
    con = sqlite3.connect(path, timeout=30)
    try:
        return con.execute("SELECT max(step) FROM steps").fetchone()[0]
    finally:
        con.close()


def _step_row(r: dict[str, Any]) -> tuple:
    # SQLite stores NaN as NULL: keep which values were NaN/Inf in a text column
    bad = [f"{k}:{_f(r.get(k))}" for k in ("loss", "grad_norm")
           if r.get(k) is not None and _f(r.get(k)) is not None and not math.isfinite(_f(r.get(k)))]
    return (
        int(r["step"]), _f(r.get("time")), _f(r.get("loss")), _f(r.get("grad_norm")),
        _f(r.get("step_time")), json.dumps([_f(x) for x in r.get("lr", [])]),
        int(bool(r.get("stats", False))),
        json.dumps({k: _f(v) for k, v in r["extra"].items()}) if r.get("extra") else None,
        ",".join(bad) or None,
    )


def _f(x: Any) -> float | None:
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- readers


def db_path(run_dir: str | os.PathLike) -> Path:
    """The database of a run directory (or the path itself when it is the database).

    Example:
        >>> # db_path("runs/exp1") -> Path("runs/exp1/run.db"); a missing run raises StoreError
    """
    p = Path(run_dir)
    if p.is_file():
        return p
    db = p / DB_NAME
    if not db.exists():
        raise StoreError(
            f"no gradwatch run at {str(p)!r} (missing {DB_NAME}); pass the directory given as out="
        )
    return db


def connect(run_dir: str | os.PathLike) -> sqlite3.Connection:
    """Open a run database for reading (works on a live run and after a crash).

    Raises:
        StoreError: no run there, or the file is not a gradwatch run database.

    Example:
        >>> # con = connect("runs/exp1"); con.execute("SELECT count(*) FROM steps").fetchone()[0]
    """
    path = db_path(run_dir)
    con = sqlite3.connect(path, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        con.close()
        raise StoreError(f"{str(path)!r} is not a gradwatch run ({e}); pass the out= directory of a run") from None
    if not {"meta", "steps", "series"} <= tables:
        con.close()
        raise StoreError(f"{str(path)!r} is not a gradwatch run (no gradwatch tables); "
                         "pass the out= directory of a run")
    try:
        _check_schema(con, path)
    except StoreError:
        con.close()
        raise
    return con


def load_series(run_dir: str | os.PathLike, metric: str, con: sqlite3.Connection | None = None):
    """A wide DataFrame of one metric: rows are steps, columns are parameter or module names.

    Example:
        >>> # load_series("runs/exp1", "delta")  -> steps x modules
    """
    import pandas as pd

    own = con is None
    con = con or connect(run_dir)
    try:
        if metric in PARAM_METRICS:
            names = [r[0] for r in con.execute("SELECT name FROM params ORDER BY id")]
        elif metric in MODULE_METRICS:
            names = [r[0] for r in con.execute("SELECT name FROM modules ORDER BY id")]
        else:
            raise KeyError(
                f"unknown metric {metric!r}; per-parameter: {sorted(PARAM_METRICS)}, "
                f"per-module: {sorted(MODULE_METRICS)}"
            )
        rows = con.execute(
            "SELECT step, dtype, data FROM series WHERE metric = ? ORDER BY step", (metric,)
        ).fetchall()
    finally:
        if own:
            con.close()
    steps = [r[0] for r in rows]
    n = len(names)
    mat = np.full((len(rows), n), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        v = unpack(r[2], r[1])
        mat[i, : min(n, len(v))] = v[:n]
    return pd.DataFrame(mat, index=pd.Index(steps, name="step"), columns=names)


from .runlock import RunLocked  # noqa: E402  (defined beside the lock; raised by RunStore and check_out)
