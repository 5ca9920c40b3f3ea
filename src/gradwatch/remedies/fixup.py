"""Fixup: train deep residual networks without normalisation by initialising them right.

Zhang, Dauphin & Ma 2019, "Fixup Initialization": with L residual branches of m layers each,
(1) initialise the classification layer and the last layer of every branch at 0; (2) give the
other layers a standard (He) init scaled by L^(−1/(2m−2)); (3) add scalar multipliers and
biases (architecture, left to the user — ReZero's α plays the multiplier's part). A branch
then starts as a near-identity whose update size does not grow with depth.

One adaptation: a last layer followed, inside its branch, by an activation with zero slope at
0 (ReLU) would never get a gradient at 0, so it is He-initialised and scaled by L^(−1/2)
instead, and the report says so.

Example:
    >>> from torch import nn
    >>> from gradwatch.remedies.residual import Residual
    >>> block = lambda: Residual(nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8)))
    >>> model = nn.Sequential(nn.Linear(4, 8), block(), block(), nn.Linear(8, 2))
    >>> rules, notes = fixup_layer_rules(model)
    >>> sorted(rules)
    ['1.fn.0', '1.fn.2', '2.fn.0', '2.fn.2', '3']
"""

from __future__ import annotations

import torch
from torch import nn

from . import rules as R
from .layers import final_layer, following_modules, weight_layers
from .residual import residual_branches


def _slope_at_zero(act: nn.Module | None) -> float:
    if act is None:
        return 1.0
    x = torch.zeros(1, requires_grad=True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(act(x).sum(), x, allow_unused=True)
    return 0.0 if g is None else float(g.abs().sum())


def _scaled(rule: R.Rule, scale: float, why: str) -> R.Rule:
    def apply(w: torch.Tensor) -> str:
        text = rule(w)
        with torch.no_grad():
            w.mul_(scale)
        return f"{text} × {scale:.4g} ({why})"
    return apply


def fixup_layer_rules(model: nn.Module, branches: list[str] | None = None,
                      gen: torch.Generator | None = None,
                      follow: dict | None = None,
                      zero_classifier: bool = True) -> tuple[dict[str, R.Rule], list[str]]:
    """The Fixup rule for every layer that differs from the standard init, and notes.

    Args:
        model: a residual model.
        branches: names of the residual branch modules (the ``f`` of ``x + f(x)``); by default
            every :class:`~gradwatch.remedies.residual.Residual` / ``ReZero`` wrapper's inside.
        gen: a generator for the draws.
        follow: the activation after each weight layer of ``model`` (full names), e.g. from a
            traced forward pass that sees ``F.relu``; by default read from each branch's modules.
        zero_classifier: zero the classification layer, as the paper does (rule 1). False keeps
            its standard init: under an adaptive optimizer (Adam, RMSprop) every weight moves by
            about ``lr`` per step whatever its gradient, so a zero classifier needs ~``0.1/lr``
            steps to reach its working size, and the gradient into the whole network is scaled
            by it until then. The zero branch ends already make the net start as a near-identity.

    Returns:
        ``({layer name: rule}, notes)``; layers not named keep the standard (auto) init.

    Raises:
        ValueError: no residual branch found or named.

    Example:
        >>> from torch import nn
        >>> from gradwatch.remedies.residual import Residual
        >>> model = nn.Sequential(Residual(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4))), nn.Linear(4, 2))
        >>> rules, notes = fixup_layer_rules(model)
        >>> rules["0.fn.2"](torch.empty(4, 4)), notes[0]
        ('zeros_', "classifier '1' zero-initialised")
    """
    found = [(n, model.get_submodule(n)) for n in branches] if branches is not None else residual_branches(model)
    if not found:
        raise ValueError("fixup needs residual branches: wrap blocks with gw.architecture.add_residual(model) "
                         "or pass branches=[names of the f in x + f(x)]")
    L = len(found)
    rules: dict[str, R.Rule] = {}
    notes: list[str] = []
    inside: set[str] = set()
    for bname, branch in found:
        layers = weight_layers(branch)
        local = following_modules(branch)
        m = len(layers)
        for k, (lname, _) in enumerate(layers):
            full = f"{bname}.{lname}" if lname else bname
            inside.add(full)
            act = follow.get(full) if follow is not None and follow.get(full) is not None else local.get(lname)
            base = R.auto_rule(act, gen)
            if k < m - 1:
                rules[full] = _scaled(base, L ** (-1.0 / (2 * m - 2)), f"L^(-1/(2m-2)), L={L}, m={m}")
            elif _slope_at_zero(act) > 0:
                rules[full] = R.zeros_rule()
            else:
                rules[full] = _scaled(base, L ** -0.5, f"L^(-1/2), L={L}")
                notes.append(f"last layer {full!r} of its branch is followed by a zero-slope activation: "
                             "scaled by L^(-1/2) instead of zeroed")
    head = final_layer(model)
    if head is not None and head not in inside:
        if zero_classifier:
            rules[head] = R.zeros_rule()
            notes.append(f"classifier {head!r} zero-initialised")
        else:
            notes.append(f"classifier {head!r} keeps the standard init (zero_classifier=False)")
    notes.append(f"{L} residual branches; Fixup's scalar biases/multipliers are not added (use policy 'rezero' "
                 "for a learnable branch scale)")
    return rules, notes


__all__ = ["fixup_layer_rules"]
