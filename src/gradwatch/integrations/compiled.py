"""``torch.compile``: what a watcher sees of a compiled model, and what it cannot.

A watcher measures in two places. Per-parameter statistics (gradient norms and maxima, weight
norms, the optimizer's update) are read in the optimizer's step hooks, outside any compiled
graph: they are exact for a compiled model. δ = ‖∂L/∂h‖ and the activation statistics come from
Python hooks on the modules *inside* the compiled forward:

- ``torch.compile(model)`` (the default, ``fullgraph=False``): the hooks run, Dynamo splits the
  graph around them on the statistics steps only (one step in ``every``) and keeps a second
  compiled variant for those steps; everything is measured.
- ``torch.compile(model, fullgraph=True)``: a graph break is an error, so the module hooks are
  never installed; δ and activation statistics (and the rules that need them: saturation, dead
  units, δ across layers) are not available. The gradient-norm rules still work.

The watcher records what applies as a ``compiled`` event and in the run's metadata.
A ``torch.compile``'d ``OptimizedModule`` is watched through the module it wraps, so parameter
and module names are the model's own (``"0.weight"``, not ``"_orig_mod.0.weight"``).

Example:
    >>> import torch
    >>> m = torch.nn.Linear(2, 2)
    >>> inner, note = unwrap(torch.compile(m, backend="eager", fullgraph=True))
    >>> inner is m, note["fullgraph"], note["module_stats"]
    (True, True, False)
"""

from __future__ import annotations

from typing import Any

from torch import nn


def _fullgraph(ctx: Any) -> bool:
    return bool(getattr(ctx, "fullgraph", False))


def _ctx_of_function(fn: Any) -> Any:
    """The Dynamo context held in the closure of ``module.compile()``'s wrapped call."""
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if hasattr(value, "fullgraph"):
            return value
    return None


def compiled_parts(model: nn.Module) -> list[tuple[str, bool]]:
    """``(name, fullgraph)`` of every compiled module in the tree (``""`` = the model itself).

    Example:
        >>> compiled_parts(nn.Linear(2, 2))
        []
    """
    from torch._dynamo.eval_frame import OptimizedModule

    out = []
    for name, m in model.named_modules():
        if isinstance(m, OptimizedModule):
            out.append((name, _fullgraph(getattr(m, "dynamo_ctx", None))))
        elif getattr(m, "_compiled_call_impl", None) is not None:
            out.append((name, _fullgraph(_ctx_of_function(m._compiled_call_impl))))
    return out


def unwrap(model: nn.Module) -> tuple[nn.Module, dict[str, Any] | None]:
    """The module to watch, and a note of what compilation lets the watcher see (None if the
    model has no compiled part).

    Args:
        model: the model as the user has it: plain, ``torch.compile(model)``, ``model.compile()``
            or with compiled submodules.

    Returns:
        ``(module, note)``; ``note["module_stats"]`` is False when δ and activation statistics
        must stay off (a part is compiled with ``fullgraph=True``).

    Example:
        >>> unwrap(nn.Linear(2, 2))[1] is None
        True
    """
    import sys

    if "torch._dynamo" not in sys.modules:  # nothing can be compiled yet: keep the import cheap
        return model, None
    from torch._dynamo.eval_frame import OptimizedModule

    outer: list[tuple[str, bool]] = []
    while isinstance(model, OptimizedModule):
        outer.append(("", _fullgraph(getattr(model, "dynamo_ctx", None))))
        model = model._orig_mod
    parts = outer + compiled_parts(model)
    if not parts:
        return model, None
    full = [name for name, fg in parts if fg]
    if full:
        what = ("δ and activation statistics are off: the model (or " + ", ".join(repr(n) for n in full)
                + ") is compiled with fullgraph=True, where the module hooks that measure them would "
                "be graph breaks, i.e. errors; per-parameter gradient, weight and update statistics "
                "are exact (read at the optimizer, outside the graph)")
    else:
        what = ("everything is measured; on statistics steps the module hooks split the compiled "
                "graph (Dynamo compiles a second variant for those steps), other steps run the "
                "graph untouched")
    return model, {"compiled": [n for n, _ in parts], "fullgraph": bool(full),
                   "module_stats": not full, "sees": what}


__all__ = ["unwrap", "compiled_parts"]
