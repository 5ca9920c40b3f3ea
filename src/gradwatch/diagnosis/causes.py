"""Causes read off the model and the run: activation types, init gain per layer against the
value its activation needs, normalisation, residual paths, recurrent spectral radius,
optimizer, schedule and loss.

Each function takes the rule :class:`~gradwatch.diagnosis.context.Context` and returns a list of
:class:`~gradwatch.findings.Cause` (empty when the cause is absent).

Example:
    >>> # saturating_activations(ctx) -> [Cause("activation_sigmoid", "20 sigmoid layers ...")]
"""

from __future__ import annotations

import math

import numpy as np

from ..findings import Cause
from .context import Context

# the std·√fan_in a layer needs to keep the signal's scale, by the activation that follows it
# (torch.nn.init.calculate_gain; He et al. 2015; Glorot & Bengio 2010)
IDEAL_GAIN = {"relu": math.sqrt(2.0), "relu6": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + 0.01 ** 2)),
              "prelu": math.sqrt(2.0 / (1 + 0.25 ** 2)), "tanh": 5.0 / 3, "sigmoid": 1.0, "selu": 0.75,
              "gelu": math.sqrt(2.0), "silu": math.sqrt(2.0), "elu": math.sqrt(2.0), None: 1.0}


def _activation_counts(ctx: Context) -> dict[str, int]:
    mods = ctx.run.modules
    acts = mods[mods["kind"] == "activation"]["activation"]
    return acts.value_counts().to_dict()


def saturating_activations(ctx: Context) -> list[Cause]:
    counts = _activation_counts(ctx)
    out = []
    for name, bound in (("sigmoid", "σ′ ≤ 0.25, so each layer can shrink the gradient 4×"),
                        ("tanh", "tanh′ ≤ 1 and ≈ 0 in its tails")):
        n = counts.get(name, 0)
        if n:
            out.append(Cause(f"activation_{name}", f"{n} {name} activation layer(s): {bound}"))
    for rec in ctx.model.get("recurrent", []):
        if rec["type"] in ("RNN", "RNNCell") and rec.get("nonlinearity") == "tanh":
            out.append(Cause("plain_rnn", f"{rec['name'] or 'the model'} is a plain tanh {rec['type']}: the "
                             "gradient through time is a product of tanh′·W_hh per step"))
    return out


def depth(ctx: Context, at_least: int = 8) -> list[Cause]:
    d = len(ctx.layers)
    if d >= at_least:
        return [Cause("depth", f"{d} weight layers in series: per-layer gains multiply")]
    return []


def init_scale(ctx: Context, direction: str) -> list[Cause]:
    """Layers whose measured init gain (std·√fan_in) is far from what their activation needs.

    Embeddings are left out: a lookup multiplies no fan-in of inputs, and N(0, 1) is their
    standard scale (PyTorch's default), not a gain of √dim."""
    small, large = [], []
    for layer in ctx.model.get("layers", []):
        if layer.get("type") in ("Embedding", "EmbeddingBag"):
            continue
        act = layer.get("following_activation")
        ideal = IDEAL_GAIN.get(act, IDEAL_GAIN[None])
        g = layer.get("gain") or 0.0
        if g == 0:
            continue
        ratio = g / ideal
        if ratio < 0.5:
            small.append((layer["name"], ratio))
        elif ratio > 2.0:
            large.append((layer["name"], ratio))
    if direction == "small" and small:
        return [Cause("init_scale_too_small", f"{len(small)} layer(s) start with weights {_fmt_ratio(small)} "
                      "of the scale their activation needs (std·√fan_in vs calculate_gain)")]
    if direction == "large" and large:
        return [Cause("init_scale_too_large", f"{len(large)} layer(s) start with weights {_fmt_ratio(large)} "
                      "of the scale their activation needs (std·√fan_in vs calculate_gain)")]
    return []


def _fmt_ratio(items) -> str:
    r = np.median([x for _, x in items])
    return f"≈{r:.2g}×"


def zero_init(ctx: Context) -> list[Cause]:
    zeros = [layer["name"] for layer in ctx.model.get("layers", []) if layer.get("weight_std", 1.0) == 0.0]
    if zeros:
        return [Cause("zero_init", f"{len(zeros)} layer(s) start with constant weights (std 0): "
                      f"{', '.join(zeros[:4])}")]
    return []


def normalisation(ctx: Context) -> list[Cause]:
    if not ctx.model.get("norm_layers"):
        return [Cause("no_normalisation", "no BatchNorm/LayerNorm layer re-scales the signal between layers")]
    return []


def residual_stream(ctx: Context) -> list[Cause]:
    """Residual blocks (seen in a traced forward pass) adding to a stream no layer normalises:
    each block adds its branch's variance, so the stream and its gradients grow with depth
    (Zhang et al. 2019, Fixup §2).

    Example:
        >>> class _Ctx: model = {"residual_blocks": ["b.0", "b.1"], "norm_layers": []}
        >>> [c.id for c in residual_stream(_Ctx())]
        ['residual_without_normalisation']
    """
    blocks = ctx.model.get("residual_blocks") or []
    if blocks and not ctx.model.get("norm_layers"):
        return [Cause("residual_without_normalisation",
                      f"{len(blocks)} residual blocks add their branch to the stream and no layer normalises it: "
                      "with standard-init branches the stream's variance grows block after block")]
    return []


