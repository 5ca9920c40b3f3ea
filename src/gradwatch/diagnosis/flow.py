"""Gradient flow measured three ways, shared by the vanishing and exploding rules:
across layers (δ at each layer's output, input→output), through time (per call or per time
step of a recurrent module), and step over step (the global gradient norm).

Example:
    >>> # across_layers(ctx) -> FlowSpan(log10_ratio=-9.2, layers=[...], step=0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .context import Context, robust_profile


@dataclass
class FlowSpan:
    """log10 of (signal at the input end / signal at the output end); negative = vanishing."""

    log10_ratio: float
    source: str  # "delta" | "weight_grad" | "time:<module>"
    first_step: int
    layers: list[str] = field(default_factory=list)  # where the signal is weakest/strongest
    profile: list[float] = field(default_factory=list)


def across_layers(ctx: Context, min_layers: int = 3) -> FlowSpan | None:
    """δ (∂L/∂h) across weight layers, median over the measured steps in log space."""
    d = ctx.delta_profile()
    source = "delta"
    if d.shape[1] < min_layers or d.shape[0] == 0:
        d = ctx.weight_grad_profile()
        source = "weight_grad"
    if d.shape[1] < min_layers or d.shape[0] == 0:
        return None
    prof = robust_profile(d)
    ok = np.isfinite(prof) & (prof > 0)
    if ok.sum() < min_layers:
        # all-zero gradients (e.g. symmetric zero init) say nothing about flow
        return None
    names = [c for c, k in zip(d.columns, ok) if k]
    prof = prof[ok]
    top = prof[-1]
    ratio = float(np.log10(prof[0]) - np.log10(top))
    # layers whose signal is 1000× away from the output layer's
    far = [n for n, v in zip(names, prof) if abs(np.log10(v) - np.log10(top)) >= 3]
    first_step = _first_step_beyond(d, names, sign=np.sign(ratio))
    return FlowSpan(ratio, source, first_step, far, [float(v) for v in prof])


def _first_step_beyond(d: pd.DataFrame, names: list[str], sign: float, orders: float = 3.0) -> int:
    for step, row in d[names].iterrows():
        v = row.to_numpy(dtype=float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size >= 2 and sign * (np.log10(v[0]) - np.log10(v[-1])) >= orders:
            return int(step)
    return int(d.index[0])


def through_time(ctx: Context, min_len: int = 8) -> list[FlowSpan]:
    """For each module called many times per step (or a recurrent module's time steps):
    log10(early / late) of the gradient at its output, median over measured steps."""
    calls = ctx.run.calls()
    if calls.empty:
        return []
    cut = ctx.first_nonfinite_step
    if cut is not None:
        calls = calls[calls["step"] < cut]
    roots = ctx.series("calls")
    out = []
    for module, grp in calls.groupby("module", sort=False):
        spans, first = [], None
        for step, g in grp.groupby("step"):
            v = g.sort_values("call")["delta"].to_numpy(dtype=float)
            root_calls = _root_calls(roots, step)
            if root_calls > 1 and v.size % root_calls == 0:  # several forwards (accumulation)
                v = v.reshape(root_calls, -1).mean(0)
            if v.size < min_len:
                continue
            k = max(1, v.size // 10)
            early, late = v[:k], v[-k:]
            early, late = early[np.isfinite(early)], late[np.isfinite(late)]
            if early.size == 0 or late.size == 0:
                continue
            e, l_ = float(np.mean(early)), float(np.mean(late))
            if e <= 0 and l_ <= 0:
                continue
            r = np.log10(max(e, 1e-45)) - np.log10(max(l_, 1e-45))
            spans.append(r)
            if first is None and abs(r) >= 3:
                first = int(step)
        if spans:
            med = float(np.median(spans))
            out.append(FlowSpan(med, f"time:{module}", first if first is not None else int(grp["step"].min()),
                                [module]))
    return out


def _root_calls(roots: pd.DataFrame, step: int) -> int:
    if "" in roots.columns and step in roots.index:
        v = roots.loc[step, ""]
        if np.isfinite(v) and v >= 1:
            return int(v)
    return 1


def step_over_step(ctx: Context, orders: float = 3.0) -> tuple[float, int] | None:
    """log10(peak global gradient norm / its early median), and the step of the peak."""
    g = ctx.steps["grad_norm"].astype(float)
    cut = ctx.first_nonfinite_step
    if cut is not None:
        g = g[g.index < cut]
    g = g[np.isfinite(g) & (g > 0)]
    if len(g) < 10:
        return None
    head = g.iloc[: max(3, len(g) // 10)]
    base = float(np.median(head))
    rest = g.iloc[len(head):]
    if rest.empty or base <= 0:
        return None
    peak_step = int(rest.idxmax())
    return float(np.log10(rest.max() / base)), peak_step
