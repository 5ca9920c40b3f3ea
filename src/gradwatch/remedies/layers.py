"""Which modules carry weights, which activation follows each, and how to replace a module.

Remedies act per layer: an init policy needs the activation that follows a layer, AGC must
leave the final layer alone, a rewrite must put a new module where an old one was. The order
is the registration order of ``model.named_modules()``, which for ``nn.Sequential`` is the
order of the forward pass; activations called functionally inside ``forward`` are invisible
here (the watcher sees those at run time).

Example:
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(4, 8), nn.Dropout(), nn.Tanh(), nn.Linear(8, 2))
    >>> following_activation(m)
    {'0': 'tanh', '3': None}
    >>> final_layer(m)
    '3'
"""

from __future__ import annotations

from torch import nn

from ..probes.model_info import (WEIGHT_LAYERS, following_activation, following_modules, is_leaf,  # noqa: F401
                                 is_norm)

RECURRENT = (nn.RNNBase, nn.RNNCellBase)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every Linear/Bilinear/Conv layer with a weight, in registration order.

    Example:
        >>> from torch import nn
        >>> [n for n, _ in weight_layers(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2))))]
        ['0', '2.0']
    """
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, WEIGHT_LAYERS) and isinstance(getattr(m, "weight", None), nn.Parameter)]


def final_layer(model: nn.Module) -> str | None:
    """The dotted name of the last weight layer in registration order (the classifier / output
    layer of most models), or None when the model has none.

    Example:
        >>> from torch import nn
        >>> final_layer(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3)))
        '2'
    """
    layers = weight_layers(model)
    return layers[-1][0] if layers else None


def get_module(root: nn.Module, name: str) -> nn.Module:
    """The submodule with a dotted name (``""`` is the root).

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.ReLU()))
        >>> get_module(m, "1.0"), get_module(m, "") is m
        (ReLU(), True)
    """
    return root.get_submodule(name) if name else root


def set_module(root: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where the submodule ``name`` was; returns the root (``new`` itself when
    ``name`` is ``""``, the root being replaced).

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> set_module(m, "1", nn.Tanh())[1], set_module(m, "", nn.Identity())
        (Tanh(), Identity())
    """
    if not name:
        return new
    parent_name, _, attr = name.rpartition(".")
    setattr(get_module(root, parent_name), attr, new)
    return root
