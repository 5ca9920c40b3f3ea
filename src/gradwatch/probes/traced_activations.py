"""Which activation follows each weight layer, seen in one forward pass: functional calls too.

:func:`~gradwatch.probes.model_info.following_modules` reads the activation after a layer from
the order of the model's modules, so ``F.relu(self.fc1(x))`` — a layer followed by a functional
call — looks like a linear output to it, and an ``"auto"`` initialisation gives that layer
Xavier's gain 1 instead of He's √2 (half the variance per layer: 2^(−L/2) over L ReLU layers).
:func:`traced_following_modules` runs the model once on an example input, with a forward hook on
every module and a ``TorchFunctionMode`` that sees functional activations, and fills each layer
the module order left empty with the activation applied to its output (through normalisation,
dropout and pooling modules, as the module rule does). The pass has no side effect on training:
it runs under ``no_grad`` in eval mode (no BatchNorm statistics move) and the random number
generators are put back as they were.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.fc2(torch.relu(self.fc1(x)))
    >>> traced_following_modules(Net(), (torch.randn(3, 4),))
    {'fc1': ReLU(), 'fc2': None}
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .activations import FUNCTIONAL_ACTIVATIONS, MODULE_ACTIVATIONS
from .model_info import _PASS_THROUGH, following_modules, is_norm

#: an activation module for each functional name (the first class that bears it)
_MODULE_FOR: dict[str, type] = {}
for _cls, _name in MODULE_ACTIVATIONS.items():
    _MODULE_FOR.setdefault(_name, _cls)


def _module_for(name: str, args: tuple, kwargs: dict) -> nn.Module | None:
    cls = _MODULE_FOR.get(name)
    if cls is None:
        return None
    if cls is nn.LeakyReLU:  # keep the call's slope: He's gain depends on it
        slope = kwargs.get("negative_slope", args[1] if len(args) > 1 else 0.01)
        return nn.LeakyReLU(float(slope))
    return cls()


class _Seen(TorchFunctionMode):
    def __init__(self, owner_of) -> None:
        super().__init__()
        self.owner_of = owner_of
        self.found: dict[str, nn.Module] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = FUNCTIONAL_ACTIVATIONS.get(func)
        if name is not None and args:
            layer = self.owner_of(args[0])
            if layer is not None and layer not in self.found:
                mod = _module_for(name, args, kwargs)
                if mod is not None:
                    self.found[layer] = mod
        return func(*args, **kwargs)


def traced_following_modules(model: nn.Module, args: Any, kwargs: dict | None = None) -> dict[str, nn.Module | None]:
    """:func:`~gradwatch.probes.model_info.following_modules`, with the layers it leaves empty
    filled from one forward pass on ``model(*args, **kwargs)`` (functional activations).

    Args:
        model: the model.
        args: the positional inputs of one forward call (a tensor or a tuple).
        kwargs: its keyword inputs.

    Returns:
        weight layer name -> activation module (a fresh instance for a functional call) or None.
        When the forward pass fails, the module-order answer alone.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> traced_following_modules(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), torch.randn(1, 2))
        {'0': Tanh()}
    """
    follow = following_modules(model)
    empty = {n for n, a in follow.items() if a is None}
    if not empty:
        return follow
    args = args if isinstance(args, tuple) else (args,)
    names = {m: n for n, m in model.named_modules()}
    produced: dict[int, tuple[str, Any]] = {}  # id(output) -> (layer, weakref to the output)

    def owner_of(t):
        hit = produced.get(id(t)) if isinstance(t, torch.Tensor) else None
        return hit[0] if hit is not None and hit[1]() is t else None

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            return
        name = names.get(module)
        if name in empty:
            produced[id(output)] = (name, weakref.ref(output))
        elif (is_norm(module) or isinstance(module, _PASS_THROUGH)) and inputs:
            layer = owner_of(inputs[0])
            if layer is not None:
                produced[id(output)] = (layer, weakref.ref(output))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    seen = _Seen(owner_of)
    if not run_traced(model, args, kwargs, seen, handles):
        return follow  # a model that cannot be run here keeps the module-order answer
    # a module activation is itself a functional call inside; only the gaps are filled
    return {n: (a if a is not None else seen.found.get(n)) for n, a in follow.items()}


def run_traced(model: nn.Module, args: tuple, kwargs: dict | None, mode: TorchFunctionMode, handles: list) -> bool:
    """One forward pass ``model(*args, **kwargs)`` under ``mode`` with no side effect on training:
    no_grad, eval mode (no BatchNorm statistics move), the random generators put back (CUDA's
    only if already in use: forking it would start it). ``handles`` (hooks the caller installed)
    are removed afterwards. Returns False when the pass raised.

    Example:
        >>> import torch
        >>> class Count(TorchFunctionMode):
        ...     calls = 0
        ...     def __torch_function__(self, func, types, args=(), kwargs=None):
        ...         Count.calls += 1
        ...         return func(*args, **(kwargs or {}))
        >>> run_traced(torch.nn.Linear(2, 2), (torch.randn(1, 2),), None, Count(), []), Count.calls > 0
        (True, True)
    """
    training = {m: m.training for m in model.modules()}
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        model.eval()
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), mode:
            model(*args, **(kwargs or {}))
        return True
    except Exception:  # noqa: BLE001 - the caller falls back to what it knows without the pass
        return False
    finally:
        for h in handles:
            h.remove()
        for m, was in training.items():
            m.train(was)
