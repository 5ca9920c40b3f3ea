"""Rules: parameters that receive gradients but never change, and models no optimizer trains.

Mechanism: a step changes a weight only if an optimizer holds it and its update is not zero.
Two everyday bugs break that silently while the loss is still computed and backpropagated:
the optimizer was built over another object than the model being called (a copy made before
``optimizer = SGD(copy.parameters())``, a model re-created after the optimizer), or the update
never reaches the weights (a learning rate of 0 in a group; ``p = p - lr * p.grad``, which
rebinds a name instead of changing the tensor). The watcher measures ‖w_after − w_before‖ on
every statistics step, for any optimizer and for hand-written updates, so "never changes" is
exact: the update is 0.0 while the gradient is not.

Example:
    >>> # check(ctx) -> [Finding(kind="parameters_not_updated", layers=["fc.weight"], ...)]
"""

from __future__ import annotations

import numpy as np
import torch

from ..findings import Cause, Finding
from .context import Context
from .prescriptions import prescribe_all


def check(ctx: Context, min_steps: int = 2) -> list[Finding]:
    """Flag parameters whose gradient was non-zero and finite but whose update was exactly zero
    on every one of at least ``min_steps`` statistics steps; and the model itself when an
    optimizer of the script steps only parameters outside it (or nothing reaches the model's)."""
    out: list[Finding] = []
    foreign = _foreign_optimizer(ctx)
    upd = ctx.finite(ctx.run.series("update_norm"))
    grad = ctx.finite(ctx.run.series("grad_norm")).reindex(upd.index)
    frozen = set(ctx.model.get("frozen_params") or [])
    outside = set(ctx.model.get("params_without_optimizer") or [])
    if foreign and _no_gradient_anywhere(ctx):  # the watched module never runs: a copy, trained alone
        names = [c for c in ctx.run.params["name"] if c not in frozen]
        return [_without_optimizer(ctx, names, foreign, steps=0, whole=True)]
    if len(upd) >= min_steps:
        g = grad.to_numpy(dtype=float)
        u = upd.reindex(columns=grad.columns).to_numpy(dtype=float)
        moved = np.isfinite(g) & (g > 0)
        still = [c for j, c in enumerate(grad.columns)
                 if c not in frozen and moved[:, j].sum() >= min_steps
                 and np.all(u[moved[:, j], j] == 0.0)]
        trainable = [c for c in grad.columns if c not in frozen]
        held_still = [c for c in still if c not in outside]
        loose = [c for c in still if c in outside]
        if foreign and still and len(still) == len(trainable):
            out.append(_without_optimizer(ctx, still, foreign, steps=int(upd.index[0]), whole=True))
        elif held_still and _a_fault_not_rounding(ctx, held_still, trainable, outside, upd.index):
            lr0 = _zero_lr(ctx)
            because = ("a param group's learning rate is 0" if lr0 else
                       "no optimizer steps them: the update written by hand does not change the tensors "
                       "(p = p - lr * p.grad rebinds a name; use p -= lr * p.grad under torch.no_grad())"
                       if not ctx.model.get("optimizers") else
                       "the optimizer holds them but leaves them as they are")
            out.append(Finding(
                kind="parameters_not_updated", severity="warning" if len(held_still) < len(trainable) else "critical",
                first_step=int(upd.index[0]), layers=held_still,
                summary=(f"{len(held_still)} parameter tensor(s) get a gradient but never change "
                         f"({', '.join(held_still[:4])}{'…' if len(held_still) > 4 else ''}): {because}"),
                evidence={"parameters": held_still[:20], "statistics_steps": int(len(upd)),
                          "update_norm": 0.0, "measured": "update_norm and grad_norm",
                          "healthy_band": "‖Δw‖/‖w‖ around 1e-3 per step"},
                causes=[Cause("learning_rate_zero" if lr0 else "update_not_applied", because)],
                remedies=prescribe_all(["apply_the_update"], ctx)))
        if loose:
            out.append(_without_optimizer(ctx, loose, foreign, steps=int(upd.index[0]),
                                          whole=len(loose) == len(trainable)))
    return out


