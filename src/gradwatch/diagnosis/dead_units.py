"""Rule: dead units — ReLU-family units that output zero for every input over a window.

Mechanism: a ReLU unit whose pre-activation is negative for all inputs has zero gradient,
so its incoming weights never change again: the unit is lost for good. Causes: a large step
that pushed the bias far negative (learning rate), a negative bias at init, poor init.

Example:
    >>> # check(ctx) -> [Finding(kind="dead_units", layers=["2"], ...)]
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from . import causes as C
from .context import Context
from .prescriptions import prescribe_all

_HARD_ZERO = ("relu", "relu6", "threshold")


def check(ctx: Context, warn_fraction: float = 0.5, critical_fraction: float = 0.9) -> list[Finding]:
    """Flag ReLU layers where ≥ ``warn_fraction`` of units never fired over the dead-unit window."""
    dead = ctx.series("act_dead")
    if dead.empty:
        return []
    mods = ctx.run.modules.set_index("name")
    cols = [c for c in dead.columns if c in mods.index and mods.loc[c, "activation"] in _HARD_ZERO]
    if not cols:
        return []
    late = dead[cols].iloc[-min(3, len(dead)):]  # the last windows
    level = late.min()  # dead in every one of the last windows
    flagged = [(n, float(v)) for n, v in level.items() if np.isfinite(v) and v >= warn_fraction]
    if not flagged:
        return []
    names = [n for n, _ in flagged]
    worst = max(v for _, v in flagged)
    first = int(next((s for s, row in dead[names].iterrows() if (row >= warn_fraction).any()), dead.index[0]))
    causes = C.negative_bias(ctx, names) + C.learning_rate(ctx) + C.init_scale(ctx, "large")
    remedies = []
    if any(c.id == "negative_bias" for c in causes):
        remedies.append("zero_bias_init")
    remedies += ["reduce_lr", "use_leaky_relu", "use_he_init"]
    return [Finding(
        kind="dead_units", severity="critical" if worst >= critical_fraction else "warning",
        first_step=first, layers=names,
        summary=(f"{len(names)} ReLU layer(s) have up to {worst:.0%} of their units silent for every input: "
                 "they get no gradient and will not recover"),
        evidence={"dead_fraction": {n: v for n, v in flagged}, "healthy_band": f"< {warn_fraction:.0%}"},
        causes=causes, remedies=prescribe_all(remedies, ctx))]
