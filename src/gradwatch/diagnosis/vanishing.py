"""Rule: vanishing gradients — δ = ‖∂L/∂h‖ falling by orders of magnitude from the output
towards the input, or back through time in a recurrent loop.

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
from .flow import across_layers, through_time
from .prescriptions import prescribe_all


def check(ctx: Context, warn_orders: float = 3.0, critical_orders: float = 6.0) -> list[Finding]:
    """Flag δ shrinking ≥ ``warn_orders`` decades input-ward (critical at ``critical_orders``)."""
    out = []
    span = across_layers(ctx)
    if span is not None and -span.log10_ratio >= warn_orders:
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
            summary=(f"{what} shrink {10 ** -span.log10_ratio:.1e}× from the output layer to the first layer; "
                     f"{len(span.layers)} layer(s) get under 1/1000 of the output's gradient and barely learn"),
            evidence={"grad_ratio_first_to_last": 10 ** span.log10_ratio, "measured": span.source,
                      "healthy_band": "within ~100× across layers", "profile_input_to_output": span.profile},
            causes=causes, remedies=prescribe_all(remedies, ctx)))
    for t in through_time(ctx):
        if -t.log10_ratio >= warn_orders:
            sev = "critical" if -t.log10_ratio >= critical_orders else "warning"
            causes = C.saturating_activations(ctx) + C.small_recurrent_radius(ctx)
            module = t.source.split(":", 1)[1]
            out.append(Finding(
                kind="vanishing_gradients", severity=sev, first_step=t.first_step, layers=[module],
                summary=(f"the gradient through time in {module or 'the model'} shrinks {10 ** -t.log10_ratio:.1e}× "
                         "from the last time step to the first: early inputs cannot be learned from"),
                evidence={"grad_ratio_first_to_last_step": 10 ** t.log10_ratio, "measured": "through_time",
                          "healthy_band": "within ~100× over the sequence"},
                causes=causes, remedies=prescribe_all(C.relu_recurrence_first(ctx, ["use_lstm", "use_gru", "orthogonal_init", "clip_grad_norm"]), ctx)))
    return out
