"""Critical initialisation: the weight variance at the edge of chaos for any activation.

In a wide random network with weights W_ij ~ N(0, σ_w²/N) and biases b_i ~ N(0, σ_b²), the
pre-activation variance q of a layer obeys the map

    q^{l+1} = σ_w² · E_z[φ(√q^l · z)²] + σ_b²,     z ~ N(0, 1),

which settles at a fixed point q*. A small perturbation (and the back-propagated gradient)
is multiplied per layer by

    χ₁ = σ_w² · E_z[φ′(√q* · z)²].

χ₁ < 1 is the ordered phase (gradients vanish exponentially with depth), χ₁ > 1 the chaotic
one (they explode); at χ₁ = 1 signals travel arbitrarily deep (Poole et al. 2016; Schoenholz
et al. 2017, "Deep Information Propagation"). Requiring both equations at once gives one
equation in q alone,

    g(q) = E[φ(√q z)²] / E[φ′(√q z)²] + σ_b² − q = 0,    σ_w² = 1 / E[φ′(√q* z)²],

solved here by bracketing and bisection, with the Gaussian expectations by Gauss–Hermite
quadrature and φ′ by autograd, so any activation works. tanh: σ_b² = 0 → σ_w² = 1;
σ_b² = 0.05 → σ_w² ≈ 1.76. ReLU: σ_w² = 2 (He et al. 2015).

Example:
    >>> round(critical_sigma_w2("tanh", 0.05), 2)
    1.76
    >>> round(critical_sigma_w2("relu"), 3)
    2.0
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Union

import torch
from torch import nn

Activation = Union[str, nn.Module, Callable[[torch.Tensor], torch.Tensor], None]
_NODES = 4000


def activation_fn(activation: Activation) -> Callable[[torch.Tensor], torch.Tensor]:
    """A tensor function for an activation given by name (``"tanh"``, ``"leaky_relu"``…), module
    or callable; None / ``"linear"`` / ``"identity"`` is the identity.

    Raises:
        ValueError: an unknown name.

    Example:
        >>> activation_fn("leaky_relu")(torch.tensor([-1.0, 2.0])).tolist()
        [-0.009999999776482582, 2.0]
        >>> activation_fn(None)(torch.tensor([-3.0])).tolist()
        [-3.0]
    """
    if activation is None or activation in ("linear", "identity"):
        return lambda x: x
    if not isinstance(activation, str):
        return activation
    fn = getattr(torch.nn.functional, activation.lower(), None)
    if fn is None or not callable(fn):
        raise ValueError(f"unknown activation {activation!r}; pass a torch.nn.functional name "
                         "('tanh', 'relu', 'gelu'…), an nn.Module or a callable")
    return fn


@functools.lru_cache(maxsize=1)
def _rule() -> tuple[torch.Tensor, torch.Tensor]:
    # midpoint rule on z in [-10, 10], weights N(z) normalised to sum 1: exponentially accurate
    # for Gaussian integrals, symmetric (no node at 0: ReLU's kink integrates exactly), and fine
    # enough (Δz = 0.005) to resolve φ′(√q·z) up to q ≈ 10³, where a Gauss–Hermite rule of a
    # few hundred nodes already misses the narrow bump of tanh′ or σ′
    z = (torch.arange(_NODES, dtype=torch.float64) + 0.5) * (20.0 / _NODES) - 10.0
    w = torch.exp(-0.5 * z * z)
    return z, w / w.sum()


def gaussian_moments(activation: Activation, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[φ(√q z)²], E[φ′(√q z)²])`` for each variance in ``q`` (float64), z ~ N(0, 1).

    Example:
        >>> m2, d2 = gaussian_moments("relu", torch.tensor([4.0]))
        >>> round(float(m2[0]), 9), round(float(d2[0]), 9)
        (2.0, 0.5)
    """
    fn = activation_fn(activation)
    nodes, weights = _rule()
    q = torch.as_tensor(q, dtype=torch.float64).reshape(-1, 1)
    with torch.enable_grad():
        h = (q.sqrt() * nodes).requires_grad_(True)
        y = fn(h)
        (dy,) = torch.autograd.grad(y.sum(), h, allow_unused=True)
    dy = torch.zeros_like(h) if dy is None else dy
    return (y.detach() ** 2 * weights).sum(-1), (dy ** 2 * weights).sum(-1)


