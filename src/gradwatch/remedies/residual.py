"""Residual connections: ``x + f(x)`` and ReZero's ``x + α·f(x)``, and finding where they fit.

A residual connection gives the gradient a path around every block, so it reaches the first
layers undiminished however deep the stack (He et al. 2016); with random weights the
correlation of gradients decays like 1/√L instead of 2^−L (Balduzzi et al. 2017). ReZero
starts every block as the identity with a learnable scalar α = 0 and trains networks of
hundreds of layers without normalisation or warmup (Bachlechner et al. 2020).

A *same-shape block* of an ``nn.Sequential`` is a layer whose output has the shape of its
input — ``Linear(n, n)``, or a stride-1 ``Conv`` with as many output as input channels and
"same" padding — followed by optional normalisation/dropout and an activation.

Example:
    >>> import torch
    >>> from torch import nn
    >>> seq = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> wrap_blocks(seq, ReZero)
    ['2']
    >>> seq[2]
    ReZero(alpha=0, block=Sequential(Linear(8→8), ReLU))
    >>> seq(torch.randn(4, 3)).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..probes.activations import activation_name
from ..probes.model_info import is_norm

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)


class Residual(nn.Module):
    """``x + fn(x)``: the block ``fn`` must keep the shape of its input (He et al. 2016).

    Example:
        >>> import torch
        >>> r = Residual(torch.nn.Linear(4, 4))
        >>> r(torch.zeros(2, 4)).shape
        torch.Size([2, 4])
    """

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x + self.fn(x, *args, **kwargs)


class ReZero(nn.Module):
    """``x + α·block(x)`` with a learnable scalar α, 0 at the start, so every block begins as
    the identity and the signal passes the whole depth unchanged (Bachlechner et al. 2020).

    Args:
        block: a module that keeps the shape of its input.
        alpha: the starting value of α (0 in the paper).

    Example:
        >>> import torch
        >>> z = ReZero(torch.nn.Linear(4, 4))
        >>> x = torch.randn(2, 4)
        >>> bool(torch.equal(z(x), x))
        True
    """

    def __init__(self, block: nn.Module, alpha: float = 0.0) -> None:
        super().__init__()
        self.block = block
        ref = next(block.parameters(), None)
        self.alpha = nn.Parameter(torch.full((), float(alpha), dtype=ref.dtype if ref is not None else None,
                                             device=ref.device if ref is not None else None))

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x + self.alpha * self.block(x, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha.detach()):.3g}"

    def __repr__(self) -> str:  # one line: the block is usually a short Sequential
        inner = ", ".join(_short(m) for m in self.block.children()) if isinstance(self.block, nn.Sequential) \
            else _short(self.block)
        kind = "Sequential(" + inner + ")" if isinstance(self.block, nn.Sequential) else inner
        return f"ReZero({self.extra_repr()}, block={kind})"


def _short(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}→{m.out_features})"
    return type(m).__name__


def is_same_shape_layer(m: nn.Module) -> bool:
    """Whether a layer's output has its input's shape (``Linear(n, n)``, or a stride-1 conv with
    equal channels, no dilation-changing padding and "same" padding).

    Example:
        >>> is_same_shape_layer(nn.Linear(4, 4)), is_same_shape_layer(nn.Linear(4, 2))
        (True, False)
        >>> is_same_shape_layer(nn.Conv2d(3, 3, 3, padding=1)), is_same_shape_layer(nn.Conv2d(3, 3, 3, stride=2))
        (True, False)
    """
    if isinstance(m, nn.Linear):
        return m.in_features == m.out_features
    if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
        if m.in_channels != m.out_channels or any(s != 1 for s in m.stride):
            return False
        if m.padding == "same":
            return True
        if isinstance(m.padding, str):
            return False
        return all(p == d * (k - 1) // 2 and (d * (k - 1)) % 2 == 0
                   for p, d, k in zip(m.padding, m.dilation, m.kernel_size))
    return False


def block_end(children: list[nn.Module], i: int) -> int | None:
    """The index of the activation that closes a same-shape block starting at ``children[i]``,
    or None when no block starts there.

    Example:
        >>> kids = [nn.Linear(4, 4), nn.Dropout(), nn.ReLU(), nn.Linear(4, 2)]
        >>> block_end(kids, 0), block_end(kids, 3)
        (2, None)
    """
    if not is_same_shape_layer(children[i]):
        return None
    for j in range(i + 1, len(children)):
        m = children[j]
        if activation_name(m):
            return j
        if not (is_norm(m) or isinstance(m, _DROPOUT)):
            return None
    return None


def wrap_blocks(seq: nn.Sequential, wrapper: Callable[[nn.Module], nn.Module] = Residual) -> list[str]:
    """Wrap every same-shape block of ``seq`` in ``wrapper`` (in place); returns the names the
    wrappers got. Numeric keys are renumbered; named keys keep the block's first name.

    Example:
        >>> seq = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> wrap_blocks(seq), type(seq[2]).__name__, len(seq)
        (['2'], 'Residual', 4)
    """
    items = list(seq._modules.items())
    mods = [m for _, m in items]
    numeric = all(k.isdigit() for k, _ in items)
    out: list[tuple[str, nn.Module]] = []
    wrapped: list[str] = []
    i = 0
    while i < len(items):
        j = block_end(mods, i)
        if j is None:
            out.append(items[i])
            i += 1
            continue
        out.append((items[i][0], wrapper(nn.Sequential(*mods[i:j + 1]))))
        wrapped.append(len(out) - 1)
        i = j + 1
    seq._modules.clear()
    names = []
    for k, (name, m) in enumerate(out):
        key = str(k) if numeric else name
        seq.add_module(key, m)
        names.append(key)
    return [names[k] for k in wrapped]


def residual_sequentials(model: nn.Module) -> list[tuple[str, nn.Sequential]]:
    """Every ``nn.Sequential`` in the model that is not already the inside of a residual wrapper.

    Example:
        >>> model = nn.Sequential(Residual(nn.Sequential(nn.Linear(4, 4), nn.ReLU())), nn.Sequential(nn.Linear(4, 2)))
        >>> [name for name, _ in residual_sequentials(model)]
        ['', '1']
    """
    inside = {id(m.fn) for m in model.modules() if isinstance(m, Residual)}
    inside |= {id(m.block) for m in model.modules() if isinstance(m, ReZero)}
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Sequential) and id(m) not in inside]


def residual_branches(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, branch)`` for every :class:`Residual` / :class:`ReZero` wrapper in the model.

    Example:
        >>> model = nn.Sequential(Residual(nn.Linear(4, 4)), ReZero(nn.Linear(4, 4)))
        >>> [name for name, _ in residual_branches(model)]
        ['0.fn', '1.block']
    """
    out = []
    for n, m in model.named_modules():
        if isinstance(m, Residual):
            out.append((f"{n}.fn" if n else "fn", m.fn))
        elif isinstance(m, ReZero):
            out.append((f"{n}.block" if n else "block", m.block))
    return out
