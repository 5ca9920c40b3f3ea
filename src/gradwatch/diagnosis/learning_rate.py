"""Rules: learning rate too high / too low — the update-to-weight ratio ‖Δw‖/‖w‖ per layer
against the healthy band around 1e-3 (Karpathy), read together with the loss.

Mechanism: ‖Δw‖/‖w‖ is the fraction of a weight that one step rewrites. Near 1e-3 a layer
learns steadily; at ~1e-1 and above each step overwrites a large part of what was learned, and
the loss spikes, stalls or diverges; far below the band (≤ 1e-5) with a flat loss, steps are
too small to move the weights while the gradients themselves are fine.

Example:
    >>> # check_high(ctx), check_low(ctx)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..findings import Finding
from . import causes as C
from .context import Context
from .flow import across_layers
from .prescriptions import prescribe_all


def loss_trend(ctx: Context) -> dict[str, float]:
    """Loss at the start/end (medians), relative change, spike fraction, divergence, blow-up.

    The improvement is measured from the better of the first loss and the early median: a run
    whose loss leaps up in its first steps (a step too large) and comes back only to where it
    began has learned nothing, though it is below its early median."""
    lo = ctx.loss_finite()
    if len(lo) < 10:
        return {}
    n = len(lo)
    start = float(lo.iloc[: max(3, n // 10)].median())
    end = float(lo.iloc[-max(3, n // 5):].median())
    prev = lo.rolling(10, min_periods=3).median().shift(1)
    # a spike throws learning away: 3× the recent level and back above half the starting loss
    spikes = float(((lo > 3 * prev) & (prev > 0) & (lo > 0.5 * lo.iloc[0])).mean())
    initial = float(lo.iloc[0])
    ref = min(start, initial) if initial > 0 else start
    rel = (ref - end) / abs(ref) if ref != 0 else 0.0
    # the loss leaping an order of magnitude above where it began: an overshooting step
    peak = float(lo.max() / initial) if initial > 0 else float("nan")
    return {"loss_start": start, "loss_initial": initial, "loss_end": end, "relative_improvement": rel,
            "spike_fraction": spikes, "peak_over_initial": peak,
            "diverged": float(end > start * 1.05 or ctx.first_nonfinite_step is not None)}


def _ratio_by_layer(ctx: Context) -> pd.Series:
    r = ctx.update_ratio()
    if r.empty:
        return pd.Series(dtype=float)
    with np.errstate(divide="ignore"):
        return np.power(10.0, np.log10(r.where(r > 0)).median())


def _early_ratio_by_layer(ctx: Context) -> pd.Series:
    """Per layer, the largest ratio over the first third of the measured steps: a step size
    too large shows at once, before its damage (saturation, dead units) silences gradients."""
    r = ctx.update_ratio()
    if r.empty:
        return pd.Series(dtype=float)
    head = r.iloc[: max(2, len(r) // 3)]
    return head.max()


def check_high(ctx: Context, high: float = 0.05, share: float = 0.5, spike_fraction: float = 0.03,
               blow_up: float = 10.0) -> list[Finding]:
    """Flag early update ratios ≥ ``high`` on ≥ ``share`` of layers together with a loss that
    spikes, stalls, diverges, or leaps ≥ ``blow_up``× above its first value."""
    ratios = _early_ratio_by_layer(ctx).dropna()
    trend = loss_trend(ctx)
    if ratios.empty or not trend:
        return []
    hot = ratios[ratios >= high]
    if len(hot) < max(1, share * len(ratios)):
        return []
    diverged = bool(trend["diverged"])
    spiky = trend["spike_fraction"] >= spike_fraction
    stalled = trend["relative_improvement"] < 0.1
    blew_up = trend["peak_over_initial"] >= blow_up
    if not (diverged or spiky or stalled or blew_up):
        return []
    how = ("diverged" if diverged else "spikes" if spiky else
           f"leapt {trend['peak_over_initial']:.0f}× above its first value" if blew_up else "does not improve")
    causes = C.learning_rate(ctx) + C.post_ln_without_warmup(ctx)
    ids = [c.id for c in causes]
    remedies = ["reduce_lr"]
    if "post_ln" in ids:
        remedies += ["add_warmup", "use_pre_ln"]
    remedies += ["clip_grad_norm", "add_warmup"]
    first = int(ctx.update_ratio().index[0])
    return [Finding(
        kind="learning_rate_too_high", severity="critical" if diverged or blew_up else "warning",
        first_step=first, layers=list(hot.index),
        summary=(f"each step rewrites {float(hot.median()):.0%} of the weights in {len(hot)} of {len(ratios)} layers "
                 f"(healthy ≈ 0.1%), and the loss {how}"),
        evidence={"median_update_ratio": float(hot.median()), "healthy_band": "1e-4 .. 1e-2 (≈1e-3)", **trend},
        causes=causes, remedies=prescribe_all(remedies, ctx))]


def check_low(ctx: Context, low: float = 1e-5, min_improvement: float = 0.05,
              flow_orders: float = 3.0) -> list[Finding]:
    """Flag update ratios ≤ ``low`` on every layer, the output layer included, with a flat loss,
    while the gradient flow itself is healthy (within ``flow_orders`` decades across layers)."""
    ratios = _ratio_by_layer(ctx).dropna()
    trend = loss_trend(ctx)
    if ratios.empty or not trend:
        return []
    if not (ratios <= low).all():
        return []
    if trend["relative_improvement"] >= min_improvement or trend["diverged"]:
        return []
    span = across_layers(ctx)
    if span is not None and abs(span.log10_ratio) >= flow_orders:
        return []  # the gradients themselves are broken: that finding comes first, not the rate
    g = ctx.steps["grad_norm"].astype(float)
    return [Finding(
        kind="learning_rate_too_low", severity="warning", first_step=int(ratios.index.size and ctx.steps.index[0]),
        layers=list(ratios.index),
        summary=(f"steps change the weights by only {float(ratios.median()):.1e} of their size (healthy ≈ 1e-3) "
                 f"and the loss improved {trend['relative_improvement']:.1%}: the learning rate is too small"),
        evidence={"median_update_ratio": float(ratios.median()), "healthy_band": "1e-4 .. 1e-2 (≈1e-3)",
                  "grad_norm_median": float(np.nanmedian(g)), **trend},
        causes=C.learning_rate(ctx), remedies=prescribe_all(["increase_lr", "use_adam"], ctx))]