def residual(ctx: Context) -> list[Cause]:
    if ctx.model.get("class") == "Sequential" and len(ctx.layers) >= 8:
        return [Cause("no_residual", "a plain nn.Sequential chain: no skip path carries the gradient past layers")]
    return []


def recurrent_radius(ctx: Context, above: float = 1.0) -> list[Cause]:
    out = []
    for rec in ctx.model.get("recurrent", []):
        r = rec.get("spectral_radius")
        if r is not None and r > above:
            out.append(Cause("recurrent_spectral_radius",
                             f"{rec['name'] or 'the RNN'}: recurrent weights have spectral radius {r:.2f} > 1, "
                             "so the signal grows each time step"))
    return out


def relu_recurrence_first(ctx: Context, remedies: list[str]) -> list[str]:
    """Put ``irnn_init`` first when the recorded model has a plain ReLU recurrence.

    A ReLU RNN's natural start is the identity (Le et al. 2015), not a random orthogonal matrix,
    whose rotation lets ReLU zero half of the state at every step.

    Example:
        >>> class _Ctx: model = {"recurrent": [{"type": "RNN", "nonlinearity": "relu"}]}
        >>> relu_recurrence_first(_Ctx(), ["clip_grad_norm", "orthogonal_init"])
        ['irnn_init', 'clip_grad_norm', 'orthogonal_init']
    """
    relu = any(r.get("type") in ("RNN", "RNNCell") and r.get("nonlinearity") == "relu"
               for r in ctx.model.get("recurrent", []))
    return (["irnn_init"] + remedies) if relu else remedies


def small_recurrent_radius(ctx: Context, below: float = 1.0) -> list[Cause]:
    out = []
    for rec in ctx.model.get("recurrent", []):
        r = rec.get("spectral_radius")
        if r is not None and r < below and rec["type"] in ("RNN", "RNNCell"):
            out.append(Cause("recurrent_spectral_radius",
                             f"{rec['name'] or 'the RNN'}: recurrent spectral radius {r:.2f} < 1 shrinks the "
                             "gradient at every step back in time (Pascanu et al. 2013)"))
    return out


def learning_rate(ctx: Context) -> list[Cause]:
    opt = ctx.model.get("optimizer") or {}
    groups = opt.get("param_groups") or [{}]
    lr = groups[0].get("lr")
    if lr is None:
        return []
    return [Cause("learning_rate", f"{opt.get('class', 'the optimizer')} with lr={lr:g}")]


def mse_behind_sigmoid(ctx: Context) -> list[Cause]:
    g = ctx.loss_graph[:8]
    if any(n.startswith("MseLoss") or n.startswith("PowBackward") for n in g) and \
            any(n.startswith("SigmoidBackward") for n in g):
        return [Cause("mse_behind_sigmoid", "the loss is MSE on a sigmoid output: its gradient carries σ′, "
                      "≈0.02 for a saturated output (cross-entropy removes the factor)")]
    return []


def negative_bias(ctx: Context, names: list[str]) -> list[Cause]:
    """Layers feeding the given activation modules whose bias starts clearly negative."""
    neg = [layer["name"] for layer in ctx.model.get("layers", [])
           if layer.get("bias_mean") is not None and layer["bias_mean"] < -0.1 and
           layer.get("following_activation") in ("relu", "relu6")]
    if neg:
        return [Cause("negative_bias", f"{len(neg)} layer(s) before a ReLU start with a negative bias "
                      f"(e.g. {neg[0]}): units begin below zero and never fire")]
    return []


def post_ln_without_warmup(ctx: Context) -> list[Cause]:
    tl = ctx.model.get("transformer_layers", [])
    if not tl or not any(not t["norm_first"] for t in tl):
        return []
    lrs = ctx.steps["lr"].map(lambda v: v[0] if v else np.nan).to_numpy(dtype=float)
    lrs = lrs[np.isfinite(lrs)]
    warm = lrs.size > 2 and lrs[0] < 0.5 * np.nanmax(lrs[: max(3, lrs.size // 4)])
    if warm:
        return []
    return [Cause("post_ln", f"{sum(not t['norm_first'] for t in tl)} post-LN transformer layer(s) "
                  "(norm_first=False): the last layers' gradients are large at init (Xiong et al. 2020)"),
            Cause("no_warmup", "the learning rate starts at its full value: no warmup")]


def optimizer_plain_sgd(ctx: Context) -> list[Cause]:
    opt = ctx.model.get("optimizer") or {}
    if opt.get("class") == "SGD" and not (opt.get("param_groups") or [{}])[0].get("momentum"):
        return [Cause("plain_sgd", "plain SGD: one global step size for layers whose gradients differ by orders "
                      "of magnitude")]
    return []
