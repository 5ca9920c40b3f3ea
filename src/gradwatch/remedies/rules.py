"""Per-tensor initialisation rules: one weight tensor in, the rule applied out (as text).

Each rule acts in place under ``torch.no_grad()`` through ``torch.nn.init`` and returns a
short description for the report. ``auto_rule`` picks He or Xavier from the activation that
follows a layer; ``critical_rule`` scales orthogonal weights so that χ₁ = 1.

Example:
    >>> import torch
    >>> w = torch.empty(64, 32)
    >>> auto_rule(torch.nn.ReLU())(w)
    "kaiming_normal_(a=0, mode='fan_in', nonlinearity='relu')"
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..probes.activations import activation_name, family
from .critical import critical_point

Rule = Callable[[torch.Tensor], str]


def delta_orthogonal_(tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill a convolution weight with a delta-orthogonal kernel: zero everywhere except the
    spatial centre, which holds an orthogonal matrix times ``gain`` (Xiao et al. 2018,
    "Dynamical Isometry and a Mean Field Theory of CNNs", Algorithm 2).

    With ``out_channels >= in_channels`` and "same" padding the convolution is then an exact
    isometry at init: ``‖conv(x)‖ = gain·‖x‖`` for every input.

    Args:
        tensor: a weight of shape ``(out, in, *kernel)``, at least 3-D.
        gain: the scale of the orthogonal centre.

    Raises:
        ValueError: a tensor with fewer than 3 dimensions (use ``orthogonal_``).

    Example:
        >>> w = delta_orthogonal_(torch.empty(8, 8, 3, 3))
        >>> bool(torch.allclose(w[:, :, 1, 1] @ w[:, :, 1, 1].T, torch.eye(8), atol=1e-5))
        True
    """
    if tensor.dim() < 3:
        raise ValueError(f"delta_orthogonal_ needs a conv weight (out, in, *kernel); got shape {tuple(tensor.shape)}: "
                         "use torch.nn.init.orthogonal_ for matrices")
    centre = tuple(k // 2 for k in tensor.shape[2:])
    mat = torch.empty(tensor.shape[0], tensor.shape[1], dtype=tensor.dtype, device=tensor.device)
    nn.init.orthogonal_(mat, gain=gain, generator=generator)
    with torch.no_grad():
        tensor.zero_()
        tensor[(slice(None), slice(None)) + centre] = mat
    return tensor


def fans(w: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` as ``torch.nn.init`` computes them.

    Example:
        >>> fans(torch.empty(8, 4)), fans(torch.empty(16, 3, 3, 3))
        ((4, 8), (27, 144))
    """
    return nn.init._calculate_fan_in_and_fan_out(w)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def zeros_rule() -> Rule:
    """All zeros (every unit identical: kept for teaching).

    Example:
        >>> w = torch.ones(2, 2); zeros_rule()(w), w.tolist()
        ('zeros_', [[0.0, 0.0], [0.0, 0.0]])
    """
    return lambda w: (nn.init.zeros_(w), "zeros_")[1]


def normal_rule(scale: float, gen=None) -> Rule:
    """N(0, scale²).

    Example:
        >>> normal_rule(0.02)(torch.empty(4, 4))
        'normal_(std=0.02)'
    """
    return lambda w: (nn.init.normal_(w, 0.0, scale, generator=gen), f"normal_(std={_fmt(scale)})")[1]


def uniform_rule(scale: float, gen=None) -> Rule:
    """U(−scale, scale).

    Example:
        >>> w = torch.empty(4, 4); uniform_rule(0.1)(w), bool(w.abs().max() <= 0.1)
        ('uniform_(±0.1)', True)
    """
    return lambda w: (nn.init.uniform_(w, -scale, scale, generator=gen), f"uniform_(±{_fmt(scale)})")[1]


def xavier_rule(gain: float = 1.0, dist: str = "normal", gen=None) -> Rule:
    """Var = gain²·2/(fan_in + fan_out) (Glorot & Bengio 2010).

    Example:
        >>> xavier_rule(5 / 3, dist="uniform")(torch.empty(4, 4))
        'xavier_uniform_(gain=1.667)'
    """
    fn = nn.init.xavier_normal_ if dist == "normal" else nn.init.xavier_uniform_
    return lambda w: (fn(w, gain=gain, generator=gen), f"{fn.__name__}(gain={_fmt(gain)})")[1]


def he_rule(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu", dist: str = "normal", gen=None) -> Rule:
    """Var = gain²/fan with gain = √(2/(1+a²)) for (leaky) ReLU (He et al. 2015).

    Example:
        >>> he_rule(a=0.1)(torch.empty(4, 4))
        "kaiming_normal_(a=0.1, mode='fan_in', nonlinearity='leaky_relu')"
    """
    fn = nn.init.kaiming_normal_ if dist == "normal" else nn.init.kaiming_uniform_
    if a and nonlinearity == "relu":
        nonlinearity = "leaky_relu"

    def rule(w: torch.Tensor) -> str:
        fn(w, a=a, mode=mode, nonlinearity=nonlinearity, generator=gen)
        return f"{fn.__name__}(a={_fmt(a)}, mode={mode!r}, nonlinearity={nonlinearity!r})"
    return rule


def orthogonal_rule(gain: float = 1.0, gen=None, delta: bool = False) -> Rule:
    """Orthogonal times gain (Saxe et al. 2014); delta-orthogonal for conv kernels when ``delta``.

    Example:
        >>> orthogonal_rule(2.0)(torch.empty(4, 4)), orthogonal_rule(delta=True)(torch.empty(4, 4, 3, 3))
        ('orthogonal_(gain=2)', 'delta_orthogonal_(gain=1)')
    """
    def rule(w: torch.Tensor) -> str:
        if delta and w.dim() >= 3:
            delta_orthogonal_(w, gain, gen)
            return f"delta_orthogonal_(gain={_fmt(gain)})"
        nn.init.orthogonal_(w, gain=gain, generator=gen)
        return f"orthogonal_(gain={_fmt(gain)})"
    return rule


def negative_slope(act: nn.Module) -> float:
    """The slope below zero of a leaky ReLU-like module (0 for the others).

    Example:
        >>> negative_slope(nn.LeakyReLU(0.2)), negative_slope(nn.ReLU())
        (0.2, 0.0)
    """
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    if isinstance(act, nn.RReLU):
        return (act.lower + act.upper) / 2
    if isinstance(act, nn.PReLU):
        return float(act.weight.detach().float().mean())
    return 0.0


def auto_rule(act: nn.Module | None, gen=None) -> Rule:
    """He (Kaiming) for ReLU-like activations with their negative slope (He et al. 2015),
    LeCun normal for SELU (Klambauer et al. 2017), Xavier with ``calculate_gain`` for tanh- and
    sigmoid-like ones and for a linear output (Glorot & Bengio 2010).

    Example:
        >>> auto_rule(nn.Tanh())(torch.empty(4, 4)), auto_rule(None)(torch.empty(4, 4))
        ('xavier_normal_(gain=1.667)', 'xavier_normal_(gain=1)')
    """
    name = activation_name(act) if act is not None else ""
    fam = family(name)
    if name == "selu":
        return he_rule(0.0, "fan_in", "linear", gen=gen)
    if fam in ("relu", "leaky", "smooth"):
        return he_rule(negative_slope(act), "fan_in", "relu", gen=gen)
    if fam == "tanh":
        return xavier_rule(nn.init.calculate_gain("tanh"), gen=gen)
    return xavier_rule(1.0, gen=gen)


_CRITICAL: dict[tuple[str, float], float | None] = {}


def critical_sigma_w(act: nn.Module | None, sigma_b2: float) -> float | None:
    """√σ_w² at χ₁ = 1 for the activation module (None when there is no stable critical point).

    Example:
        >>> round(critical_sigma_w(nn.ReLU(), 0.0), 4)    # √2
        1.4142
    """
    key = (f"{act!r}:{negative_slope(act)}" if act is not None else "linear", float(sigma_b2))
    if key not in _CRITICAL:
        try:
            _CRITICAL[key] = math.sqrt(critical_point(act if act is not None else "linear", sigma_b2)[0])
        except ValueError:
            _CRITICAL[key] = None
    return _CRITICAL[key]


def critical_rule(act: nn.Module | None, sigma_b2: float, gen=None) -> Rule:
    """Orthogonal (delta-orthogonal for convolutions) with gain σ_w at χ₁ = 1, times
    √(fan_out/fan_in) when a layer widens, so each output unit keeps the variance q*
    (Schoenholz et al. 2017; Pennington et al. 2017; Xiao et al. 2018). Falls back to
    :func:`auto_rule` when the activation has no stable critical point at this σ_b².

    Example:
        >>> critical_rule(nn.ReLU(), 0.0)(torch.empty(8, 8))
        'orthogonal_(gain=1.414)  # σ_w²=2, χ₁=1'
    """
    sigma_w = critical_sigma_w(act, sigma_b2)
    if sigma_w is None:
        fallback = auto_rule(act, gen)
        return lambda w: fallback(w) + f"  # no critical point at σ_b²={sigma_b2}"

    def rule(w: torch.Tensor) -> str:
        rows, cols = w.shape[0], w.shape[1]
        widen = math.sqrt(max(1.0, rows / cols))
        orthogonal_rule(sigma_w * widen, gen, delta=True)(w)
        kind = "delta_orthogonal_" if w.dim() >= 3 else "orthogonal_"
        return f"{kind}(gain={_fmt(sigma_w * widen)})  # σ_w²={_fmt(sigma_w ** 2)}, χ₁=1"
    return rule
