"""Choose a learning rate from the measured update-to-weight ratio, not by hand.

A few steps on a copy of the model are watched; the median ‖Δw‖/‖w‖ over the weight layers
is compared with the target (≈1e-3, the healthy band's centre). For SGD the update is
proportional to the rate, so one correction ``lr × target / ratio`` lands on the target; for
adaptive optimizers the same correction is applied and repeated until the ratio is within
a factor of two (or the rounds run out).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    >>> batches = [(torch.randn(16, 8), torch.randint(0, 2, (16,))) for _ in range(3)]
    >>> lr = calibrate_lr(model, lambda p, lr: torch.optim.SGD(p, lr=lr), batches)
    >>> lr > 0
    True
"""

from __future__ import annotations

import copy
import math
import tempfile
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn


def measured_update_ratio(model: nn.Module, make_optimizer: Callable, lr: float, batches: Sequence,
                          loss_fn: Callable, steps: int = 3) -> float:
    """Median ‖Δw‖/‖w‖ over weight layers and steps when training a copy at ``lr``."""
    from .diagnosis.context import Context
    from .record import load
    from .watcher import watch

    m = copy.deepcopy(model)
    opt = make_optimizer(m.parameters(), lr)
    with tempfile.TemporaryDirectory(prefix="gradwatch-calibrate-") as out:
        with watch(m, opt, out=out, every=1):
            for i in range(steps):
                x, y = batches[i % len(batches)]
                loss = loss_fn(m(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        r = Context(load(out)).update_ratio()
    vals = r.to_numpy(dtype=float).ravel()
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(np.median(vals)) if vals.size else float("nan")


def calibrate_lr(model: nn.Module, make_optimizer: Callable, batches: Sequence,
                 loss_fn: Callable | None = None, target: float = 1e-3, start: float = 1e-2,
                 rounds: int = 4, steps: int = 3) -> float:
    """A learning rate whose steps change the weights by ``target`` of their size.

    Args:
        model: the model (a copy is trained; the model is not modified).
        make_optimizer: ``make_optimizer(params, lr) -> Optimizer``.
        batches: ``(input, target)`` pairs.
        loss_fn: default cross-entropy.
        target: the update/weight ratio to aim for.
        start: the first rate tried.
        rounds: at most this many corrections.
        steps: steps measured per round.

    Raises:
        ValueError: the ratio cannot be measured (no weight changed, or NaN).
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    lr = start
    for _ in range(rounds):
        ratio = measured_update_ratio(model, make_optimizer, lr, batches, loss_fn, steps)
        if not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(
                f"the update/weight ratio at lr={lr:g} could not be measured ({ratio}); "
                "check that the model trains at all (gradients reach the weights)")
        if target / 2 <= ratio <= target * 2:
            break
        lr *= target / ratio
    return float(lr)
