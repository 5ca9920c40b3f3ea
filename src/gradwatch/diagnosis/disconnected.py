"""Rule: disconnected layers — parameters the optimizer holds that never receive a gradient,
although their module runs in the forward pass.

Mechanism: autograd only reaches what the loss's graph reaches. A ``.detach()``, a
``torch.no_grad()`` block, ``.data`` or a NumPy round trip inside the model cuts the graph: every
layer before the cut keeps ``.grad`` at None, the optimizer skips it, and the loss still falls
through the layers after the cut, so nothing looks wrong. The watcher records "no gradient"
apart from a zero one (``grad_nonfinite`` is NaN only where ``.grad`` is None) and which modules
ran (``calls``), so the cut is named exactly: the layers that ran without a gradient, and the
first module after them, in the forward order, that has one.

Example:
    >>> # check(ctx) -> [Finding(kind="disconnected_layers", layers=["encoder.0"], ...)]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..findings import Finding
from .context import Context
from .prescriptions import prescribe_all


def check(ctx: Context, min_steps: int = 2) -> list[Finding]:
    """Flag trainable parameters held by the optimizer whose module ran but that had no gradient
    on every one of at least ``min_steps`` statistics steps, while other parameters had one."""
    present = ctx.run.series("grad_nonfinite")  # NaN exactly where .grad was None
    if len(present) < min_steps:
        return []
    has_grad = present.notna()
    if not has_grad.to_numpy().any():
        return []  # nothing reached any parameter: not a cut inside the model (see not_updated)
    never = [c for c in present.columns if not has_grad[c].any() and c in _trained(ctx)]
    if not never:
        return []
    owner = dict(zip(ctx.run.params["name"], ctx.run.params["module"]))
    calls = ctx.run.series("calls")
    ran = {m for m in calls.columns if np.nanmax(calls[m].to_numpy(dtype=float), initial=0.0) > 0}
    cut_modules = sorted({owner.get(n, "") for n in never if owner.get(n, "") in ran}, key=_order(ctx))
    if not cut_modules:
        return []  # held but never called: unused layers, not a cut
    names = [n for n in never if owner.get(n, "") in cut_modules]
    after = _first_with_gradient_after(ctx, cut_modules[-1], has_grad, owner)
    where = f"; the gradient stops at the input of {after!r}" if after else ""
    share = len(names) / max(1, len(_trained(ctx)))
    return [Finding(
        kind="disconnected_layers", severity="critical" if share >= 0.5 else "warning",
        first_step=int(present.index[0]), layers=cut_modules,
        summary=(f"{len(cut_modules)} layer(s) run in the forward pass but never get a gradient "
                 f"({', '.join(cut_modules[:4])}{'…' if len(cut_modules) > 4 else ''}){where}: something "
                 "cuts the graph (.detach(), torch.no_grad(), .data, a NumPy round trip) and they never train"),
        evidence={"parameters_without_gradient": names[:20], "statistics_steps": int(len(present)),
                  "gradient_stops_before": after, "measured": "grad_nonfinite (NaN = no .grad) and calls",
                  "healthy_band": "every trained parameter gets a gradient"},
        remedies=prescribe_all(["reconnect_graph"], ctx))]


def _trained(ctx: Context) -> set[str]:
    """Trainable parameters that an optimizer holds (all trainable ones when none is watched)."""
    info = ctx.model
    frozen = set(info.get("frozen_params") or [])
    outside = set(info.get("params_without_optimizer") or [])
    return {n for n in ctx.run.params["name"] if n not in frozen and n not in outside}


def _order(ctx: Context):
    """A sort key: a module's place in the forward pass (last measured step; unknown ones last)."""
    order = ctx.run.series("order")
    last = order.iloc[-1] if len(order) else pd.Series(dtype=float)
    return lambda m: float(last.get(m, np.inf)) if np.isfinite(last.get(m, np.inf)) else np.inf


def _first_with_gradient_after(ctx: Context, module: str, has_grad: pd.DataFrame,
                               owner: dict[str, str]) -> str | None:
    """The first module after ``module`` in the forward order whose own parameters get a gradient."""
    key = _order(ctx)
    start = key(module)
    got = {owner.get(n, "") for n in has_grad.columns if has_grad[n].any()}
    later = sorted((m for m in got if key(m) > start and m), key=key)
    return later[0] if later else None
