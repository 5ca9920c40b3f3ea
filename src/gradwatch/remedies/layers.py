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

from ..probes.activations import activation_name
from ..probes.model_info import is_norm

#: weight layers an init policy acts on (recurrent and attention modules are handled by gate)
WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
RECURRENT = (nn.RNNBase, nn.RNNCellBase)

#: modules that sit between a layer and its activation without changing which one it is
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
                 nn.Flatten, nn.Unflatten, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                 nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def is_leaf(m: nn.Module) -> bool:
    """Whether a module has no child modules."""
    return next(iter(m.children()), None) is None


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every Linear/Bilinear/Conv layer with a weight, in registration order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, WEIGHT_LAYERS) and isinstance(getattr(m, "weight", None), nn.Parameter)]


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
    normalisation, dropout, pooling and flatten; anything else ends the search. It is the rule
    the watcher's model description uses, so diagnosis and remedies agree on it.

    Example:
        >>> from torch import nn
        >>> following_activation(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.ReLU()))
        {'0': 'relu'}
    """
    return {k: (activation_name(v) if v is not None else None) for k, v in following_modules(model).items()}


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
    """The submodule with a dotted name (``""`` is the root)."""
    return root.get_submodule(name) if name else root


def set_module(root: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where the submodule ``name`` was; returns the root (``new`` itself when
    ``name`` is ``""``, the root being replaced)."""
    if not name:
        return new
    parent_name, _, attr = name.rpartition(".")
    setattr(get_module(root, parent_name), attr, new)
    return root
