"""Which steps get the slow statistics: every ``every`` steps at first, then as often as an
overhead budget allows.

The per-step statistics (gradient norms, loss, learning rate) are one read of the gradients; the
slow ones (δ at every module output, activation statistics, weight norms, identical units, the
optimizer's update) cost about one to three ordinary steps on a CPU, so at a fixed ``every=10``
they alone add 10–30 % to a run. The schedule therefore measures what they cost: each
statistics step's duration relative to the median of the ordinary steps just before it (a
ratio, so a machine that slows down for a while slows both alike), and the median of the last
five such ratios (once there are statistics steps the budget placed, of those alone: one that
comes after hundreds of ordinary steps finds colder caches than those of the dense start).
After the first ``dense`` statistics steps at the fixed spacing (the start of a run, where most
pathologies show and where short runs live), each next statistics step is placed so that the
extra time stays within ``budget`` of the training time::

    extra = median(statistics step / ordinary step) − 1
    gap = ceil(extra / budget),  clamped to [every, max_gap]

A statistics step that costs two ordinary steps extra, under the watcher's default 0.5 % budget,
comes every 400 steps. ``budget=None`` keeps the fixed spacing for the whole run (and in
distributed runs, where every rank must pick the same steps). Steps can also be forced (the
guard looks closely for a while after a skipped step).

Example:
    >>> s = StatsSchedule(every=10, budget=None)
    >>> steps = []
    >>> for t in range(35):
    ...     if s.is_stats(t): steps.append(t)
    ...     s.observe(t, 0.03 if s.is_stats(t) else 0.01)
    >>> steps
    [0, 10, 20, 30]
"""

from __future__ import annotations

import math
import statistics
from collections import deque


class StatsSchedule:
    """Decides, step by step, whether a step gets the slow statistics.

    Args:
        every: steps between statistics steps at the start of a run (and for the whole run when
            ``budget`` is None).
        first: the first statistics step (a negative value shifts the phase, as a fixed
            schedule ``(step - first) % every == 0`` would).
        budget: the fraction of training time the slow statistics may add once the first
            ``dense`` statistics steps are done, e.g. ``0.01``; None for a fixed spacing.
        dense: statistics steps at the fixed spacing before the budget governs.
        max_gap: the widest spacing the budget may choose (default ``100 × every``).

    Example:
        >>> s = StatsSchedule(every=5, budget=0.01, dense=1)
        >>> for t in range(40):
        ...     stat = s.is_stats(t)
        ...     s.observe(t, 0.03 if stat else 0.01)   # a statistics step costs 2 extra steps
        >>> s.next_stats   # 0 (dense), 5 (no ordinary step timed before it), then 2 / 0.01 later
        205
    """

    def __init__(self, every: int, first: int = 0, budget: float | None = 0.01, dense: int = 10,
                 max_gap: int | None = None) -> None:
        if budget is not None and not (isinstance(budget, (int, float)) and 0 < budget <= 1):
            raise ValueError(f"stats_budget must be a fraction in (0, 1] (e.g. 0.01 for 1 %) or None for a "
                             f"fixed spacing, got {budget!r}")
        self.every = every
        self.budget = budget
        self.dense = dense
        self.max_gap = max_gap or 100 * every
        first = int(first)
        self.next_stats = first if first >= 0 else first + math.ceil(-first / every) * every
        self.done = 0  # scheduled statistics steps taken so far
        self.forced: set[int] = set()
        self._ordinary: deque[float] = deque(maxlen=32)  # seconds of recent ordinary steps
        self._extra: deque[float] = deque(maxlen=5)  # statistics step / ordinary step − 1
        # the same, of the statistics steps the budget placed: after hundreds of ordinary steps a
        # statistics step finds colder caches than in the dense start (~2x the cost on a CPU)
        self._extra_sparse: deque[float] = deque(maxlen=5)

    def is_stats(self, step: int) -> bool:
        """Whether ``step`` gets the slow statistics."""
        return step == self.next_stats or step in self.forced

    def force(self, steps) -> None:
        """Give these steps the slow statistics too (e.g. ``range(s, s + 50)``)."""
        self.forced.update(steps)

    def observe(self, step: int, seconds: float) -> None:
        """Tell the schedule that ``step`` ended after ``seconds``; plans the next statistics step."""
        forced = step in self.forced
        self.forced.discard(step)
        if step != self.next_stats:
            if seconds > 0 and not forced:
                self._ordinary.append(seconds)
            return
        self.done += 1
        if seconds > 0 and len(self._ordinary) >= 3:
            extra = seconds / statistics.median(self._ordinary) - 1
            (self._extra_sparse if self.done > self.dense else self._extra).append(extra)
        self.next_stats = step + self._gap()

    def _gap(self) -> int:
        if self.budget is None or self.done < self.dense or not (self._extra or self._extra_sparse):
            return self.every
        extra = statistics.median(self._extra_sparse or self._extra)
        if extra <= 0:  # the statistics cost nothing measurable
            return self.every
        return int(min(self.max_gap, max(self.every, math.ceil(round(extra / self.budget, 6)))))

    def state_dict(self) -> dict:
        """The schedule's state as plain data (for a checkpoint): where the next statistics step
        is, how many were taken, the forced steps and the measured costs.

        Example:
            >>> s = StatsSchedule(every=10, budget=0.01)
            >>> t = StatsSchedule(every=10, budget=0.01); t.load_state_dict(s.state_dict())
            >>> t.next_stats == s.next_stats and t.done == s.done
            True
        """
        return {"next_stats": self.next_stats, "done": self.done, "forced": sorted(self.forced),
                "ordinary": list(self._ordinary), "extra": list(self._extra),
                "extra_sparse": list(self._extra_sparse)}

    def load_state_dict(self, state: dict) -> None:
        """Carry on from :meth:`state_dict` (the spacing and budget stay this schedule's own)."""
        self.next_stats = int(state["next_stats"])
        self.done = int(state["done"])
        self.forced = set(int(s) for s in state.get("forced", ()))
        self._ordinary.extend(float(x) for x in state.get("ordinary", ()))
        self._extra.extend(float(x) for x in state.get("extra", ()))
        self._extra_sparse.extend(float(x) for x in state.get("extra_sparse", ()))
