"""Rule: symmetric weights — units of a layer that are identical and stay identical.

Mechanism: identical units compute the same output and receive the same gradient, so no
update can tell them apart: the layer acts as one unit, however wide. It comes from zero or
constant init; random init breaks it.

Example:
    >>> # check(ctx) -> [Finding(kind="symmetric_weights", layers=["0.weight"], ...)]
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from . import causes as C
from .context import Context
from .prescriptions import prescribe_all


def check(ctx: Context, warn_fraction: float = 0.5) -> list[Finding]:
    """Flag weights with ≥ ``warn_fraction`` of units identical at the first and last measurement."""
    ident = ctx.series("identical_frac")
    if len(ident) < 2:
        return []
    p = ctx.run.params.set_index("name")
    first, last = ident.iloc[0], ident.iloc[-1]
    flagged = []
    for name in ident.columns:
        if name not in p.index or p.loc[name, "shape"][0] < 2:
            continue
        a, b = first.get(name, np.nan), last.get(name, np.nan)
        if np.isfinite(a) and np.isfinite(b) and a >= warn_fraction and b >= warn_fraction:
            flagged.append((name, float(b)))
    if not flagged:
        return []
    names = [n for n, _ in flagged]
    worst = max(v for _, v in flagged)
    span = int(ident.index[-1] - ident.index[0])
    return [Finding(
        kind="symmetric_weights", severity="critical" if worst >= 0.99 else "warning",
        first_step=int(ident.index[0]), layers=names,
        summary=(f"{len(names)} weight tensor(s) have {worst:.0%} of their units identical, still after "
                 f"{span} steps: each such layer learns like a single unit"),
        evidence={"identical_fraction": {n: v for n, v in flagged}, "steps_between_checks": span,
                  "healthy_band": "0% (random init makes units distinct)"},
        causes=C.zero_init(ctx), remedies=prescribe_all(["break_symmetry", "use_he_init"], ctx))]
