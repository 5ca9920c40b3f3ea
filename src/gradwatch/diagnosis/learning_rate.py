"""Rules: learning rate too high / too low — the update-to-weight ratio ‖Δw‖/‖w‖ per layer
against the healthy band around 1e-3 (Karpathy), read together with the loss.

Mechanism: ‖Δw‖/‖w‖ is the fraction of a weight that one step rewrites. Near 1e-3 a layer
learns steadily; at ~1e-1 and above each step overwrites a large part of what was learned, and
the loss spikes, stalls or diverges; below the band's lower edge (1e-4) on every layer with a
loss that did not learn, steps are too small to move the weights while the gradients themselves
are fine: at 1e-5 a run of a thousand steps rewrites at most 1 % of any weight. A loss change is
judged against the loss's own minibatch noise, and against the most the steps could change it
(a rise of a noisy loss is no divergence when the weights barely moved).

Example:
    >>> # check_high(ctx), check_low(ctx)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..findings import Finding
from . import causes as C
from .context import Context
from .flow import across_layers
from .prescriptions import prescribe_all
from .scale import chance_loss

#: standard errors a change of the windowed loss must exceed to count as more than noise
Z_NOISE = 3.0
#: slack of the first-order movement bound (curvature, and steps between statistics steps)
MOVE_SLACK = 10.0


def loss_noise(lo: pd.Series) -> float:
    """The loss's own step-to-step noise σ, robustly: the MAD of the first differences.

    Differences cancel a slow trend; for independent minibatch noise of size σ they have
    σ·√2, and 1.4826·MAD estimates a normal σ without letting spikes inflate it.

    Example:
        >>> import numpy as np, pandas as pd
        >>> noisy = pd.Series(2.0 + np.random.default_rng(0).normal(0, 0.1, 2000))
        >>> round(loss_noise(noisy), 2)
        0.1
    """
    d = np.diff(lo.to_numpy(dtype=float))
    d = d[np.isfinite(d)]
    if d.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def movement_bound(ctx: Context) -> float:
    """The most the steps could have changed the loss, to first order: Σ_t Σ_p ‖g_p‖·‖Δw_p‖.

    A step changes the loss by ⟨g, Δw⟩ + O(‖Δw‖²) ≤ ‖g‖·‖Δw‖ per parameter tensor (Cauchy–
    Schwarz), whatever the optimizer. Measured at the statistics steps and scaled to all finite
    steps; NaN when the updates were not measured.

    Example:
        >>> # movement_bound(ctx)  # a run at update ratios of 1e-7: ~1e-5, against a loss of ~1
    """
    u, g = ctx.series("update_norm"), ctx.series("grad_norm")
    cols = [c for c in u.columns if c in g.columns]
    steps = u.index.intersection(g.index)
    if not cols or steps.empty:
        return float("nan")
    per_step = (u.loc[steps, cols] * g.loc[steps, cols]).sum(axis=1, min_count=1).dropna()
    if per_step.empty:
        return float("nan")
    return float(per_step.mean()) * len(ctx.finite(ctx.steps))


def loss_trend(ctx: Context) -> dict[str, float]:
    """Loss at the start/end (medians), relative change, spike fraction, divergence, blow-up,
    each change judged against the loss's own noise and against what the steps could do.

    The improvement is measured from the best of the first loss, the early median and, for a
    cross-entropy, the loss of a uniform guess (ln C): a run whose loss leaps up in its first
    steps (a step too large) and comes back only to where it began, or only down to chance, has
    learned nothing, though it is below its early median. A rise or a drop of the
    windowed medians counts only when it exceeds ``Z_NOISE`` standard errors of those medians
    (from :func:`loss_noise`) and when the steps could have made it: a change far beyond
    :func:`movement_bound` comes from the data, not from training (a run whose updates are 1e-7
    of its weights cannot have diverged, nor learned)."""
    lo = ctx.loss_finite()
    if len(lo) < 10:
        return {}
    n = len(lo)
    k_start, k_end = max(3, n // 10), max(3, n // 5)
    start = float(lo.iloc[:k_start].median())
    end = float(lo.iloc[-k_end:].median())
    prev = lo.rolling(10, min_periods=3).median().shift(1)
    # the level the loss held for three steps running: one minibatch's blip is not a rise
    held = lo.rolling(3, center=True).median().dropna()
    # a spike throws learning away: 3× the recent level and back above half the starting loss
    spikes = float(((lo > 3 * prev) & (prev > 0) & (lo > 0.5 * lo.iloc[0])).mean())
    initial = float(lo.iloc[0])
    ref = min(start, initial) if initial > 0 else start
    chance = chance_loss(ctx)
    if chance is not None:
        ref = min(ref, chance)  # down to a uniform guess is no learning
    rel = (ref - end) / abs(ref) if ref != 0 else 0.0
    # the loss leaping an order of magnitude above where it began: an overshooting step
    peak = float(lo.max() / initial) if initial > 0 else float("nan")
    held_peak = float(held.max() / initial) if initial > 0 and not held.empty else float("nan")
    noise = loss_noise(lo)
    # the noise where the loss held its peak: a minibatch loss is often far noisier early than
    # late (its spread falls with the loss), so the whole run's noise would understate it there
    at = lo.index.get_loc(held.idxmax()) if not held.empty else 0
    peak_noise = loss_noise(lo.iloc[:at + 10])
    se = 1.2533 * noise * np.sqrt(1 / k_start + 1 / k_end)  # standard error of a difference of medians
    bound = movement_bound(ctx)

    def real(change: float) -> bool:
        return change > Z_NOISE * se and not (np.isfinite(bound) and bound * MOVE_SLACK < change)

    diverged = ctx.first_nonfinite_step is not None or (end > start * 1.05 and real(end - start))
    return {"loss_start": start, "loss_initial": initial, "loss_end": end, "relative_improvement": rel,
            "spike_fraction": spikes, "peak_over_initial": peak, "held_peak_over_initial": held_peak,
            "loss_noise": noise, "peak_loss_noise": peak_noise, "movement_bound": bound,
            "learned": float(real(ref - end)), "diverged": float(diverged)}


@dataclass
class Hot:
    """Steps far above the band: where they began, the hot layers' ratio, which layers of how many.

    Example:
        >>> Hot(first_step=0, ratio=0.4, names=["fc1.weight", "fc2.weight"], of=3).layers
        2
    """

    first_step: int
    ratio: float
    names: list[str]
    of: int

    @property
    def layers(self) -> int:
        return len(self.names)


def hot_steps(ctx: Context, high: float = 0.05, share: float = 0.5, before: int | None = None) -> Hot | None:
    """Update ratios ≥ ``high`` on ≥ ``share`` of the layers, else None.

    Read over the first third of the measured finite steps (a step size too large shows at
    once, before its damage — saturation, dead units — silences the gradients), or, with
    ``before``, over the last third of the measured steps before that step (what led to it).

    Example:
        >>> # hot_steps(ctx, before=37).ratio  # e.g. 0.4: 40% of the weights per step before step 37
    """
    r = ctx.update_ratio()
    if before is not None:
        r = r[r.index < before]
        head = r.iloc[-max(2, len(r) // 3):]
    else:
        head = r.iloc[: max(2, len(r) // 3)]
    if head.empty:
        return None
    peak = head.max().dropna()
    hot = peak[peak >= high]
    if peak.empty or len(hot) < max(1, share * len(peak)):
        return None
    # the onset: the first measured step with a hot layer
    first = int((head[hot.index] >= high).any(axis=1).idxmax())
    return Hot(first, float(hot.median()), list(hot.index), len(peak))


def _ratio_by_layer(ctx: Context) -> pd.Series:
    r = ctx.update_ratio()
    if r.empty:
        return pd.Series(dtype=float)
    with np.errstate(divide="ignore"):
        return np.power(10.0, np.log10(r.where(r > 0)).median())


def check_high(ctx: Context, high: float = 0.05, share: float = 0.5, spike_fraction: float = 0.03,
               blow_up: float = 10.0, overshoot: float = 1.5) -> list[Finding]:
    """Flag early update ratios ≥ ``high`` on ≥ ``share`` of layers together with a loss that
    spikes, stalls, diverges, leaps ≥ ``blow_up``× above its first value, or ends in NaN/Inf —
    or that overshoots: holds ≥ ``overshoot``× above its first value for three steps running,
    beyond the loss's noise up to there, though it recovers later (a one-step blip is one
    minibatch, or Adam's first full-size step). A step small enough for the curvature never
    raises the loss (the descent lemma: below 2/λ_max a gradient step descends); a loss half
    again above where it began, right where the steps rewrite ≥ 5 % of the weights, is a step
    beyond that edge, whatever the run reaches afterwards.

    Before a NaN the run may be too short for a loss trend: steps that hot before it are the
    evidence, and when no update was measured before it, a loss that rose ≥ ``blow_up``× is."""
    nan = ctx.first_nonfinite_step
    hot = hot_steps(ctx, high, share)
    trend = loss_trend(ctx)
    if hot is None:
        return _rose_before_nan(ctx, nan, blow_up) if nan is not None and ctx.update_ratio().empty else []
    if not trend and nan is None:
        return []
    diverged = nan is not None or bool(trend.get("diverged"))
    spiky = trend.get("spike_fraction", 0.0) >= spike_fraction
    stalled = bool(trend) and not (trend["relative_improvement"] >= 0.1 and trend["learned"])
    peak = trend.get("peak_over_initial", 0.0)
    blew_up = peak >= blow_up
    held = trend.get("held_peak_over_initial", 0.0)
    overshot = (held >= overshoot
                and (held - 1.0) * trend.get("loss_initial", 0.0) > Z_NOISE * trend.get("peak_loss_noise", 0.0))
    if not (diverged or spiky or stalled or blew_up or overshot):
        return []
    how = ("ends in NaN/Inf" if nan is not None else "diverged" if diverged else "spikes" if spiky else
           f"leapt {peak:.0f}× above its first value" if blew_up else "does not improve" if stalled else
           f"held {held:.2g}× above its first value before it came down: the steps overshoot")
    causes = C.learning_rate(ctx) + C.post_ln_without_warmup(ctx)
    ids = [c.id for c in causes]
    remedies = ["reduce_lr"]
    if "post_ln" in ids:
        remedies += ["add_warmup", "use_pre_ln"]
    remedies += ["clip_grad_norm", "add_warmup"]
    return [Finding(
        kind="learning_rate_too_high", severity="critical" if diverged or blew_up else "warning",
        first_step=hot.first_step, layers=hot.names,
        summary=(f"each step rewrites {hot.ratio:.0%} of the weights in {hot.layers} of {hot.of} layers "
                 f"(healthy ≈ 0.1%), and the loss {how}"),
        evidence={"median_update_ratio": hot.ratio, "healthy_band": "1e-4 .. 1e-2 (≈1e-3)", **trend},
        causes=causes, remedies=prescribe_all(remedies, ctx))]


def _rose_before_nan(ctx: Context, nan: int, blow_up: float) -> list[Finding]:
    """No update measured before the NaN: a loss that rose ≥ ``blow_up``× on the way to it."""
    lo = ctx.loss_finite()
    lo = lo[(lo.index < nan) & (lo > 0)]
    if len(lo) < 2 or lo.iloc[-1] < blow_up * lo.iloc[0]:
        return []
    rise = float(lo.iloc[-1] / lo.iloc[0])
    return [Finding(
        kind="learning_rate_too_high", severity="critical", first_step=int(lo.index[0]), layers=[],
        summary=(f"the loss rose {rise:.2g}× over the {len(lo)} steps before the first NaN/Inf (step {nan}) "
                 "with no update measured: steps that overshoot"),
        evidence={"loss_growth_before_nonfinite": rise, "first_nonfinite_step": nan},
        causes=C.learning_rate(ctx), remedies=prescribe_all(["reduce_lr", "clip_grad_norm", "add_warmup"], ctx))]


def check_low(ctx: Context, low: float = 1e-4, min_improvement: float = 0.05,
              flow_orders: float = 3.0) -> list[Finding]:
    """Flag update ratios ≤ ``low`` on every layer, the output layer included, with a flat loss,
    while the gradient flow itself is healthy (within ``flow_orders`` decades across layers)."""
    ratios = _ratio_by_layer(ctx).dropna()
    trend = loss_trend(ctx)
    if ratios.empty or not trend:
        return []
    if not (ratios <= low).all():
        return []
    if (trend["relative_improvement"] >= min_improvement and trend["learned"]) or trend["diverged"]:
        return []
    span = across_layers(ctx)
    if span is not None and abs(span.log10_ratio) >= flow_orders:
        return []  # the gradients themselves are broken: that finding comes first, not the rate
    g = ctx.steps["grad_norm"].astype(float)
    return [Finding(
        kind="learning_rate_too_low", severity="warning", first_step=int(ratios.index.size and ctx.steps.index[0]),
        layers=list(ratios.index),
        summary=(f"steps change the weights by only {float(ratios.median()):.1e} of their size (healthy ≈ 1e-3) "
                 f"and the loss went from {trend['loss_start']:.3g} to {trend['loss_end']:.3g}"
                 f"{_within_noise(trend)}: the learning rate is too small"),
        evidence={"median_update_ratio": float(ratios.median()), "healthy_band": "1e-4 .. 1e-2 (≈1e-3)",
                  "grad_norm_median": float(np.nanmedian(g)), **trend},
        causes=C.learning_rate(ctx), remedies=prescribe_all(["increase_lr", "use_adam"], ctx))]


def _within_noise(trend: dict[str, float]) -> str:
    """How the loss's change reads against its noise and the steps' reach, in words."""
    change = trend["loss_start"] - trend["loss_end"]
    if trend.get("learned"):
        return f" (improved {trend['relative_improvement']:.1%})"
    bound = trend.get("movement_bound", float("nan"))
    if np.isfinite(bound) and bound * MOVE_SLACK < abs(change):
        return f", a change the steps cannot have made (they could move it by {bound:.1g} at most)"
    return f", within its step-to-step noise (±{trend.get('loss_noise', 0.0):.2g})"
