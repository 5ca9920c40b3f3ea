"""What an activation is, and the statistics of its output that tell saturation and death.

Saturating families: sigmoid-like (outputs in (0, 1), flat tails below 0.02 and above 0.98)
and tanh-like (outputs in (−1, 1), flat where |a| > 0.98). ReLU-like units are "dead" when
they output ≤ 0 for every input over a window (their gradient is 0, or tiny for leaky ones).

Example:
    >>> import torch
    >>> activation_name(torch.nn.Sigmoid()), family("sigmoid")
    ('sigmoid', 'sigmoid')
    >>> s = output_stats(torch.sigmoid(torch.tensor([[-9.0, 0.0], [9.0, 0.0]])), "sigmoid")
    >>> float(s["act_sat"])
    0.5
"""

from __future__ import annotations

import torch
from torch import nn

#: module class -> activation name
MODULE_ACTIVATIONS: dict[type, str] = {
    nn.Sigmoid: "sigmoid", nn.Hardsigmoid: "hardsigmoid", nn.LogSigmoid: "logsigmoid",
    nn.Tanh: "tanh", nn.Hardtanh: "hardtanh", nn.Softsign: "softsign",
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu",
    nn.RReLU: "rrelu", nn.ELU: "elu", nn.SELU: "selu", nn.CELU: "celu", nn.GELU: "gelu",
    nn.SiLU: "silu", nn.Mish: "mish", nn.Softplus: "softplus", nn.Hardswish: "hardswish",
    nn.Threshold: "threshold",
}

#: functional calls recognised on the statistics steps (torch function -> name)
FUNCTIONAL_ACTIVATIONS: dict[object, str] = {
    torch.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid", torch.nn.functional.sigmoid: "sigmoid",
    torch.tanh: "tanh", torch.Tensor.tanh: "tanh", torch.nn.functional.tanh: "tanh",
    torch.relu: "relu", torch.Tensor.relu: "relu", torch.nn.functional.relu: "relu",
    torch.nn.functional.relu6: "relu6", torch.nn.functional.leaky_relu: "leaky_relu",
    torch.nn.functional.elu: "elu", torch.nn.functional.selu: "selu", torch.nn.functional.gelu: "gelu",
    torch.nn.functional.silu: "silu", torch.nn.functional.softplus: "softplus",
    torch.nn.functional.hardtanh: "hardtanh", torch.nn.functional.softsign: "softsign",
    torch.nn.functional.mish: "mish",
}

_FAMILY = {
    "sigmoid": "sigmoid", "hardsigmoid": "sigmoid",
    "tanh": "tanh", "hardtanh": "tanh", "softsign": "tanh",
    "relu": "relu", "relu6": "relu", "threshold": "relu",
    "leaky_relu": "leaky", "prelu": "leaky", "rrelu": "leaky",
    "elu": "smooth", "selu": "smooth", "celu": "smooth", "gelu": "smooth", "silu": "smooth",
    "mish": "smooth", "softplus": "smooth", "hardswish": "smooth", "logsigmoid": "smooth",
}

SATURATION_TAIL = 0.02  # sigmoid tails: a < 0.02 or a > 0.98 (σ′ < 0.0196); tanh: |a| > 0.98


def activation_name(module: nn.Module) -> str:
    """The activation a module applies (``""`` when it is not an activation module)."""
    for cls in type(module).__mro__:
        if cls in MODULE_ACTIVATIONS:
            return MODULE_ACTIVATIONS[cls]
    return ""


def family(name: str) -> str:
    """``sigmoid``, ``tanh`` (saturating), ``relu`` (hard zero), ``leaky``, ``smooth`` or ``""``."""
    return _FAMILY.get(name, "")


def unit_dim(out: torch.Tensor) -> int:
    """The dimension that indexes units: channels for images (N, C, H, W), else the last."""
    return 1 if out.dim() >= 4 else out.dim() - 1


@torch.no_grad()
def output_stats(out: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
    """Batch statistics of an activation output, as 0-d tensors on its device (no host sync).

    Returns act_mean, act_std, act_sat (fraction in the flat tails; NaN for non-saturating
    families), act_zero, act_nonfinite, and ``fired`` (bool per unit: output > 0 somewhere).
    """
    x = out.detach()
    if x.is_complex() or x.numel() == 0:
        return {}
    x = x.float()
    fam = family(name)
    stats: dict[str, torch.Tensor] = {
        "act_mean": x.mean(),
        "act_std": x.std(unbiased=False) if x.numel() > 1 else torch.zeros((), device=x.device),
        "act_zero": (x == 0).float().mean(),
        "act_nonfinite": (~torch.isfinite(x)).sum().float(),
    }
    if fam == "sigmoid":
        stats["act_sat"] = ((x < SATURATION_TAIL) | (x > 1 - SATURATION_TAIL)).float().mean()
    elif fam == "tanh":
        stats["act_sat"] = (x.abs() > 1 - SATURATION_TAIL).float().mean()
    if x.dim() >= 2:
        d = unit_dim(x)
        units = x.movedim(d, -1).reshape(-1, x.shape[d])
        if fam in ("relu", "leaky", "smooth"):
            stats["fired"] = (units > 0).any(dim=0)
        stats["act_identical"] = identical_fraction(units.T)
    return stats


def identical_fraction(rows: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
    """Fraction of rows that equal another row, estimated from a random projection.

    Two identical rows project to the same number; distinct rows almost never do: rows count as
    twins when their projections differ by at most ``rtol`` of the largest projection. One
    matrix-vector product and a sort: O(rows × cols), no host sync.

    Example:
        >>> float(identical_fraction(torch.zeros(4, 3)))
        1.0
        >>> float(identical_fraction(torch.eye(4)))
        0.0
    """
    n = rows.shape[0]
    if n < 2:
        return torch.zeros((), device=rows.device)
    m = rows.reshape(n, -1).float()
    gen = torch.Generator(device="cpu").manual_seed(1234)
    r = torch.randn(m.shape[1], generator=gen, dtype=torch.float32).to(m.device)
    r2 = torch.randn(m.shape[1], generator=gen, dtype=torch.float32).to(m.device)
    sig = m @ r + 1e-3 * (m @ r2)
    s, _ = torch.sort(sig)
    scale = sig.abs().amax() + 1e-30
    close = (s[1:] - s[:-1]).abs() <= rtol * scale
    twin = torch.zeros(n, dtype=torch.bool, device=m.device)
    twin[1:] |= close
    twin[:-1] |= close
    return twin.float().mean()
