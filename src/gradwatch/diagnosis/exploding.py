"""Rule: exploding gradients — growth by orders of magnitude across layers (towards the input),
through time, or step over step.

Through time the measured quantity is the per-step gain of the recurrence (the gain of one step's
Jacobian ∂s_t/∂s_{t−1}, probed with a random vector, so it does not depend on where the loss
enters), raised to the sequence length: ≥ 1000× from the last time step back to the first.

Mechanism: when each layer's (or time step's) Jacobian has gain > 1 — weights above the
activation's critical scale, recurrent spectral radius > 1, a learning rate that grows the
weights — the product grows geometrically; the update overshoots and the loss jumps or ends
in NaN (Pascanu et al. 2013).

Example:
    >>> # check(ctx) -> [Finding(kind="exploding_gradients", ...)]
"""

from __future__ import annotations

from ..findings import Finding
from . import causes as C
from .context import Context
from .flow import layer_span, step_over_step, steps_to, through_time, time_evidence
from .prescriptions import prescribe_all


def check(ctx: Context, warn_orders: float = 3.0, critical_orders: float = 6.0,
          step_orders: float = 3.0, first_step_orders: float = 2.0) -> list[Finding]:
    """Flag growth of ≥ ``warn_orders`` decades across layers or time (across layers also
    ≥ ``first_step_orders`` at the first step with ≥ 4× per layer at the median), or
    ``step_orders`` over steps."""
    out = []
    span = layer_span(ctx, +1, warn_orders, first_step_orders)
    if span is not None:
        sev = "critical" if span.log10_ratio >= critical_orders else "warning"
        causes = C.residual_stream(ctx) + C.init_scale(ctx, "large") + C.depth(ctx) + C.normalisation(ctx)
        out.append(Finding(
            kind="exploding_gradients", severity=sev, first_step=span.first_step, layers=span.layers,
            summary=(f"gradients grow {10 ** span.log10_ratio:.1e}× from the output layer to the first layer "
                     f"({span.describe()}); the first layers take steps far too large for their weights"),
            evidence={"grad_ratio_first_to_last": 10 ** span.log10_ratio, "measured": span.source,
                      "read_at": "first step" if span.first_step_only else "median of the measured steps",
                      "per_layer_factor": span.per_layer_factor(),
                      "healthy_band": "within ~100× across layers", "profile_input_to_output": span.profile},
            causes=causes,
            remedies=prescribe_all((["fixup_init"] if C.residual_stream(ctx) else [])
                                   + ["use_he_init", "add_batchnorm", "clip_grad_norm"], ctx)))
    for t in through_time(ctx):
        r = t.exploding(warn_orders)
        if r is None:
            continue
        sev = "critical" if r.log10_total >= critical_orders else "warning"
        out.append(Finding(
            kind="exploding_gradients", severity=sev, first_step=r.first_step, layers=[r.module],
            summary=(f"the gradient through time in {r.module or 'the model'} grows {r.gain:.2f}× per time step "
                     f"back through the recurrence: {10 ** r.log10_total:.1e}× over its {r.length}-step sequences "
                     f"(1000× within {steps_to(r.gain)} steps)"),
            evidence=time_evidence(r),
            causes=C.recurrent_radius(ctx),
            remedies=prescribe_all(C.relu_recurrence_first(ctx, ["clip_grad_norm", "orthogonal_init", "use_lstm"]), ctx)))
    sos = step_over_step(ctx)
    if sos is not None and sos[0] >= step_orders:
        orders, peak = sos
        causes = C.learning_rate(ctx) + C.recurrent_radius(ctx) + C.init_scale(ctx, "large")
        out.append(Finding(
            kind="exploding_gradients", severity="critical" if orders >= critical_orders else "warning",
            first_step=peak, layers=[],
            summary=(f"the global gradient norm grew {10 ** orders:.1e}× above its early level (peak at step {peak})"),
            evidence={"grad_norm_growth": 10 ** orders, "peak_step": peak, "measured": "step_over_step",
                      "healthy_band": "within ~100× of the early norm"},
            causes=causes, remedies=prescribe_all(["clip_grad_norm", "reduce_lr", "guard"], ctx)))
    return out

