"""Swap functional activations — ``torch.sigmoid(self.conv(x))`` inside ``forward`` — at run time.

:func:`~gradwatch.remedies.architecture.swap_activation` replaces activation *modules*; a call
written in ``forward`` has no module to replace, so a deep net built that way kept its sigmoids
and a "use ReLU" remedy changed nothing but the init. :func:`swap_functional_activation`
installs a ``TorchFunctionMode`` for the duration of each forward pass of the model: a call of
an ``old`` activation (``torch.sigmoid``, ``F.sigmoid``, ``Tensor.sigmoid``, and the same for
tanh) whose input is the output of a hidden weight layer (directly, or through dropout,
pooling or a normalisation layer) is answered by ``new`` instead. The output layer's activation
is left alone (a sigmoid before ``BCELoss`` is the loss's, not a hidden layer's), and so is
every call on anything else (gates computed from sums, attention scores, the loss).

The script does not change, which is what a trial or ``gradwatch run --remedy`` needs; the
report still tells the user to write ``torch.relu`` in ``forward`` for good.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 1)
    ...     def forward(self, x):
    ...         return torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(x))))
    >>> net = Net()
    >>> swap = swap_functional_activation(net)
    >>> y = net(torch.randn(2, 3))
    >>> swap.swapped, bool(((y > 0) & (y < 1)).all())   # fc1's sigmoid became ReLU; the output's stayed
    (['fc1'], True)
    >>> swap.remove()
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..probes.activations import FUNCTIONAL_ACTIVATIONS
from ..probes.model_info import _PASS_THROUGH, is_norm
from .layers import WEIGHT_LAYERS, final_layer


class _Swap(TorchFunctionMode):
    def __init__(self, owner: "FunctionalSwap") -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = FUNCTIONAL_ACTIVATIONS.get(func)
        # in-place calls (F.relu(h, inplace=True)) are left alone: rewriting h in place would
        # change a tensor the replacement's backward has saved
        if name in self.owner.old and args and not kwargs.get("out") and not kwargs.get("inplace"):
            layer = self.owner.layer_of(args[0])
            if layer is not None:
                self.owner.note(layer)
                return self.owner.new(args[0])
        return func(*args, **kwargs)


class FunctionalSwap:
    """The installed swap: :attr:`swapped` lists the layers whose activation was replaced so far;
    :meth:`remove` takes every hook away (the model then runs as written).

    Example:
        >>> from torch import nn
        >>> swap = swap_functional_activation(nn.Sequential(nn.Linear(2, 2)))
        >>> swap.swapped
        []
        >>> swap.remove()
    """

    def __init__(self, model: nn.Module, old: tuple[str, ...], new: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.old, self.new = set(old), new
        self.swapped: list[str] = []
        head = final_layer(model)
        self._hidden = {id(m): n for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS) and n != head}
        self._produced: dict[int, tuple[str, Any]] = {}
        self._mode = _Swap(self)
        self._calls = 0          # root forward passes in progress (nested calls count)
        self._entered = False    # the mode is on the stack
        self._handles = [m.register_forward_hook(self._record) for m in model.modules()
                         if id(m) in self._hidden or is_norm(m) or isinstance(m, _PASS_THROUGH)]
        # The mode goes on the stack at the first hidden layer's pre-hook, not the root's: any mode
        # entered around the root's forward (the watcher's, which records functional activations)
        # is then below it and sees the replacement call, not the replaced one.
        self._handles += [m.register_forward_pre_hook(self._lazy_enter) for m in model.modules()
                          if id(m) in self._hidden]
        self._handles.append(model.register_forward_pre_hook(lambda mod, args: self.enter()))
        self._handles.append(model.register_forward_hook(lambda mod, args, out: self.exit(), always_call=True))

    def layer_of(self, t: Any) -> str | None:
        """The hidden layer whose output ``t`` is (through pass-through modules), or None."""
        hit = self._produced.get(id(t)) if isinstance(t, torch.Tensor) else None
        return hit[0] if hit is not None and hit[1]() is t else None

    def note(self, layer: str) -> None:
        if layer not in self.swapped:
            self.swapped.append(layer)

    def _record(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or not self._calls:
            return
        name = self._hidden.get(id(module))
        if name is None and inputs:
            name = self.layer_of(inputs[0])  # a norm / dropout / pooling layer passes its input's layer on
        if name is not None:
            self._produced[id(output)] = (name, weakref.ref(output))

    def _lazy_enter(self, module: nn.Module, args: tuple) -> None:
        if self._calls and not self._entered:
            self._mode.__enter__()
            self._entered = True

    def enter(self) -> None:
        """Mark a forward pass of the model as started (its forward pre-hook calls this; nested
        calls count); swapping begins at its first hidden layer."""
        if self._calls == 0:
            self._produced.clear()
        self._calls += 1

    def exit(self) -> None:
        """End of a forward pass; swapping stops with the outermost one (also after an exception)."""
        if self._calls == 0:
            return
        self._calls -= 1
        if self._calls == 0:
            if self._entered:
                self._entered = False
                self._mode.__exit__(None, None, None)
            self._produced.clear()

    def remove(self) -> None:
        """Remove every hook; a forward pass in progress ends its swap."""
        while self._calls:
            self.exit()
        for h in self._handles:
            h.remove()
        self._handles.clear()


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU with PyTorch's default slope 0.01, as a one-argument replacement.

    Example:
        >>> leaky_relu(torch.tensor([-1.0, 2.0])).tolist()
        [-0.009999999776482582, 2.0]
    """
    return torch.nn.functional.leaky_relu(x, 0.01)


def swap_functional_activation(model: nn.Module, old: tuple[str, ...] = ("sigmoid", "tanh"),
                               new: Callable[[torch.Tensor], torch.Tensor] = torch.relu) -> FunctionalSwap:
    """Answer functional ``old`` activations on hidden layers' outputs with ``new`` in every
    forward pass of ``model`` from now on (module docstring: what is swapped and what is not).

    Args:
        model: the model; hooks are added, nothing else changes.
        old: functional activation names (``"sigmoid"``, ``"tanh"``, any name of
            :data:`gradwatch.probes.activations.FUNCTIONAL_ACTIVATIONS`).
        new: the replacement, a function of the input tensor.

    Returns:
        A :class:`FunctionalSwap`; ``.remove()`` undoes it.

    Raises:
        ValueError: an unknown activation name.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = nn.Linear(2, 2)
        ...     def forward(self, x):
        ...         return self.fc(x).tanh()
        >>> swap = swap_functional_activation(Net(), old=("tanh",))   # fc is the output layer: kept
        >>> swap.remove()
    """
    known = set(FUNCTIONAL_ACTIVATIONS.values())
    unknown = set(old) - known
    if unknown:
        raise ValueError(f"unknown functional activation(s) {sorted(unknown)}; choose from {sorted(known)}")
    return FunctionalSwap(model, tuple(old), new)
