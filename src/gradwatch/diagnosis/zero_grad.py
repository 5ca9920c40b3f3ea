"""Rule: gradients not zeroed — ``.grad`` still holds the last step's gradient when this step's
backward begins.

Mechanism: ``backward()`` adds into ``.grad``; ``optimizer.zero_grad()`` (or ``p.grad = None``)
clears it. Without that, the step after n steps follows the sum of n gradients: the update grows
with the step count and points where the run has been, not where the loss falls. It looks like a
learning rate too high, and ``reduce_lr`` would only slow the drift. It is seen exactly, not by a
threshold: on the statistics steps the watcher reads every gradient as the step's first backward
reaches the parameters (``grad_prior_norm``), which is zero or absent unless nothing cleared it.
Accumulating micro-batches inside one optimizer step is correct and reads zero there.

Example:
    >>> # check(ctx) -> [Finding(kind="gradients_not_zeroed", layers=["0.weight", ...], ...)]
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from .context import Context
from .prescriptions import prescribe_all


def check(ctx: Context, min_steps: int = 2, stale_share_critical: float = 0.9) -> list[Finding]:
    """Flag runs where, on most statistics steps after the first (at least ``min_steps``), the
    gradients were not zero when the step's first backward reached them. Critical when the stale
    part is ``stale_share_critical`` of the gradient the optimizer steps with (n steps summed:
    (n−1)/n)."""
    prior = ctx.finite(ctx.run.series("grad_prior_norm"))
    if len(prior) < 2:
        return []
    prior = prior.iloc[1:]  # the first statistics step of a run has nothing before it
    total = np.sqrt(np.nansum(np.square(prior.to_numpy(dtype=float)), axis=1))
    stale = total > 0
    if stale.sum() < min_steps or stale.mean() < 0.5:
        return []
    steps = [int(s) for s, k in zip(prior.index, stale) if k]
    after = ctx.run.series("grad_norm").reindex(steps)
    after_total = np.sqrt(np.nansum(np.square(after.to_numpy(dtype=float)), axis=1))
    share = float(np.median(total[stale] / np.maximum(after_total, 1e-30)))
    layers = [c for c in prior.columns if np.nanmax(prior[c].to_numpy(dtype=float), initial=0.0) > 0]
    return [Finding(
        kind="gradients_not_zeroed", severity="critical" if share >= stale_share_critical else "warning",
        first_step=steps[0], layers=layers,
        summary=(f"the gradients are never cleared between steps: on {int(stale.sum())} of {len(stale)} "
                 f"statistics steps .grad still held the earlier steps' gradients when backward began "
                 f"({share:.0%} of what the optimizer stepped with); call optimizer.zero_grad() every step"),
        evidence={"steps_with_stale_gradients": steps[:20], "statistics_steps": len(stale),
                  "stale_share_of_gradient": share, "measured": "grad_prior_norm",
                  "healthy_band": "0 (zeroed, or None) at every step's first backward"},
        remedies=prescribe_all(["zero_grad_each_step"], ctx))]

