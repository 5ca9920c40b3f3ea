"""What one rank of a distributed job keeps of the others: the store stand-in of ranks other
than 0, the guard whose verdict all ranks agree on, a sharded parameter seen through its local
shard, and how a lost peer shows itself.

Example:
    >>> _comm_error(RuntimeError("Connection closed by peer [127.0.0.1]:1234"))
    True
    >>> _comm_error(ValueError("bad batch"))
    False
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..guard import Guard

#: events every rank records identically: rank 0's copy is enough
_SAME_ON_EVERY_RANK = {"guard_skip", "guard_rollback", "amp_skip", "compiled"}
_COMM = re.compile(r"gloo|nccl|connection (closed|reset|refused)|broken pipe|timed? ?out|peer", re.I)


class PeerLost(RuntimeError):
    """A process of the distributed job stopped; this one cannot go on without it."""


class _PeerStore:
    """What ranks other than 0 have instead of a store: events are kept for rank 0, the rest
    is not written (rank 0 writes the merged record)."""

    def __init__(self, out, precision: str = "bfloat16", **modes) -> None:
        self.dir = Path(out)
        self.precision = precision
        self.last_step = None
        self.continued = False
        self.events: list[tuple[Any, str, dict]] = []

    def event(self, step, kind, detail=None) -> None:
        self.events.append((step, kind, dict(detail or {})))

    def set_meta(self, **values) -> None: ...
    def restart(self, start, **detail) -> dict: return {}
    def write_layout(self, params, modules) -> None: ...
    def write_batch(self, steps, series, calls=()) -> None: ...
    def flush(self, timeout=None) -> None: ...
    def close(self) -> None: ...


class _AgreedGuard(Guard):
    """A guard whose verdict on each step is all-reduced: bad on any rank is bad on all, and the
    skip event says which ranks saw what."""

    group: Any = None
    verdicts: dict[int, str] = {}

    def is_bad(self, norm: float) -> bool:
        rank, world = dist.get_rank(), dist.get_world_size()
        flags = torch.zeros(world)  # per rank: 0 good, 1 spike, 2 non-finite
        if super().is_bad(norm):
            flags[rank] = 2.0 if not math.isfinite(norm) else 1.0
        dist.all_reduce(flags, group=self.group)
        self.verdicts = {r: ("non-finite gradient" if f == 2 else "gradient spike")
                         for r, f in enumerate(flags.tolist()) if f}
        return bool(self.verdicts)

    def before_step(self, step, norm, params, optimizers, record) -> None:
        def agreed(kind: str, detail: dict) -> None:
            if kind == "guard_skip":
                detail = {**detail, "reason": "; ".join(f"{why} on rank {r}" for r, why in self.verdicts.items()),
                          "ranks": sorted(self.verdicts)}
            record(kind, detail)

        super().before_step(step, norm, params, optimizers, agreed)


class _Shard:
    """A DTensor parameter seen through this rank's local shard (global shape and name kept)."""

    def __init__(self, p: torch.Tensor) -> None:
        self.p, self.shape, self.dtype, self.device, self.is_meta = p, p.shape, p.dtype, p.device, False

    @property
    def grad(self):
        g = self.p.grad
        return None if g is None else (g.to_local() if hasattr(g, "to_local") else g)

    def detach(self):
        d = self.p.detach()
        return d.to_local() if hasattr(d, "to_local") else d

    def dim(self) -> int:
        return self.p.dim()

    def is_complex(self) -> bool:
        return self.p.is_complex()

    def numel(self) -> int:
        return self.p.numel()


def _comm_error(exc: BaseException) -> bool:
    err = getattr(dist, "DistError", ())
    return isinstance(exc, PeerLost) or (err and isinstance(exc, err)) or \
        (isinstance(exc, RuntimeError) and bool(_COMM.search(str(exc))))


__all__ = ["PeerLost"]
