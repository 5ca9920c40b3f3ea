"""Optimizer remedies: another optimizer with a sensible rate, and weight decay.

Adam (Kingma & Ba 2015) and RMSprop (Tieleman & Hinton 2012) divide each parameter's step by
the root of its running squared gradient, so a layer whose gradient has vanished by orders of
magnitude still moves at about the rate set — the cheapest remedy for badly scaled layers,
though it hides rather than fixes the flow. Their useful rates are far below SGD's: a swap
takes each optimizer's usual default, keeping the ratios between groups. Weight decay keeps
weights from growing (with Adam, the decoupled form of AdamW is the better one: Loshchilov &
Hutter 2019).

Example:
    >>> import torch
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    >>> opt = swap_optimizer(opt, model, "adam")
    >>> type(opt).__name__, opt.param_groups[0]["lr"]
    ('Adam', 0.001)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

OPTIMIZERS: dict[str, tuple[type, dict]] = {
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3}),
    "sgd": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
    "adagrad": (torch.optim.Adagrad, {"lr": 1e-2}),
}


def swap_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module | None = None, name: str = "adam",
                   lr: float | None = None, **kwargs) -> torch.optim.Optimizer:
    """A new optimizer of another kind over the same parameter groups.

    Args:
        optimizer: the current optimizer (left as it is; its state is not carried over).
        model: when given, its parameters the optimizer does not hold yet (added by a rewrite:
            a new norm layer, ReZero's α) join a group of their own.
        name: ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"sgd"`` or ``"adagrad"``.
        lr: the rate of the first group (default: the new optimizer's usual rate, see
            :data:`OPTIMIZERS`); other groups keep their ratio to the first.
        **kwargs: other hyperparameters of the new optimizer (betas, momentum…).

    Returns:
        The new optimizer. Re-create any LR scheduler on it.

    Raises:
        ValueError: an unknown name.

    Example:
        >>> lin = torch.nn.Linear(2, 2)
        >>> opt = torch.optim.SGD([{"params": [lin.weight], "lr": 0.1}, {"params": [lin.bias], "lr": 0.01}])
        >>> new = swap_optimizer(opt, name="adamw"); type(new).__name__, [g["lr"] for g in new.param_groups]
        ('AdamW', [0.001, 0.0001])
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[name]
    hyper = {**defaults, **kwargs}
    base = float(lr if lr is not None else hyper["lr"])
    first = float(optimizer.param_groups[0]["lr"]) or 1.0
    groups = []
    for g in optimizer.param_groups:
        group = {"params": list(g["params"]), "lr": base * float(g["lr"]) / first}
        if g.get("weight_decay"):
            group["weight_decay"] = g["weight_decay"]
        groups.append(group)
    if model is not None:
        held = {id(p) for g in groups for p in g["params"]}
        extra = [p for p in model.parameters() if p.requires_grad and id(p) not in held]
        if extra:
            groups.append({"params": extra, "lr": base})
    hyper["lr"] = base
    return cls(groups, **hyper)


def _split_1d(optimizer: torch.optim.Optimizer) -> None:
    """Move vectors and scalars (biases, norm gains, ReZero's α) into groups of their own."""
    new_groups = []
    for g in optimizer.param_groups:
        flat = [p for p in g["params"] if p.dim() < 2]
        if flat and len(flat) < len(g["params"]):
            g["params"] = [p for p in g["params"] if p.dim() >= 2]
            new_groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": flat, "weight_decay": 0.0,
                               "no_decay": True})
        elif flat:
            g["no_decay"], g["weight_decay"] = True, 0.0
    optimizer.param_groups.extend(new_groups)


def with_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float = 1e-4, skip_1d: bool = False,
                      inplace: bool = True) -> torch.optim.Optimizer:
    """Set L2 weight decay on every parameter group.

    Args:
        optimizer: the optimizer.
        weight_decay: the coefficient. For SGD and Adam it is the L2 penalty added to the
            gradient; for AdamW the decoupled decay (Loshchilov & Hutter 2019).
        skip_1d: no decay on vectors and scalars (biases, norm gains), in groups of their own.
        inplace: False leaves ``optimizer`` alone and returns a new one of the same class over
            the same parameters, with a copy of its state.

    Returns:
        The optimizer with decay set.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> with_weight_decay(opt, 1e-3, skip_1d=True).param_groups[1]["weight_decay"]
        0.0
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not inplace:
        fresh = type(optimizer)([{**g, "params": list(g["params"])} for g in optimizer.param_groups],
                                **optimizer.defaults)
        fresh.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        optimizer = fresh
    for g in optimizer.param_groups:
        g["weight_decay"] = 0.0 if g.get("no_decay") else float(weight_decay)
    if skip_1d:
        _split_1d(optimizer)
    return optimizer
