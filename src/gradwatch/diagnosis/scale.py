"""The network's absolute scale at its first watched step, where init pathologies are clearest:
the forward signal's growth per layer, the cross-entropy against chance, the global gradient
norm against the unit scale. A rule turns a scale far out of range into a finding.

Mechanism (He et al. 2015, eqs. 10 and 14): each layer multiplies the forward signal's
variance by ½·n·Var[w] (ReLU) and the backward signal's by the same factor with n the fan-out,
so a weight scale off by a constant factor makes the activations' RMS grow (or shrink) by a
constant factor per layer, and δ with it in the other direction. At the output the logits
then have a scale far from 1: a softmax over C classes costs ln C when its logits are equal
and ≈ max(z) − z_y when they are large, so a per-sample cross-entropy far above ln C says the
logits are that many units apart. A cross-entropy's gradient at the logits is at most √2 per
sample and a healthy layer carries unit-scale activations, so ‖∂L/∂W_l‖ ≲ √(2·fan_in_l) and
the whole gradient ≲ √(2·Σ fan_in): a first global norm many orders above that comes from the
scale of the weights, not from the data.

Example:
    >>> # s = initial_scale(ctx); s.activation_growth, s.loss_over_chance, s.too_large
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..findings import Cause, Finding
from . import causes as C
from .context import Context
from .prescriptions import prescribe_all


@dataclass
class InitialScale:
    """What the first watched step says about the network's scale (None: not measured).

    Example:
        >>> s = InitialScale(step=0, decades=6.1, fit=0.99, activation_growth=4.9, layers=list("abcdefghij"))
        >>> s.too_large(), s.too_small()
        (True, False)
    """

    step: int
    loss: float | None = None
    #: the loss per sample, reduction='sum' undone from the output δ (see :func:`per_sample_loss`)
    per_sample_loss: float | None = None
    classes: int | None = None
    #: per-sample cross-entropy / ln C (1 at a uniform guess); None for other losses
    loss_over_chance: float | None = None
    #: the output's δ at the first step; ≤ √2 shows a loss averaged over the samples
    output_delta: float | None = None
    layers: list[str] = field(default_factory=list)  # activation modules, forward order
    rms: list[float] = field(default_factory=list)
    #: the fitted constant factor per layer of the activations' RMS, its decades end to end, R²
    activation_growth: float | None = None
    decades: float | None = None
    fit: float | None = None
    grad_norm: float | None = None
    #: √(2·Σ fan_in): the global norm of a cross-entropy gradient through unit-scale layers
    unit_grad_norm: float | None = None

    @property
    def grad_over_unit(self) -> float | None:
        if self.grad_norm is None or not self.unit_grad_norm:
            return None
        return self.grad_norm / self.unit_grad_norm

    def forward(self, orders: float, sign: int, min_fit: float = 0.9) -> bool:
        """Whether the activations' RMS moves ≥ ``orders`` decades in direction ``sign``
        (+1 grows, −1 shrinks) by a steady factor per layer (R² ≥ ``min_fit``)."""
        return (self.decades is not None and self.fit is not None and sign * self.decades >= orders
                and self.fit >= min_fit)

    def too_large(self, orders: float = 3.0, loss_factor: float = 10.0) -> bool:
        """The forward signal grows ≥ ``orders`` decades, or the per-sample loss is
        ≥ ``loss_factor``× ln C: read per sample when the output's δ showed the reduction, else
        only together with a gradient ≥ ``orders`` decades above the unit scale (a summed loss
        is B× larger, and so is its gradient, but not 10^orders× for any usual batch)."""
        far = self.loss_over_chance is not None and self.loss_over_chance >= loss_factor
        output = far and (self.output_delta is not None
                          or (self.grad_over_unit is not None and self.grad_over_unit >= 10 ** orders))
        return self.forward(orders, +1) or output

    def too_small(self, orders: float = 3.0) -> bool:
        """The forward signal shrinks ≥ ``orders`` decades by a steady factor per layer."""
        return self.forward(orders, -1)

    def describe(self) -> str:
        """The measured scale in words, for a finding's summary."""
        bits = []
        if self.activation_growth is not None and self.decades is not None and abs(self.decades) >= 1:
            way = "grows" if self.decades > 0 else "shrinks"
            factor = self.activation_growth if self.decades > 0 else 1 / self.activation_growth
            bits.append(f"the activations' RMS {way} {factor:.2g}× per layer ({10 ** abs(self.decades):.1e}× over "
                        f"{len(self.layers)} activation layers)")
        if self.loss_over_chance is not None and self.loss_over_chance >= 3:
            bits.append(f"the cross-entropy is {self.per_sample_loss:.3g} per sample "
                        f"(ln {self.classes} = {math.log(self.classes):.2g} for a uniform guess)")
        g = self.grad_over_unit
        if g is not None and g >= 100:
            bits.append(f"the global gradient norm is {self.grad_norm:.2g} (≈{self.unit_grad_norm:.2g} at unit scale)")
        return ", ".join(bits)


