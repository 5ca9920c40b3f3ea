"""Rule: saturated activations — sigmoid/tanh units sitting in their flat tails.

Mechanism: in the tails (sigmoid a < 0.02 or > 0.98; |tanh| > 0.98) the derivative is
below ~0.02–0.04, so almost no gradient passes through the unit and its incoming weights
stop learning (Glorot & Bengio 2010, Fig. 2). Behind an MSE loss a saturated sigmoid output
stalls learning outright (the gradient carries σ′); cross-entropy removes that factor, so
a saturated output under cross-entropy is a confident prediction, not a fault.

Example:
    >>> # check(ctx) -> [Finding(kind="saturated_activations", layers=["3"], ...)]
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from . import causes as C
from .context import Context
from .prescriptions import prescribe_all


def check(ctx: Context, warn_fraction: float = 0.5, critical_fraction: float = 0.9) -> list[Finding]:
    """Flag layers with ≥ ``warn_fraction`` of activations in the tails (persistently)."""
    sat = ctx.series("act_sat")
    if sat.empty:
        return []
    late = sat.iloc[len(sat) // 2:]  # persistent: the later half of the measured steps
    level = late.median()
    mods = ctx.run.modules
    acts = [n for n in mods[mods["kind"] == "activation"]["name"] if n in sat.columns]
    output_act = acts[-1] if acts else None
    mse_sig = C.mse_behind_sigmoid(ctx)
    ce_output = any(n.startswith(("BinaryCrossEntropy", "NllLoss", "LogSoftmax")) for n in ctx.loss_graph[:4])
    output_is_activation = _output_is_activation(ctx.loss_graph)
    flagged = []
    for name, v in level.items():
        if not np.isfinite(v) or v < warn_fraction:
            continue
        if name == output_act and output_is_activation and ce_output and not mse_sig:
            continue  # confident outputs under cross-entropy: the loss cancels σ′
        flagged.append((name, float(v)))
    if not flagged:
        return []
    names = [n for n, _ in flagged]
    worst = max(v for _, v in flagged)
    first = int(next((s for s, row in sat[names].iterrows() if (row >= warn_fraction).any()), sat.index[0]))
    causes = list(mse_sig) + C.init_scale(ctx, "large") + C.saturating_activations(ctx) + C.normalisation(ctx)
    remedies = (["use_cross_entropy"] if mse_sig else []) + ["use_relu_with_he_init", "use_he_init", "add_batchnorm"]
    return [Finding(
        kind="saturated_activations", severity="critical" if worst >= critical_fraction else "warning",
        first_step=first, layers=names,
        summary=(f"{len(names)} activation layer(s) keep {worst:.0%} of their outputs in the flat tails "
                 "where the derivative is < 0.04: little gradient gets through"),
        evidence={"saturated_fraction": {n: v for n, v in flagged}, "healthy_band": f"< {warn_fraction:.0%}",
                  "tails": "sigmoid <0.02 or >0.98, |tanh| >0.98"},
        causes=causes, remedies=prescribe_all(remedies, ctx))]


_LAYER_NODES = ("Addmm", "Mm", "Bmm", "Convolution", "Linear", "MulBackward", "Embedding")


def _output_is_activation(graph: list[str]) -> bool:
    """Whether a sigmoid/tanh sits between the loss and the last weight layer."""
    for node in graph:
        if node.startswith(("SigmoidBackward", "TanhBackward")):
            return True
        if node.startswith(_LAYER_NODES):
            return False
    return False
