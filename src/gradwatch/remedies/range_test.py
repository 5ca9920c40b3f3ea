"""The learning-rate range test: raise the rate exponentially over a short run, watch the loss.

Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (§3.3): train for a few
hundred steps while the rate grows from tiny to huge; the loss first stays flat (rate too
small), then falls (useful rates), then blows up (too large). A good rate sits where the
smoothed loss falls fastest — or, more conservatively, a tenth of the rate at the minimum
loss. The test runs on a deep copy: the user's model is never touched.

Example:
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> X = torch.randn(256, 5); y = X @ torch.randn(5, 1)
    >>> model = torch.nn.Linear(5, 1)
    >>> res = lr_range_test(model, lambda p: torch.optim.SGD(p, lr=1.0), [(X, y)],
    ...                     torch.nn.functional.mse_loss, steps=60)
    >>> 1e-3 < res.suggestion < 1.0
    True
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn


@dataclass
class RangeTestResult:
    """Loss against learning rate from :func:`lr_range_test`, and the rate it suggests.

    Attributes:
        lrs: the rate at each step.
        losses: the raw loss at each step.
        smoothed: the bias-corrected exponential moving average of the loss.
        suggestion: the suggested rate.
        method: ``"steepest"`` (fastest fall of the smoothed loss) or ``"min/10"``.
        diverged: whether the test stopped early because the loss blew up.

    Example:
        >>> r = RangeTestResult([1e-3, 1e-2], [1.0, 0.5], [1.0, 0.7], 1e-2, "steepest", False)
        >>> r.suggestion, r.method, r.notes
        (0.01, 'steepest', [])
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    method: str
    diverged: bool
    notes: list[str] = field(default_factory=list)

    def plot(self, path: str | None = None):
        """Draw loss against rate (log axis) with the suggestion marked; save it to ``path`` when
        given. Returns the matplotlib figure."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, color="0.75", lw=1, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2, label="smoothed")
        ax.axvline(self.suggestion, color="C3", ls="--", label=f"suggestion {self.suggestion:.2g} ({self.method})")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("learning-rate range test (Smith 2017)")
        ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


def _suggest(lrs: list[float], smoothed: list[float], method: str) -> tuple[float, str]:
    n = len(lrs)
    best = min(range(n), key=lambda i: smoothed[i])
    if method == "steepest" and best >= 4:
        # the steepest fall of the smoothed loss against log lr, before its minimum; the first
        # tenth is skipped, where the moving average is still settling
        start = max(1, n // 10)
        slopes = [(smoothed[i + 1] - smoothed[i - 1]) / math.log(lrs[i + 1] / lrs[i - 1])
                  for i in range(start, best)]
        if slopes:
            i = start + min(range(len(slopes)), key=slopes.__getitem__)
            if slopes[i - start] < 0:
                return lrs[i], "steepest"
    return lrs[best] / 10.0, "min/10"


def lr_range_test(model: nn.Module, optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                  batches: Sequence[Any] | Iterable[Any], loss_fn: Callable[[Any, Any], torch.Tensor],
                  start: float = 1e-7, end: float = 10.0, steps: int = 100, smooth: float = 0.98,
                  diverge: float = 4.0, method: str = "steepest") -> RangeTestResult:
    """Run Smith's range test on a copy of ``model`` and suggest a learning rate.

    Args:
        model: the model (deep-copied; the original is not modified).
        optimizer_factory: ``params -> optimizer``; its rate is overwritten each step.
        batches: ``(input, target)`` pairs, cycled if fewer than ``steps``.
        loss_fn: ``loss_fn(output, target) -> scalar``.
        start, end: the first and last rate (exponential sweep).
        steps: number of training steps.
        smooth: the EMA factor for the smoothed loss.
        diverge: stop when the smoothed loss exceeds ``diverge`` × its minimum (or is not finite).
        method: ``"steepest"`` (default) or ``"min/10"``.

    Returns:
        A :class:`RangeTestResult` with ``.suggestion``, ``.lrs``, ``.losses`` and ``.plot()``.

    Raises:
        ValueError: bad rates, steps or method, or no batches.

    Example:
        >>> batches = [(torch.ones(4, 2), torch.zeros(4, 1))]
        >>> res = lr_range_test(nn.Linear(2, 1), lambda p: torch.optim.SGD(p, lr=0.1), batches,
        ...                     torch.nn.functional.mse_loss, end=0.1, steps=10)
        >>> len(res.lrs), res.lrs[0], round(res.lrs[-1], 6), res.diverged
        (10, 1e-07, 0.1, False)
    """
    if not 0 < start < end:
        raise ValueError(f"need 0 < start < end, got start={start}, end={end}")
    if steps < 5:
        raise ValueError(f"the range test needs at least 5 steps, got {steps}")
    if method not in ("steepest", "min/10"):
        raise ValueError(f"method must be 'steepest' or 'min/10', got {method!r}")
    work = copy.deepcopy(model)
    work.train()
    opt = optimizer_factory(work.parameters())
    # a loader is read only as far as the test needs; a short sequence is cycled
    cached = batches if isinstance(batches, Sequence) else list(itertools.islice(batches, steps))
    if len(cached) == 0:
        raise ValueError("lr_range_test needs at least one (input, target) batch")
    ratio = (end / start) ** (1.0 / (steps - 1))
    lrs, losses, smoothed = [], [], []
    avg, best, diverged = 0.0, math.inf, False
    for i, (x, y) in zip(range(steps), itertools.cycle(cached)):
        lr = start * ratio ** i
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_fn(work(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        avg = smooth * avg + (1 - smooth) * value
        s = avg / (1 - smooth ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(s)
        best = min(best, s)
        if not math.isfinite(s) or s > diverge * best:
            diverged = True
            break
    finite = [i for i, s in enumerate(smoothed) if math.isfinite(s)]
    notes = []
    if len(finite) < 5:
        notes.append("the loss diverged almost at once: lower `start`")
        return RangeTestResult(lrs, losses, smoothed, start, "start", diverged, notes)
    keep = finite[-1] + 1
    suggestion, how = _suggest(lrs[:keep], smoothed[:keep], method)
    return RangeTestResult(lrs, losses, smoothed, suggestion, how, diverged, notes)