def per_sample_loss(loss: float, output_delta: float | None) -> float:
    """A cross-entropy per sample, whatever the reduction.

    Per sample the gradient at the logits is p − e_y, of norm u ≤ √2. Averaged over B samples
    the output's δ is u_rms/√B ≤ √2; summed it is u_rms·√B. A δ above √2 therefore means a sum,
    and for a loss far above chance (u ≈ √2, confident and wrong) B ≈ δ²/2.

    Example:
        >>> per_sample_loss(5.0, 0.17), per_sample_loss(320.0, 8.0)
        (5.0, 10.0)
    """
    if output_delta is None or not math.isfinite(output_delta) or output_delta <= math.sqrt(2):
        return loss
    return loss * 2.0 / output_delta ** 2


def _is_cross_entropy(graph: list[str]) -> bool:
    head = graph[:6]
    return any(n.startswith("NllLoss") for n in head) and any(n.startswith("LogSoftmax") for n in head)


def _forward_order(ctx: Context, step: int, names: list[str]) -> list[str]:
    order = ctx.run.series("order")
    if step in order.index:
        pos = order.loc[step]
        known = [n for n in names if n in pos.index and np.isfinite(pos.get(n, np.nan))]
        if len(known) == len(names):
            return sorted(names, key=lambda n: pos[n])
    return names


def _output_layer(ctx: Context, step: int) -> dict | None:
    info = ctx.layer_info
    names = _forward_order(ctx, step, [n for n in ctx.layers if n in info])
    return info[names[-1]] if names else None


def initial_scale(ctx: Context) -> InitialScale | None:
    """The scale of the network at its first watched step (None for a run with no steps).

    Example:
        >>> # initial_scale(ctx).too_large()
    """
    return ctx.memo("initial_scale", _measure)


def _measure(ctx: Context) -> InitialScale | None:
    if not ctx.n_steps:
        return None
    step = int(ctx.steps.index[0])
    s = InitialScale(step=step)
    loss = float(ctx.steps["loss"].iloc[0])
    g = float(ctx.steps["grad_norm"].iloc[0])
    s.loss = loss if math.isfinite(loss) else None
    s.grad_norm = g if math.isfinite(g) and g > 0 else None
    out = _output_layer(ctx, step)
    if _is_cross_entropy(ctx.loss_graph) and out is not None and s.loss is not None:
        delta = ctx.run.series("delta")
        d_out = float(delta.loc[step, out["name"]]) if step in delta.index and out["name"] in delta.columns else None
        s.output_delta = d_out if d_out is not None and math.isfinite(d_out) else None
        s.classes = int(out.get("fan_out") or 0) or None
        if s.classes is not None and s.classes >= 2:
            s.per_sample_loss = per_sample_loss(s.loss, d_out)
            s.loss_over_chance = s.per_sample_loss / math.log(s.classes)
        fan_ins = [layer.get("fan_in") or 0 for layer in ctx.model.get("layers", [])
                   if layer.get("type") not in ("Embedding", "EmbeddingBag")]
        if sum(fan_ins) > 0:
            s.unit_grad_norm = math.sqrt(2.0 * sum(fan_ins))
    _activation_profile(ctx, s)
    return s


def chance_loss(ctx: Context) -> float | None:
    """ln C, the cross-entropy of a uniform guess over the C classes, in the loss's own units:
    a classifier whose loss has not gone below it has learned nothing beyond a guess.

    Only for a cross-entropy averaged over its samples (the output's δ at the first step ≤ √2,
    see :func:`per_sample_loss`); None otherwise.

    Example:
        >>> # chance_loss(ctx)  # 2.30 for ten classes
    """
    s = initial_scale(ctx)
    if s is None or s.classes is None or s.classes < 2 or s.output_delta is None or s.output_delta > math.sqrt(2):
        return None
    return math.log(s.classes)


