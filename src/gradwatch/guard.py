"""The guard: a run survives an explosion instead of ending in it.

Before each optimizer step the guard reads the global gradient norm the watcher has just
measured. A non-finite norm, or one ``spike_factor`` times above the upper range of the recent
finite norms (their ``quantile``, the 95th percentile by default), makes the step a *skip*:
parameters and optimizer state are put back exactly as they were after ``optimizer.step()`` ran.
After ``max_bad`` skips in a row the model and the optimizer are restored to the last good
snapshot (taken every ``snapshot_every`` good steps, kept in memory, one at a time) and every
learning rate is multiplied by ``lr_factor``. Each action is recorded as an event in the run
store and shown in the report.

Why the upper range and not the median: near convergence the gradient norm is heavy-tailed —
most batches give almost nothing, a few hard ones give 100× more, as they did all along. Those
are the run working, and measured against the median they look like explosions (a healthy
embedding classifier had 50 steps skipped and its learning rate halved 5 times that way). An
explosion leaves the whole recent range behind and keeps growing, so it is caught all the same:
growing ×3 per step it is skipped by its third step, since a quantile below 1 cannot be ratcheted
up by one accepted value (the maximum could, 10× at a time).

The decision needs the norm on the host: one sync per step (never per parameter). Snapshots
cost one copy of the weights and optimizer state every ``snapshot_every`` steps.

Example:
    >>> # with gw.watch(model, opt, guard=True): ...      # or: gradwatch run --guard train.py
    >>> g = Guard(spike_factor=10.0)
    >>> g.is_bad(float("nan")), g.is_bad(1.0)
    (True, False)
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

import torch

from .lr_scale import GROUP_RATES, scale_lr


@dataclass
class _Snapshot:
    step: int
    params: list[torch.Tensor]
    optim: list[dict]


class Guard:
    """Skips exploding or non-finite steps and rolls back after repeated failures.

    Args:
        spike_factor: a gradient norm this many times the recent ``quantile`` is an explosion.
        history: how many recent finite norms the quantile is taken over.
        min_history: norms needed before spikes are judged (non-finite is judged always).
        max_bad: consecutive skipped steps that trigger a rollback.
        snapshot_every: good steps between in-memory snapshots of model and optimizer.
        lr_factor: learning-rate multiplier applied at each rollback.
        quantile: which quantile of the recent norms is their "usual" upper range.

    Example:
        >>> g = Guard(min_history=3)
        >>> for norm in (1.0, 0.9, 1.2, 1.1):
        ...     g.norms.append(norm)
        >>> g.is_bad(3.0), g.is_bad(50.0), g.is_bad(float("nan"))
        (False, True, True)
    """

    def __init__(self, spike_factor: float = 10.0, history: int = 50, min_history: int = 10,
                 max_bad: int = 3, snapshot_every: int = 100, lr_factor: float = 0.5,
                 quantile: float = 0.95) -> None:
        if spike_factor <= 1 or not 0 < lr_factor <= 1 or max_bad < 1 or snapshot_every < 1 \
                or not 0 < quantile <= 1:
            raise ValueError("guard needs spike_factor > 1, 0 < lr_factor ≤ 1, max_bad ≥ 1, snapshot_every ≥ 1, "
                             "0 < quantile ≤ 1")
        self.spike_factor = spike_factor
        self.quantile = quantile
        self.norms: deque[float] = deque(maxlen=history)
        self.min_history = min_history
        self.max_bad = max_bad
        self.snapshot_every = snapshot_every
        self.lr_factor = lr_factor
        self.bad_in_a_row = 0
        self.good_steps = 0
        self.skips = 0
        self.rollbacks = 0
        self._snapshot: _Snapshot | None = None
        self._pending_skip: _Snapshot | None = None

    def is_bad(self, norm: float) -> bool:
        """Whether a step with this global gradient norm must not be applied."""
        if not math.isfinite(norm):
            return True
        if len(self.norms) >= self.min_history:
            usual = self.usual()
            return usual > 0 and norm > self.spike_factor * usual
        return False

    def usual(self) -> float:
        """The upper range of the recent finite norms (their ``quantile``); NaN without history."""
        if not self.norms:
            return float("nan")
        ordered = sorted(self.norms)
        return ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]

    # ------------------------------------------------------------ the watcher calls these
    def before_step(self, step: int, norm: float, params: list[torch.Tensor],
                    optimizers: list[torch.optim.Optimizer], record: Callable[[str, dict], None]) -> None:
        """Decide on this step; when it is bad, keep what is needed to undo it."""
        if self._snapshot is None:
            self._snapshot = self._take(step, params, optimizers)
        if self.is_bad(norm):
            self._pending_skip = self._take(step, params, optimizers)
            record("guard_skip", {"step": step, "grad_norm": norm, "recent_usual": self.usual(),
                                  "reason": "non-finite gradient" if not math.isfinite(norm) else "gradient spike"})
        else:
            self.norms.append(norm)

    def after_step(self, step: int, params: list[torch.Tensor], optimizers: list[torch.optim.Optimizer],
                   record: Callable[[str, dict], None]) -> None:
        """Undo a bad step; roll back after ``max_bad`` in a row; snapshot good progress."""
        if self._pending_skip is not None:
            self._restore(self._pending_skip, params, optimizers)
            self._pending_skip = None
            self.skips += 1
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= self.max_bad and self._snapshot is not None:
                self._restore(self._snapshot, params, optimizers)
                for opt in optimizers:
                    scale_lr(opt, self.lr_factor)
                self.rollbacks += 1
                self.bad_in_a_row = 0
                record("guard_rollback", {"step": step, "to_step": self._snapshot.step, "lr_factor": self.lr_factor})
            return
        self.bad_in_a_row = 0
        self.good_steps += 1
        if self.good_steps % self.snapshot_every == 0:
            self._snapshot = self._take(step + 1, params, optimizers)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The guard's history as plain data and tensors (for a checkpoint): the recent norms, the
        counters and the last good snapshot, so a resumed run judges spikes and rolls back as the
        uninterrupted one would.

        Example:
            >>> g = Guard(); g.norms.extend([1.0, 2.0]); g.skips = 1
            >>> h = Guard(); h.load_state_dict(g.state_dict()); list(h.norms), h.skips
            ([1.0, 2.0], 1)
        """
        snap = self._snapshot
        return {"norms": list(self.norms), "bad_in_a_row": self.bad_in_a_row, "good_steps": self.good_steps,
                "skips": self.skips, "rollbacks": self.rollbacks,
                "snapshot": None if snap is None else {"step": snap.step, "params": [p.clone() for p in snap.params],
                                                       "optim": _clone_tree(snap.optim)}}

    def load_state_dict(self, state: dict) -> None:
        """Carry on from :meth:`state_dict` (the thresholds stay this guard's own)."""
        self.norms.clear()
        self.norms.extend(float(x) for x in state.get("norms", ()))
        for k in ("bad_in_a_row", "good_steps", "skips", "rollbacks"):
            setattr(self, k, int(state.get(k, 0)))
        snap = state.get("snapshot")
        self._snapshot = None if snap is None else _Snapshot(int(snap["step"]), list(snap["params"]),
                                                             list(snap["optim"]))

    @staticmethod
    @torch.no_grad()
    def _take(step: int, params: list[torch.Tensor], optimizers) -> _Snapshot:
        return _Snapshot(step, [p.detach().clone() for p in params],
                         [_clone_tree(o.state_dict()) for o in optimizers])

    @staticmethod
    @torch.no_grad()
    def _restore(snap: _Snapshot, params, optimizers) -> None:
        for p, saved in zip(params, snap.params):
            p.copy_(saved)
        for o, state in zip(optimizers, snap.optim):
            # the rates are the guard's to keep (cuts made since the snapshot), not the snapshot's
            rates = [{k: g[k] for k in GROUP_RATES if k in g} for g in o.param_groups]
            o.load_state_dict(_clone_tree(state))  # load_state_dict may adopt the tensors: keep ours
            for g, r in zip(o.param_groups, rates):
                g.update(r)


def _clone_tree(obj):
    """A copy of an optimizer ``state_dict`` whose tensors are fresh clones: what ``copy.deepcopy``
    gives, ~10× faster on thousands of state tensors (deepcopy goes through each tensor's
    ``__deepcopy__`` and its memo; a 2000-tensor Adam state took 0.78 s against 0.06 s).

    Example:
        >>> import torch
        >>> t = torch.ones(2)
        >>> c = _clone_tree({"state": {0: {"exp_avg": t, "step": 3}}, "param_groups": [{"lr": 0.1}]})
        >>> c["state"][0]["exp_avg"] is t, torch.equal(c["state"][0]["exp_avg"], t)
        (False, True)
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone_tree(v) for v in obj)
    return copy.deepcopy(obj)