def _a_fault_not_rounding(ctx: Context, still: list[str], trainable: list[str], outside: set[str],
                          steps) -> bool:
    """Whether unchanged parameters are a fault of the code rather than updates too small to be
    represented. A step below half the float spacing of a weight rounds away — a gradient that
    vanished, a rate far too small: their own rules speak of those. So: part of the model left
    unchanged counts only where a param group's rate is 0; all of it, only where the largest
    entry's plain gradient step lr·max|g| would exceed the spacing of the weights (ε·‖w‖ bounds
    the spacing of every entry) — or where no optimizer makes the steps (no rate to judge by)."""
    held = [c for c in trainable if c not in outside]
    if len(still) < len(held):
        return _zero_lr(ctx)
    rates = [x for v in ctx.steps["lr"].dropna().tail(1) for x in (v if isinstance(v, list) else [])] \
        if "lr" in ctx.steps else []
    if not ctx.model.get("optimizers") or not rates:
        return True
    gmax = ctx.run.series("grad_max").reindex(index=steps, columns=still).to_numpy(dtype=float)
    wnorm = ctx.run.series("weight_norm").reindex(index=steps, columns=still).to_numpy(dtype=float)
    dtypes = dict(zip(ctx.run.params["name"], ctx.run.params["dtype"]))
    eps = np.array([_eps(dtypes.get(c, "float32")) for c in still])
    with np.errstate(invalid="ignore"):
        visible = max(rates) * gmax > eps[None, :] * wnorm
    return bool(np.nanmax(visible, initial=False))


def _eps(dtype: str) -> float:
    try:
        return float(torch.finfo(getattr(torch, dtype)).eps)
    except (AttributeError, TypeError):
        return float(np.finfo(np.float32).eps)


def _without_optimizer(ctx: Context, names: list[str], foreign: dict | None, steps: int, whole: bool) -> Finding:
    modules = sorted({m for n, m in zip(ctx.run.params["name"], ctx.run.params["module"]) if n in set(names)})
    if foreign:
        because = (f"{foreign.get('reason', 'an optimizer steps other parameters')}; an optimizer built over a "
                   "copy of the model, or a model re-created after its optimizer, trains nothing that runs")
    else:
        because = "they require grad and get gradients, but none of the optimizers holds them"
    return Finding(
        kind="modules_without_optimizer", severity="critical" if whole else "info",
        first_step=steps, layers=modules,
        summary=(("the model being called is trained by no optimizer: " if whole else
                  f"{len(names)} parameter tensor(s) of {len(modules)} module(s) get gradients but no optimizer "
                  "holds them: ") + because),
        evidence={"parameters": names[:20], "modules": modules[:20],
                  "foreign_optimizer": foreign or None, "measured": "update_norm, optimizer membership",
                  "healthy_band": "every trained parameter held by an optimizer"},
        causes=[Cause("optimizer_over_other_module" if foreign else "parameters_outside_optimizer", because)],
        remedies=prescribe_all(["optimize_the_model_called"], ctx))


def _foreign_optimizer(ctx: Context) -> dict | None:
    ev = ctx.run.events
    if ev is None or len(ev) == 0:
        return None
    rows = ev[ev["kind"] == "foreign_optimizer"]
    return dict(rows["detail"].iloc[0]) if len(rows) else None


def _zero_lr(ctx: Context) -> bool:
    lr = ctx.steps["lr"] if "lr" in ctx.steps else None
    if lr is None or not len(lr):
        return False
    return any(isinstance(v, list) and any(x == 0 for x in v) for v in lr.tail(3))


def _no_gradient_anywhere(ctx: Context) -> bool:
    g = ctx.run.series("grad_nonfinite")
    return len(g) > 0 and not g.notna().to_numpy().any()
