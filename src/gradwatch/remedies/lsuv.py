"""Layer-sequential unit-variance (LSUV) rescaling: data-driven init, one layer at a time.

Mishkin & Matas 2016, "All you need is a good init": start from orthonormal weights, then for
each layer in forward order pass a batch through the network and divide the layer's weights
by the standard deviation of its output until the output variance is 1 ± tol (at most
``max_iter`` passes). Later layers are rescaled after earlier ones, so every layer sees inputs
that already have the right scale.

The forward pass stops at the layer being measured (a hook raises), and buffers such as
BatchNorm's running statistics are put back afterwards, so nothing but the weights changes.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> m = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))
    >>> res = lsuv_rescale(m, torch.randn(256, 10) * 5)
    >>> [round(v, 1) for _, v, _ in res]
    [1.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .layers import weight_layers


class _Stop(Exception):
    """Raised by the measuring hook to end the forward pass at the layer measured."""


def _call(model: nn.Module, data: Any) -> None:
    if isinstance(data, dict):
        model(**data)
    elif isinstance(data, (tuple, list)):
        model(*data)
    else:
        model(data)


def layer_output(model: nn.Module, layer: nn.Module, data: Any) -> torch.Tensor | None:
    """The output of ``layer`` on its first call when ``model`` runs on ``data`` (None when it
    is not called); the rest of the forward pass is skipped.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
        >>> layer_output(m, m[0], torch.randn(5, 10)).shape, layer_output(m, torch.nn.ReLU(), torch.randn(5, 10))
        (torch.Size([5, 32]), None)
    """
    seen: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        seen.append(out[0] if isinstance(out, tuple) else out)
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        _call(model, data)
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen[0] if seen else None


@torch.no_grad()
def lsuv_rescale(model: nn.Module, data: Any, tol: float = 0.1, max_iter: int = 10) -> list[tuple[str, float | None, int]]:
    """Rescale each weight layer (in registration order) to unit output variance on ``data``.

    Args:
        model: the model, already orthogonally initialised (``apply(model, "lsuv", ...)``
            does both steps).
        data: one batch of inputs: a tensor, a tuple of positional inputs, or a dict of
            keyword inputs.
        tol: stop when ``|Var − 1| < tol``.
        max_iter: at most this many rescalings per layer.

    Returns:
        ``(layer name, final output variance or None if the layer never ran, rescalings)``.

    Raises:
        ValueError: ``tol`` not positive or ``max_iter`` below 1.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
        >>> [(name, abs(var - 1) < 0.1) for name, var, _ in lsuv_rescale(m, torch.randn(128, 10) * 3)]
        [('0', True), ('2', True)]
    """
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"lsuv needs tol > 0 and max_iter >= 1; got tol={tol}, max_iter={max_iter}")
    saved = {n: b.detach().clone() for n, b in model.named_buffers()}
    results: list[tuple[str, float | None, int]] = []
    try:
        for name, layer in weight_layers(model):
            var, iters = None, 0
            for it in range(max_iter + 1):
                out = layer_output(model, layer, data)
                if out is None:
                    break
                var = float(out.detach().float().var())
                if abs(var - 1.0) < tol or it == max_iter or not math.isfinite(var) or var < 1e-20:
                    break
                layer.weight.div_(math.sqrt(var))
                iters += 1
            results.append((name, var, iters))
    finally:
        buffers = dict(model.named_buffers())
        for n, b in saved.items():
            buffers[n].copy_(b)
    return results
