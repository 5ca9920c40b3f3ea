"""A plain-data description of a model and its optimizer, taken when watching begins.

The diagnosis reads causes from it: which activation follows each layer, the layer's measured
init gain against the Xavier/He value, normalisation and recurrent weights' spectral radius,
transformer layers' LayerNorm placement, the optimizer and its hyperparameters.

Example:
    >>> from torch import nn
    >>> info = describe_model(nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2)))
    >>> info["layers"][0]["following_activation"]
    'sigmoid'
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .activations import activation_name

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_RMSNORM = getattr(nn, "RMSNorm", None)
#: modules that sit between a layer and its activation without changing which one it is
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
                 nn.Flatten, nn.Unflatten, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                 nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)

#: weight layers an init policy acts on and whose following activation matters
WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)


def is_norm(m: nn.Module) -> bool:
    """Whether a module is a normalisation layer (BatchNorm, LayerNorm, GroupNorm, RMSNorm…)."""
    return isinstance(m, _NORMS) or (_RMSNORM is not None and isinstance(m, _RMSNORM))


def module_kind(m: nn.Module) -> str:
    """``activation``, ``norm``, ``recurrent``, ``attention``, ``loss``, ``param`` (owns
    parameters), ``container`` or ``other``."""
    if activation_name(m):
        return "activation"
    if is_norm(m):
        return "norm"
    if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
        return "recurrent"
    if isinstance(m, nn.MultiheadAttention):
        return "attention"
    if isinstance(m, nn.modules.loss._Loss):
        return "loss"
    if any(True for _ in m.parameters(recurse=False)):
        return "param"
    if any(True for _ in m.children()):
        return "container"
    return "other"


def is_leaf(m: nn.Module) -> bool:
    """Whether a module has no child modules."""
    return next(iter(m.children()), None) is None


def following_modules(model: nn.Module) -> dict[str, nn.Module | None]:
    """For each weight layer, the activation *module* that comes next (skipping norms, dropout,
    pooling), or None when the next computing module is another layer or there is none.

    Example:
        >>> from torch import nn
        >>> following_modules(nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(0.2)))
        {'0': LeakyReLU(negative_slope=0.2)}
    """
    leaves = [(n, m) for n, m in model.named_modules() if is_leaf(m)]
    out: dict[str, nn.Module | None] = {}
    for i, (name, m) in enumerate(leaves):
        if not (isinstance(m, WEIGHT_LAYERS) and isinstance(getattr(m, "weight", None), nn.Parameter)):
            continue
        act = None
        for _, nxt in leaves[i + 1:]:
            if activation_name(nxt):
                act = nxt
                break
            if not (is_norm(nxt) or isinstance(nxt, _PASS_THROUGH)):
                break
        out[name] = act
    return out


def following_activation(model: nn.Module) -> dict[str, str | None]:
    """For each weight layer, the name of the activation that follows it (``"relu"``,
    ``"tanh"``, ``"leaky_relu"``…) or None (a linear output, or another layer next).

    The rule: the next leaf module in registration order of ``named_modules()``, skipping
    normalisation, dropout, pooling and flatten; anything else ends the search. The watcher's
    model description and the remedies both use it, so diagnosis and remedies agree.
    Functional calls inside ``forward`` are not visible here.

    Example:
        >>> from torch import nn
        >>> following_activation(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.ReLU()))
        {'0': 'relu'}
    """
    return {k: (activation_name(v) if v is not None else None) for k, v in following_modules(model).items()}


def _is_weight_layer(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.Embedding))


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as torch.nn.init computes them."""
    if weight.dim() < 2:
        return weight.numel(), weight.numel()
    return nn.init._calculate_fan_in_and_fan_out(weight)


@torch.no_grad()
def spectral_radius(w: torch.Tensor) -> float:
    """Largest |eigenvalue| of a square matrix (the recurrent gain per step)."""
    try:
        return float(torch.linalg.eigvals(w.detach().float().cpu()).abs().max())
    except RuntimeError:
        return float("nan")


@torch.no_grad()
def describe_model(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Describe layers, activations, init gains, norms, recurrences and the optimizer.

    Example:
        >>> from torch import nn
        >>> describe_model(nn.Linear(3, 3))["n_params"]
        12
    """
    follow = following_activation(model)
    layers, recurrent, transformer = [], [], []
    counts: dict[str, int] = {}
    for name, m in model.named_modules():
        act = activation_name(m)
        if act:
            counts[act] = counts.get(act, 0) + 1
        if _is_weight_layer(m) and getattr(m, "weight", None) is not None:
            w = m.weight
            if w.is_meta or w.is_complex() or w.numel() == 0:
                continue
            fan_in, fan_out = fans(w)
            std = float(w.float().std()) if w.numel() > 1 else 0.0
            bias = getattr(m, "bias", None)
            layers.append({
                "name": name, "type": type(m).__name__, "fan_in": fan_in, "fan_out": fan_out,
                "weight_std": std, "weight_mean": float(w.float().mean()),
                "gain": std * math.sqrt(fan_in),
                "following_activation": follow.get(name),
                "bias_mean": float(bias.float().mean()) if isinstance(bias, torch.Tensor) and bias.numel() else None,
                "bias_min": float(bias.float().min()) if isinstance(bias, torch.Tensor) and bias.numel() else None,
            })
        if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
            recurrent.append(_describe_recurrent(name, m))
        if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            transformer.append({"name": name, "norm_first": bool(m.norm_first)})
    params = [p for p in model.parameters()]
    return {
        "class": type(model).__name__,
        "n_params": int(sum(p.numel() for p in params if not p.is_meta)),
        "n_tensors": len(params),
        "activations": counts,
        "norm_layers": [n for n, m in model.named_modules() if is_norm(m)],
        "layers": layers,
        "recurrent": recurrent,
        "transformer_layers": transformer,
        "depth": len(layers),
        "optimizer": describe_optimizer(optimizer),
    }


def _describe_recurrent(name: str, m: nn.Module) -> dict[str, Any]:
    kind = type(m).__name__
    nonlin = getattr(m, "nonlinearity", "tanh") if kind in ("RNN", "RNNCell") else kind.lower()
    h = m.hidden_size
    radii = []
    for pname, p in m.named_parameters(recurse=False):
        if pname.startswith("weight_hh") and p.dim() == 2 and not p.is_meta:
            gates = p.shape[0] // h
            radii.append(max(spectral_radius(p[g * h:(g + 1) * h, :h]) for g in range(gates)))
    return {"name": name, "type": kind, "nonlinearity": nonlin, "hidden_size": h,
            "spectral_radius": max(radii) if radii else None}


def describe_optimizer(opt: torch.optim.Optimizer | None) -> dict[str, Any] | None:
    """Optimizer class and its param groups' hyperparameters (numbers only)."""
    if opt is None:
        return None
    groups = []
    for g in opt.param_groups:
        h = {}
        for k, v in g.items():
            if k == "params":
                continue
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = float(v)
            if isinstance(v, (int, float, bool, str)) or v is None:
                h[k] = v
            elif isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v):
                h[k] = list(v)
        groups.append(h)
    return {"class": type(opt).__name__, "param_groups": groups}
