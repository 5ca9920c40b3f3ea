"""Rule: vanishing gradients — δ = ‖∂L/∂h‖ falling by orders of magnitude from the output
towards the input, or back through time in a recurrent loop.

Through time two things must hold: the recurrence's per-step gain (probed with a random vector,
blind to where the loss enters) raised to the sequence length is ≤ 1/1000, and the first inputs
get ≥ 1000× less gradient than the best-fed ones, at the median of the measured steps. A language
model with a loss at every time step has the first (true) and not the second: each input is taught
by the loss next to it, and its short memory is the model's, not a failure of training. A gated
recurrence that starts out forgetting (an LSTM's forget gates at σ(0) = ½) and learns to keep its
state within the run shows it only at the first steps, and is not reported.

Mechanism: the back-propagated signal at layer l is a product of the Jacobians above it;
with sigmoid (σ′ ≤ 1/4), saturated tanh, or weights below the activation's critical scale,
each factor is < 1 and the product decays geometrically with depth (or with time steps).
Weight-gradient norms can hide this (Glorot & Bengio 2010), so δ is read first.

Example:
    >>> # check(ctx) -> [Finding(kind="vanishing_gradients", ...)]
"""

from __future__ import annotations

from ..findings import Finding
from . import causes as C
from .context import Context
from .flow import STARVED_FLOOR, layer_span, steps_to, through_time, time_evidence
from .prescriptions import prescribe_all


def check(ctx: Context, warn_orders: float = 3.0, critical_orders: float = 6.0,
          first_step_orders: float = 2.0) -> list[Finding]:
    """Flag δ shrinking ≥ ``warn_orders`` decades input-ward at the median of the measured steps,
    or ≥ ``first_step_orders`` (outside the healthy band of 100×) at the first step with ≥ 4× per
    layer at the median (:func:`~gradwatch.diagnosis.flow.layer_span`; critical at ``critical_orders``)."""
    out = []
    span = layer_span(ctx, -1, warn_orders, first_step_orders)
    if span is not None:
        sev = "critical" if -span.log10_ratio >= critical_orders else "warning"
        causes = (C.saturating_activations(ctx) + C.init_scale(ctx, "small") + C.depth(ctx)
                  + C.normalisation(ctx) + C.residual(ctx))
        ids = [c.id for c in causes]
        remedies = []
        if "activation_sigmoid" in ids or "activation_tanh" in ids:
            remedies.append("use_relu_with_he_init")
        remedies += ["use_he_init", "add_batchnorm", "add_residual"]
        if "init_scale_too_small" in ids:
            remedies.insert(0, "use_he_init")
        what = "δ (∂L/∂h)" if span.source == "delta" else "weight gradients"
        out.append(Finding(
            kind="vanishing_gradients", severity=sev, first_step=span.first_step, layers=span.layers,
            summary=(f"{what} shrink {10 ** -span.log10_ratio:.1e}× from the output layer to the first layer "
                     f"({span.describe()}); {len(span.layers)} layer(s) get under "
                     f"1/{100 if span.first_step_only else 1000} of the output's gradient and barely learn"),
            evidence={"grad_ratio_first_to_last": 10 ** span.log10_ratio, "measured": span.source,
                      "read_at": "first step" if span.first_step_only else "median of the measured steps",
                      "per_layer_factor": span.per_layer_factor(),
                      "healthy_band": "within ~100× across layers", "profile_input_to_output": span.profile},
            causes=causes, remedies=prescribe_all(remedies, ctx)))
    for t in through_time(ctx):
        r = t.vanishing(warn_orders)
        if r is None:
            continue
        sev = "critical" if -r.log10_total >= critical_orders else "warning"
        causes = C.saturating_activations(ctx) + C.small_recurrent_radius(ctx)
        out.append(Finding(
            kind="vanishing_gradients", severity=sev, first_step=r.first_step, layers=[r.module],
            summary=(f"the gradient through time in {r.module or 'the model'} shrinks to {r.gain:.2f}× per time step "
                     f"back through the recurrence (1/1000 within {steps_to(r.gain)} steps): {10 ** r.log10_total:.1e}× "
                     f"over its {r.length}-step sequences, and the first inputs get "
                     + (f"{10 ** r.starved:.1e}× the gradient of the best-fed ones: " if r.starved > STARVED_FLOOR
                        else "no gradient at all: ")
                     + "early inputs cannot be learned from"),
            evidence=time_evidence(r),
            causes=causes, remedies=prescribe_all(C.relu_recurrence_first(ctx, ["use_lstm", "use_gru", "orthogonal_init", "clip_grad_norm"]), ctx)))
    return out
