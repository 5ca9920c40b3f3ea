"""A lasting change of an optimizer's learning rate, one that its LR scheduler keeps.

The guard cuts the rate after a rollback, the update-ratio controller corrects it, the injected
``reduce_lr``/``increase_lr`` remedies set it. Writing ``group["lr"]`` alone is not enough when a
scheduler recomputes the rate from rates of its own every step: ``LambdaLR``/``LinearLR``-style
schedules (warmup, cosine, inverse square root) set ``lr = base_lrs[i] × f(step)``, so the next
``scheduler.step()`` would undo the change and the explosion the guard just cut would come back.
:func:`scale_lr` therefore multiplies every rate that defines the schedule: the group's ``lr``,
``initial_lr`` (what schedulers read their base rates from), ``max_lr``/``min_lr`` (where
``OneCycleLR`` keeps its own), and ``base_lrs``/``max_lrs`` of every scheduler attached to the
optimizer (found through the garbage collector's referrers: a rare event, so the search is cheap
enough). A tensor rate stays a tensor (capturable/fused optimizers).

Example:
    >>> import torch
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    >>> sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)   # e.g. a warmup schedule
    >>> scale_lr(opt, 0.5)
    >>> opt.step(); sched.step()
    >>> opt.param_groups[0]["lr"]     # the scheduler kept the cut
    0.05
"""

from __future__ import annotations

import gc

import torch

#: the rates a param group may hold: the current one and those schedulers build it from
GROUP_RATES = ("lr", "initial_lr", "max_lr", "min_lr")
#: per-group rate lists on schedulers (``CyclicLR`` keeps ``max_lrs`` too)
_SCHEDULER_RATES = ("base_lrs", "max_lrs")


def scale_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Multiply the learning rate of every param group of ``optimizer`` by ``factor``, in place,
    so that the LR schedulers attached to it keep the change.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        factor: e.g. ``0.5`` to halve the rate.

    Example:
        >>> import torch
        >>> opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
        >>> scale_lr(opt, 0.1)
        >>> round(opt.param_groups[0]["lr"], 6)
        0.0001
    """
    for group in optimizer.param_groups:
        for key in GROUP_RATES:
            value = group.get(key)
            if isinstance(value, torch.Tensor):
                value.mul_(factor)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                group[key] = value * factor
    for sched in schedulers_of(optimizer):
        for attr in _SCHEDULER_RATES:
            rates = getattr(sched, attr, None)
            if isinstance(rates, list):
                setattr(sched, attr, [r * factor for r in rates])


def schedulers_of(optimizer: torch.optim.Optimizer) -> list:
    """The ``torch.optim.lr_scheduler`` objects that drive ``optimizer`` (alive now).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> s = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
        >>> schedulers_of(opt) == [s]
        True
    """
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    kinds = (LRScheduler, ReduceLROnPlateau)
    found: dict[int, object] = {}
    for ref in gc.get_referrers(optimizer):
        owners = [ref] if isinstance(ref, kinds) else \
            [o for o in gc.get_referrers(ref) if isinstance(o, kinds)] if isinstance(ref, dict) else []
        for owner in owners:
            if getattr(owner, "optimizer", None) is optimizer:
                found[id(owner)] = owner
    return list(found.values())
