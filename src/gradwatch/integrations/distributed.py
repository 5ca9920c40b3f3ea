"""torch.distributed: one record for a DDP or FSDP2 job, written by rank 0.

Every rank watches its own replica (or shard); gradient statistics are read at the optimizer
step, after DDP's all-reduce (FSDP's reduce-scatter), so they are those of the averaged
gradient. Each flush is one ``gather_object`` on a gloo group of gradwatch's own, never mixed
with the job's collectives; rank 0 combines the ranks' batches (:mod:`.ranks`: the loss is the
mean, δ that of the whole batch, a NaN anywhere stays a NaN, events of other ranks are kept with
their rank) and alone writes the store and the report. Parameters whose gradients differ
between ranks after the all-reduce become ``unsynced_gradients`` events. With ``guard=True``
the decision to skip a step is all-reduced: any rank that sees a bad step makes every rank skip
it, so the replicas never part.

When a peer dies the survivors stop with :class:`PeerLost`; rank 0 first writes every step it
recorded (and the crash note of a peer that died of an exception). A ``SIGTERM`` from the
launcher (``torchrun`` stops the survivors when a worker fails) ends the run the same way.

Example:
    >>> # dist.init_process_group("gloo"); model = DDP(net)
    >>> # with DistributedWatcher(model, opt, out="runs/ddp") as w:   # the same call on every rank
    >>> #     ...train...
    >>> # w.summary.diagnosis.verdict                                 # on every rank
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..guard import Guard
from ..watcher import Watcher, WatchError, _to_host
from . import ranks as R
from .peers import _SAME_ON_EVERY_RANK, PeerLost, _AgreedGuard, _comm_error, _PeerStore, _Shard
from .summary import Summary, finish

class DistributedWatcher(Watcher):
    """A :class:`~gradwatch.watcher.Watcher` for one rank of a ``torch.distributed`` job.

    Create it on every rank, with the same arguments, after ``init_process_group`` and after
    wrapping the model (DDP or ``fully_shard``); flushes are collectives, so they happen every
    ``flush_every`` steps on all ranks (never on a timer). The slow statistics come every ``every``
    steps for the whole run (no timed ``stats_budget``: the ranks must pick the same steps).
    ``guard`` is not available with FSDP.

    Args:
        model: the DDP module (watched through ``.module``), an FSDP2 model, or a plain module
            holding every parameter the optimizer trains (part of it may be a DDP submodule).
        optimizer: this rank's optimizer.
        report: rank 0 diagnoses and writes ``report.html`` at detach; the diagnosis is sent to
            every rank (``summary``).
        unsynced_rtol: relative difference between ranks' gradient norms that counts as unsynced.
        **kwargs: as for :class:`~gradwatch.watcher.Watcher`.

    Raises:
        WatchError: no process group, or ``guard`` with FSDP.
        PeerLost: on leaving the ``with`` block after a peer died (the record is written first).
    """

    flush_on_save = False  # its flush is a collective: never from one rank's torch.save

    _created = 0

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 report: bool = True, quiet: bool = False, unsynced_rtol: float = 1e-5, **kwargs: Any) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise WatchError("DistributedWatcher needs torch.distributed: call dist.init_process_group(...) "
                             "first on every rank, or use gw.watch for a single process")
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapper = None
        if isinstance(model, DDP):
            model, wrapper = model.module, "DistributedDataParallel"
        in_ddp = [n for n, m in model.named_modules() if isinstance(m, DDP)]
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.sharded = any(type(p).__name__ == "DTensor" for p in model.parameters())
        guard = kwargs.pop("guard", False)
        if guard and self.sharded:
            raise WatchError("guard=True is not available with FSDP (sharded parameters); "
                             "use it with DDP, or clip gradients instead")
        self.group = dist.new_group(backend="gloo")  # gradwatch's own: never interleaved with the job's
        if guard:
            agreed = _AgreedGuard()
            if isinstance(guard, Guard):
                agreed.__dict__.update(guard.__dict__)
            agreed.group = self.group
            guard = agreed
        DistributedWatcher._created += 1  # the same count on every rank: names this watcher's notes
        self._serial = DistributedWatcher._created
        self.report, self.quiet, self.unsynced_rtol = report, quiet, unsynced_rtol
        self.summary: Summary | None = None
        self._alone = False  # True once collectives are impossible (a peer died, or we are unwinding)
        self._lost: str | None = None
        if self.rank != 0:
            self.store_class = _PeerStore
        kwargs["flush_seconds"] = float("inf")
        if kwargs.get("stats_budget") is not None:
            raise WatchError("stats_budget is not available with DistributedWatcher: every rank must take its "
                             "statistics on the same steps; use every=N")
        kwargs["stats_budget"] = None  # a timed schedule would differ between ranks
        super().__init__(model, optimizer, guard=guard, **kwargs)
        if self.sharded:
            self.tensors.params = [_Shard(p) for p in self.tensors.params]
        ddp_params = [n for n, _ in model.named_parameters()] if wrapper else \
            [n for n, _ in model.named_parameters() if any(n.startswith(d + ".") for d in in_ddp)]
        self.set_meta(distributed={
            "world_size": self.world, "backend": str(dist.get_backend()),
            "wrapper": "fully_shard" if self.sharded else (wrapper or ("DistributedDataParallel" if in_ddp else None)),
            "params_in_ddp": None if self.sharded else ddp_params})
        self._old_term = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._old_term = signal.signal(signal.SIGTERM, self._on_sigterm)

    # ------------------------------------------------------------ failure
    def _on_sigterm(self, signum, frame) -> None:
        if self._closed or self._alone:
            return
        raise PeerLost(f"gradwatch: rank {self.rank} of {self.world} was stopped by its launcher (SIGTERM) "
                       f"at step {self.step}, most likely because another rank died")

    def _peer_lost(self, exc: BaseException) -> None:
        self._alone = True
        self._lost = self._lost or f"{type(exc).__name__}: {str(exc).strip()[:300]}"

    def _store_key(self, rank: int) -> str:
        return f"gradwatch/{self._serial}/crash/{rank}"

    def _kv(self):
        try:
            return dist.distributed_c10d._get_default_store()
        except Exception:  # noqa: BLE001 - no store: crash notes of peers are not shared
            return None

    # ------------------------------------------------------------ flush = one gather
    def _flush_if_due(self) -> None:
        # every rank flushes at the same steps (a collective): on the count alone
        if len(self._pending) >= self.flush_every:
            self.flush(wait=False)

    def flush(self, wait: bool = True) -> None:
        """Gather every rank's pending records on rank 0, which merges and writes them."""
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        steps, series, calls = _to_host(pending) if pending else ([], [], [])
        events = self.store.events if isinstance(self.store, _PeerStore) else []
        mine = {"rank": self.rank, "steps": steps, "series": series, "calls": calls,
                "events": [e for e in events if e[1] not in _SAME_ON_EVERY_RANK]}
        if isinstance(self.store, _PeerStore):
            self.store.events = []
        parts = [mine]
        if not self._alone and dist.is_initialized():
            gathered: list | None = [None] * self.world if self.rank == 0 else None
            try:
                dist.gather_object(mine, gathered, dst=0, group=self.group)
                parts = gathered if self.rank == 0 else [mine]
            except Exception as e:  # noqa: BLE001 - a peer is gone: write what this rank has
                self._peer_lost(e)
        if self.rank != 0:
            return
        self._write(parts)
        if wait:
            self.store.flush()

    def _write(self, parts: list[dict]) -> None:
        steps, series, calls = R.merge(parts, sharded=self.sharded)
        if steps or series:
            self.store.write_batch(steps, series, calls)
        for p in parts:
            for step, kind, detail in p["events"] if p["rank"] != 0 else ():
                self.store.event(step, kind, {**detail, "rank": p["rank"]})
        if len(parts) > 1 and not self.sharded:
            diff = R.unsynced(parts, self.param_names, rtol=self.unsynced_rtol)
            if diff is not None:
                self.store.event(diff["first_step"], "unsynced_gradients", {**diff, "world_size": self.world})

    # ------------------------------------------------------------ the end
    def detach(self) -> None:
        """Flush (a collective, unless a peer is gone), close the store, then rank 0 diagnoses,
        writes the report and sends the diagnosis to every rank. Safe to call twice."""
        if self._closed:
            return
        if self._alone and self.rank == 0:
            self._collect_peer_notes()
        if self._lost and self.rank == 0:
            self.store.event(self.step, "peer_lost", {"error": self._lost, "world_size": self.world})
        try:
            super().detach()
            if self.rank == 0 and self.report:
                self.summary = finish(self.out, report=True, quiet=self.quiet)
            self._share_summary()
        finally:  # the launcher's SIGTERM waits until the record and the report are written
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)
                self._old_term = None

    def _share_summary(self) -> None:
        if not self._alone and dist.is_initialized():
            box = [self.summary.diagnosis.to_json() if self.summary else None,
                   str(self.summary.report) if self.summary and self.summary.report else None,
                   self.summary.metrics if self.summary else None]
            try:
                dist.broadcast_object_list(box, src=0, group=self.group)
            except Exception as e:  # noqa: BLE001 - a peer is gone: this rank keeps its own summary
                self._peer_lost(e)
                return
            if self.rank != 0 and box[0] is not None:
                from ..findings import Diagnosis

                self.summary = Summary(Diagnosis.from_json(box[0]), Path(box[1]) if box[1] else None, box[2] or {})

    def _collect_peer_notes(self) -> None:
        kv = self._kv()
        if kv is None:
            return
        for r in range(1, self.world):
            key = self._store_key(r)
            try:
                if kv.check([key]):
                    self.store.event(self.step, "crash", {**json.loads(kv.get(key)), "rank": r})
            except Exception:  # noqa: BLE001 - the store went with the job
                return

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._alone = True  # peers may sit in a collective of their own: none on the way out
            if _comm_error(exc):
                self._peer_lost(exc)
            else:
                self.record_crash(exc)
                kv = self._kv()
                if kv is not None and self.rank != 0:  # rank 0 reads it when it notices the loss
                    try:
                        note = self.store.events[-1][2]
                        kv.set(self._store_key(self.rank), json.dumps({**note, "step": self.step}, default=str))
                    except Exception:  # noqa: BLE001 - best effort: the job is going down
                        pass
        self.detach()
        if exc is not None and self._lost:
            where = f"; the record up to step {self.step - 1} is in {self.out}" if self.rank == 0 else ""
            msg = (f"gradwatch: rank {self.rank} of {self.world} lost a peer process at step {self.step} "
                   f"({self._lost}){where}")
            print(msg, file=sys.stderr)
            raise PeerLost(msg) from exc


def watch(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **kwargs: Any) -> DistributedWatcher:
    """Watch one rank of a distributed job (same call on every rank); see :class:`DistributedWatcher`.

    Example:
        >>> # with gradwatch.integrations.distributed.watch(ddp_model, opt, out="runs/ddp") as w: ...
    """
    return DistributedWatcher(model, optimizer, **kwargs)


__all__ = ["DistributedWatcher", "PeerLost", "watch"]