def _activation_profile(ctx: Context, s: InitialScale, min_layers: int = 4) -> None:
    std, mean = ctx.run.series("act_std"), ctx.run.series("act_mean")
    if s.step not in std.index:
        return
    mods = ctx.run.modules
    acts = [n for n in mods[mods["kind"] == "activation"]["name"] if n in std.columns]
    sd = std.loc[s.step, acts].astype(float)
    mu = mean.loc[s.step, acts].astype(float) if s.step in mean.index else sd * 0
    rms = np.sqrt(sd.to_numpy() ** 2 + np.nan_to_num(mu.reindex(sd.index).to_numpy()) ** 2)
    keep = [(n, v) for n, v in zip(acts, rms) if np.isfinite(v) and v > 0]
    if len(keep) < min_layers:
        return
    by_name = dict(keep)
    names = _forward_order(ctx, s.step, list(by_name))
    s.layers, s.rms = names, [float(by_name[n]) for n in names]
    y = np.log10(np.asarray(s.rms))
    x = np.arange(len(y), dtype=float)
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    total = float(np.sum((y - y.mean()) ** 2))
    s.fit = 1.0 - float(np.sum(resid ** 2)) / total if total > 0 else 0.0
    s.activation_growth = float(10 ** slope)
    s.decades = float(slope * (len(y) - 1))


def check(ctx: Context, orders: float = 3.0, critical_orders: float = 6.0,
          loss_factor: float = 10.0) -> list[Finding]:
    """Flag a first step whose scale is ≥ ``orders`` decades out of range (see the module doc):
    an exploding signal for weights too large, a vanishing one for weights too small.

    Example:
        >>> # check(ctx) -> [Finding(kind="exploding_gradients", evidence={"measured": "initial_scale", ...})]
    """
    s = initial_scale(ctx)
    if s is None:
        return []
    if s.too_large(orders, loss_factor):
        worst = max(s.decades or 0.0, math.log10(s.grad_over_unit) if s.grad_over_unit else 0.0,
                    math.log10(s.loss_over_chance) if s.loss_over_chance else 0.0)
        causes = C.init_scale(ctx, "large") or [Cause("init_scale_too_large", f"measured at step {s.step}: "
                                                      f"{s.describe()}")]
        causes += C.residual_stream(ctx) + C.depth(ctx) + C.normalisation(ctx)
        remedies = (["fixup_init"] if C.residual_stream(ctx) else []) + ["use_he_init", "add_batchnorm",
                                                                         "clip_grad_norm"]
        return [_finding(ctx, s, "exploding_gradients", worst >= critical_orders, +1, causes, remedies,
                         "the initial weights are too large for the network: every layer multiplies the signal")]
    if s.too_small(orders):
        causes = C.init_scale(ctx, "small") + C.depth(ctx) + C.normalisation(ctx)
        return [_finding(ctx, s, "vanishing_gradients", -(s.decades or 0) >= critical_orders, -1, causes,
                         ["use_he_init", "add_batchnorm", "add_residual"],
                         "the initial weights are too small for the network: every layer shrinks the signal")]
    return []


def _finding(ctx: Context, s: InitialScale, kind: str, critical: bool, sign: int, causes: list[Cause],
             remedies: list[str], verdict: str) -> Finding:
    base = s.rms[0] if s.rms else None
    layers = [n for n, v in zip(s.layers, s.rms) if base and sign * math.log10(v / base) >= 3]
    evidence = {"measured": "initial_scale", "initial_step": s.step}
    if s.activation_growth is not None:
        evidence.update(activation_growth_per_layer=s.activation_growth, activation_decades=s.decades,
                        activation_fit_r2=s.fit, activation_rms_forward=s.rms)
    if s.loss_over_chance is not None:
        evidence.update(initial_loss_per_sample=s.per_sample_loss, ln_classes=math.log(s.classes),
                        initial_loss_over_chance=s.loss_over_chance)
    if s.grad_over_unit is not None:
        evidence.update(initial_grad_norm=s.grad_norm, unit_scale_grad_norm=s.unit_grad_norm)
    return Finding(kind=kind, severity="critical" if critical else "warning", first_step=s.step, layers=layers,
                   summary=f"at step {s.step} {s.describe()}: {verdict}", evidence=evidence,
                   causes=causes, remedies=prescribe_all(remedies, ctx))


__all__ = ["InitialScale", "initial_scale", "per_sample_loss", "chance_loss", "check"]