def fixed_point_q(activation: Activation, sigma_w2: float, sigma_b2: float = 0.0,
                  q0: float = 1.0, iters: int = 500) -> float:
    """The fixed point q* of the variance map, by iterating it from ``q0``.

    Example:
        >>> round(fixed_point_q("relu", 2.0, 0.0, q0=3.0), 6)  # ReLU at σ_w² = 2 keeps any q
        3.0
    """
    q = float(q0)
    for _ in range(iters):
        m2, _ = gaussian_moments(activation, torch.tensor([q]))
        nxt = sigma_w2 * float(m2[0]) + sigma_b2
        if not math.isfinite(nxt) or abs(nxt - q) <= 1e-12 * max(1.0, q):
            return nxt
        q = nxt
    return q


def chi1(activation: Activation, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """χ₁ = σ_w²·E[φ′(√q* z)²] at the fixed point reached from q = 1 (1 = critical).

    Example:
        >>> round(chi1("tanh", 1.0, 0.0), 2)  # q* → 0, where tanh′ = 1
        1.0
    """
    q = fixed_point_q(activation, sigma_w2, sigma_b2)
    _, d2 = gaussian_moments(activation, torch.tensor([q]))
    return sigma_w2 * float(d2[0])


def critical_point(activation: Activation, sigma_b2: float = 0.0) -> tuple[float, float]:
    """``(σ_w², q*)`` with χ₁ = 1 at a stable fixed point q* (Schoenholz et al. 2017).

    ``q*`` is 0 when the solution sits at vanishing variance (tanh with σ_b² = 0), ``inf``
    when the variance grows without bound while χ₁ → 1 (ReLU with σ_b² > 0: σ_w² is the
    limit value), and any q works for homogeneous activations (ReLU, leaky ReLU, linear:
    ``q*`` is reported as 1).

    Raises:
        ValueError: ``sigma_b2`` negative, φ′ vanishes, or no critical point exists (GELU or
            SiLU with σ_b² = 0: give them a bias variance).

    Example:
        >>> [round(v, 3) for v in critical_point("relu")]        # He: σ_w² = 2, any q (reported as 1)
        [2.0, 1.0]
    """
    if sigma_b2 < 0:
        raise ValueError(f"sigma_b2 must be >= 0, got {sigma_b2}")
    grid = torch.logspace(-6, 3, 361, dtype=torch.float64)
    m2, d2 = gaussian_moments(activation, grid)
    if not bool((d2 > 0).all()):
        raise ValueError("the activation's derivative vanishes for some input variance; no critical point exists")
    g = m2 / d2 + sigma_b2 - grid
    tol = 1e-9 * grid.clamp(min=1.0)
    if bool((g.abs() <= tol).all()):  # homogeneous: every q is a fixed point, χ₁ does not depend on q
        return 1.0 / float(gaussian_moments(activation, torch.tensor([1.0]))[1][0]), 1.0
    pos = g > tol
    for i in (pos[:-1] & ~pos[1:]).nonzero().flatten().tolist():  # g crosses zero from above
        q = _bisect(activation, sigma_b2, float(grid[i]), float(grid[i + 1]))
        sw2 = 1.0 / float(gaussian_moments(activation, torch.tensor([q]))[1][0])
        m, _ = gaussian_moments(activation, torch.tensor([q * 0.999, q * 1.001]))
        if sw2 * float(m[1] - m[0]) / (0.002 * q) < 1.0:  # the variance map contracts: q* is reached
            return sw2, q
    if bool(pos.all()):
        return 1.0 / float(d2[-1]), math.inf
    if not bool(pos.any()):  # g ≤ 0 everywhere: q* = 0 if the variance map contracts towards it
        # φ′ just beside 0 (q = 1e-12, no node at 0): the mean of both sides at a kink (SELU)
        sw2 = 1.0 / float(gaussian_moments(activation, torch.tensor([1e-12]))[1][0])
        m, _ = gaussian_moments(activation, torch.tensor([1e-3]))
        if sw2 * float(m[0]) + sigma_b2 < 1e-3:
            return sw2, 0.0
    name = activation if isinstance(activation, str) else type(activation).__name__
    raise ValueError(f"{name} has no stable critical point with sigma_b2={sigma_b2}: the variance runs away "
                     "from where χ₁ = 1; try a larger sigma_b2 (e.g. 0.5) or use He init")


def _bisect(activation: Activation, sigma_b2: float, lo: float, hi: float) -> float:
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        m, d = gaussian_moments(activation, torch.tensor([mid]))
        lo, hi = (mid, hi) if float(m[0] / d[0]) + sigma_b2 - mid > 0 else (lo, mid)
    return math.sqrt(lo * hi)


def critical_sigma_w2(activation: Activation, sigma_b2: float = 0.0) -> float:
    """The weight variance σ_w² (per fan-in) at which χ₁ = 1 for ``activation`` and bias
    variance ``sigma_b2`` (Schoenholz et al. 2017; Poole et al. 2016).

    Args:
        activation: a ``torch.nn.functional`` name, an ``nn.Module`` or a tensor function.
        sigma_b2: the variance of the biases.

    Returns:
        σ_w²; weights ~ N(0, σ_w²/fan_in), or orthogonal with gain √σ_w² (Pennington et al. 2017).

    Example:
        >>> round(critical_sigma_w2("tanh"), 3)
        1.0
    """
    return critical_point(activation, sigma_b2)[0]


def critical_for_q(activation: Activation, q_star: float) -> tuple[float, float]:
    """``(σ_w², σ_b²)`` that put the variance map's fixed point at ``q_star`` with χ₁ = 1.

    Both mean-field equations solved for the variances instead of for q*:
    σ_w² = 1 / E[φ′(√q* z)²] (χ₁ = 1) and σ_b² = q* − σ_w²·E[φ(√q* z)²] (q* is a fixed point).
    Pennington, Schoenholz & Ganguli 2017 ("Resurrecting the sigmoid in deep learning through
    dynamical isometry") choose q* this way: for an orthogonal network at χ₁ = 1 the variance of
    the input–output Jacobian's squared singular values is L·(μ₂/μ₁² − 1), μ_k = E[φ′(√q* z)^{2k}],
    which for tanh is ≈ 8·L·q*², so a small q* keeps the spectrum concentrated at depth L while
    the signal no longer decays to zero (Xiao et al. 2018 do the same for 10,000-layer CNNs).
    For tanh σ_b² ≈ (4/3)·q*³ at small q*, so the biases are tiny.

    Args:
        activation: a ``torch.nn.functional`` name, an ``nn.Module`` or a tensor function.
        q_star: the target pre-activation variance (> 0).

    Returns:
        ``(σ_w², σ_b²)``: weights orthogonal with gain √σ_w² (or N(0, σ_w²/fan_in)), biases N(0, σ_b²).

    Raises:
        ValueError: ``q_star`` not positive, φ′ vanishing, or q* not reachable at χ₁ = 1 for this
            activation (σ_b² would be negative: sigmoid, whose mean φ(0) = ½ alone gives
            σ_w²·E[φ²] > q*).

    Example:
        >>> sw2, sb2 = critical_for_q("tanh", 0.5)
        >>> round(sw2, 3), round(sb2, 4)
        (1.688, 0.038)
        >>> round(fixed_point_q("tanh", sw2, sb2), 6), round(chi1("tanh", sw2, sb2), 6)
        (0.5, 1.0)
    """
    if not (isinstance(q_star, (int, float)) and math.isfinite(q_star) and q_star > 0):
        raise ValueError(f"q_star must be a positive number, got {q_star!r}")
    m2, d2 = gaussian_moments(activation, torch.tensor([float(q_star)], dtype=torch.float64))
    if not float(d2[0]) > 0:
        raise ValueError("the activation's derivative vanishes at this variance; no critical point exists")
    sigma_w2 = 1.0 / float(d2[0])
    sigma_b2 = float(q_star) - sigma_w2 * float(m2[0])
    if sigma_b2 < -1e-12 * max(1.0, float(q_star)):
        name = activation if isinstance(activation, str) else type(activation).__name__
        raise ValueError(f"q_star={q_star} is not reachable at χ₁ = 1 for {name}: it needs sigma_b2={sigma_b2:.3g} < 0; "
                         "pick another q_star or use critical_point(activation, sigma_b2)")
    return sigma_w2, max(sigma_b2, 0.0)
