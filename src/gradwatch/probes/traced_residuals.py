"""Which modules are residual blocks — ``x + f(x)`` written in ``forward`` — seen in one forward pass.

A residual block in user code is rarely a wrapper class: it is a module whose ``forward`` adds
its own input to what its layers made of it (``return x + self.b(F.relu(self.a(x)))``). Module
order cannot see that. :func:`traced_residual_blocks` runs the model once on an example input
(no_grad, eval mode, random generators restored: no side effect on training) with a forward
pre-hook on every module that remembers its input, and a ``TorchFunctionMode`` that watches
additions: an addition of a module's own input tensor to a tensor of the same shape, inside that
module's forward, makes it a residual block. Only modules that own weight layers count (the
branch must have something to initialise), and the root is never one (a model-wide skip is not a
block of a stack).

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
    ...     def forward(self, x):
    ...         return x + self.b(torch.relu(self.a(x)))
    >>> net = nn.Sequential(nn.Linear(3, 4), Block(), Block(), nn.Linear(4, 2))
    >>> traced_residual_blocks(net, torch.randn(2, 3))
    ['1', '2']
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .model_info import WEIGHT_LAYERS
from .traced_activations import run_traced

_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.add_,
         torch.Tensor.__iadd__, operator.add}


class _Adds(TorchFunctionMode):
    def __init__(self, stack: list) -> None:
        super().__init__()
        self.stack = stack            # [(name, input tensor)] of the modules whose forward is running
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _ADDS and len(args) >= 2 and self.stack:
            name, x = self.stack[-1]
            a, b = args[0], args[1]
            if name is not None and x is not None and (a is x or b is x) and isinstance(out, torch.Tensor) \
                    and isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
                    and name not in self.found:
                self.found.append(name)
        return out


def traced_residual_blocks(model: nn.Module, args: Any, kwargs: dict | None = None) -> list[str]:
    """Names of the modules whose forward adds their own input to a same-shape tensor, in call order.

    Args:
        model: the model.
        args: the positional inputs of one forward call (a tensor or a tuple).
        kwargs: its keyword inputs.

    Returns:
        Module names (as in ``model.named_modules()``); empty when there is none or the pass failed.

    Example:
        >>> import torch
        >>> traced_residual_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), torch.randn(1, 2))
        []
    """
    args = args if isinstance(args, tuple) else (args,)
    owns = {m for m in model.modules() if any(isinstance(c, WEIGHT_LAYERS) for c in m.modules())}
    names = {m: n for n, m in model.named_modules()}
    stack: list = []

    def pre(module, inputs):
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        eligible = module is not model and module in owns
        stack.append((names.get(module) if eligible else None, x))

    def post(module, inputs, output):
        if stack:
            stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post, always_call=True) for m in model.modules()]
    mode = _Adds(stack)
    if not run_traced(model, args, kwargs, mode, handles):
        return []
    return mode.found
