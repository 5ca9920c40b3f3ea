"""Learning-rate schedules as plain ``step -> factor`` functions, with a ``LambdaLR`` adapter.

The factor multiplies each group's base rate; ``step`` is the number of optimizer steps done
(``LambdaLR`` evaluates the factor at 0 when it is built, and at k after k ``sched.step()``
calls). Warmup reaches 1 at ``step = warmup − 1``, so no step runs at rate 0.

    linear_warmup(w)                 (s+1)/w up to 1                       (Goyal et al. 2017)
    warmup_cosine(w, T, m)           then m + (1−m)·½(1 + cos(π·t)), t = (s+1−w)/(T−w)  (Loshchilov & Hutter 2017)
    warmup_linear_decay(w, T, m)     then linearly from 1 down to m at step T−1
    warmup_inverse_sqrt(w)           then √(w/(s+1))                        (Vaswani et al. 2017)

Example:
    >>> f = warmup_cosine(warmup=10, total=110)
    >>> f(0), f(9), round(f(59), 3), f(109), f(500)
    (0.1, 1.0, 0.5, 0.0, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Schedule = Callable[[int], float]


def _check(warmup: int, total: int | None = None, min_factor: float = 0.0) -> None:
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, got {warmup}")
    if total is not None and total <= warmup:
        raise ValueError(f"total ({total}) must be larger than warmup ({warmup}): it counts all steps, warmup included")
    if not 0.0 <= min_factor <= 1.0:
        raise ValueError(f"min_factor must be in [0, 1], got {min_factor}")


def _ramp(step: int, warmup: int) -> float:
    return 1.0 if warmup <= 0 else min(1.0, (step + 1) / warmup)


@dataclass(frozen=True)
class linear_warmup:
    """Factor (step+1)/warmup, then 1 (Goyal et al. 2017, "Accurate, Large Minibatch SGD").

    Example:
        >>> [linear_warmup(4)(s) for s in range(6)]
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """

    warmup: int

    def __post_init__(self) -> None:
        _check(self.warmup)

    def __call__(self, step: int) -> float:
        return _ramp(step, self.warmup)


@dataclass(frozen=True)
class warmup_cosine:
    """Linear warmup, then a half cosine from 1 to ``min_factor`` at ``total − 1``, then flat
    (SGDR without restarts: Loshchilov & Hutter 2017).

    Example:
        >>> f = warmup_cosine(0, 101, 0.1); f(0), round(f(50), 3), round(f(100), 3)
        (1.0, 0.55, 0.1)
    """

    warmup: int
    total: int
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        _check(self.warmup, self.total, self.min_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return _ramp(step, self.warmup)
        t = min(1.0, (step - max(self.warmup - 1, 0)) / (self.total - max(self.warmup, 1)))
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class warmup_linear_decay:
    """Linear warmup, then a straight line from 1 to ``min_factor`` at ``total − 1``, then flat.

    Example:
        >>> f = warmup_linear_decay(0, 11); f(0), f(5), f(10)
        (1.0, 0.5, 0.0)
    """

    warmup: int
    total: int
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        _check(self.warmup, self.total, self.min_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return _ramp(step, self.warmup)
        t = min(1.0, (step - max(self.warmup - 1, 0)) / (self.total - max(self.warmup, 1)))
        return 1.0 - (1.0 - self.min_factor) * t


@dataclass(frozen=True)
class warmup_inverse_sqrt:
    """Linear warmup, then √(warmup/(step+1)) — the Transformer's schedule (Vaswani et al.
    2017), continuous at the peak.

    Example:
        >>> f = warmup_inverse_sqrt(4); f(1), f(3), f(15)
        (0.5, 1.0, 0.5)
    """

    warmup: int

    def __post_init__(self) -> None:
        if self.warmup < 1:
            raise ValueError(f"warmup_inverse_sqrt needs warmup >= 1, got {self.warmup}")

    def __call__(self, step: int) -> float:
        return min((step + 1) / self.warmup, math.sqrt(self.warmup / (step + 1)))


def to_lambda_lr(optimizer: torch.optim.Optimizer, fn: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that sets every group's rate to its base rate times ``fn(step)``.
    Call ``sched.step()`` after every ``optimizer.step()``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> sched = to_lambda_lr(opt, linear_warmup(2))
        >>> round(opt.param_groups[0]["lr"], 6)
        0.05
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function step -> factor, got {type(fn).__name__}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


from .range_test import RangeTestResult, lr_range_test  # noqa: E402,F401
