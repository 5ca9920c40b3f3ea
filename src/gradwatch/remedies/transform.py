"""Gradient transforms in the optax style, acting in place on PyTorch gradients.

A transform is a pair of functions (optax, ``_src/base.py``): ``init(params) -> state`` and
``update(params, state, step) -> (state, info)``. ``update`` rewrites ``p.grad`` of the given
parameters in place — call it after ``loss.backward()`` and before ``optimizer.step()`` — and
returns a dict saying what it did (``{"norm": …, "coef": …, "clipped": …}``), whose values
may stay 0-d tensors on the device so that no step waits on a host sync. ``chain(...)`` runs
transforms in order; calling a transform (``t(model)``) keeps its state for you; ``attach``
runs it before every ``optimizer.step()``. A ``sink`` callable receives every info dict, so
the run store can record what a remedy did.

Example:
    >>> import torch
    >>> from gradwatch.remedies.clip import clip_by_global_norm, skip_nonfinite
    >>> model = torch.nn.Linear(3, 1)
    >>> model(torch.randn(8, 3)).pow(2).sum().mul(100).backward()
    >>> t = chain(skip_nonfinite(), clip_by_global_norm(1.0))
    >>> info = t(model)
    >>> round(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])), 4)
    1.0
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple, Union

import torch
from torch import nn
from torch.utils._foreach_utils import _device_has_foreach_support

Params = Union[nn.Module, Iterable[torch.Tensor], Iterable[tuple[str, torch.Tensor]]]
Info = dict[str, Any]
Sink = Callable[[Info], None]


def named_params(params: Params) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` pairs from a module, ``named_parameters()`` or a list of tensors
    (named by position).

    Example:
        >>> [n for n, _ in named_params(torch.nn.Linear(2, 2))], [n for n, _ in named_params([torch.zeros(1)] * 2)]
        (['weight', 'bias'], ['0', '1'])
    """
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    if isinstance(params, torch.Tensor):
        return [("0", params)]
    out = []
    for i, p in enumerate(params):
        out.append(p if isinstance(p, tuple) else (str(i), p))
    return out


def with_grads(params: Params) -> list[tuple[str, torch.Tensor]]:
    """The named parameters that have a gradient.

    Example:
        >>> lin = torch.nn.Linear(2, 2); lin.weight.grad = torch.ones(2, 2)
        >>> [n for n, _ in with_grads(lin)]
        ['weight']
    """
    return [(n, p) for n, p in named_params(params) if p.grad is not None]


def foreach_ok(tensors: list[torch.Tensor]) -> bool | None:
    """``True`` (the fused ``torch._foreach_*`` path) when every tensor's device supports it,
    else None (let torch choose per device).

    Example:
        >>> foreach_ok([torch.zeros(2)]), foreach_ok([])
        (True, None)
    """
    return True if tensors and all(_device_has_foreach_support(t.device) for t in tensors) else None


def _reusable(params: Params) -> Params:
    # a generator such as model.parameters() would be used up by the first transform of a chain
    return params if isinstance(params, (nn.Module, list)) else named_params(params)


class EmptyState(NamedTuple):
    """The state of a stateless transform."""


class GradientTransform:
    """An ``init``/``update`` pair with a name and an optional sink; calling it keeps its state.

    Args:
        name: what the transform is (the key of its info inside a chain).
        init: ``init(params) -> state``.
        update: ``update(params, state, step) -> (state, info)``; acts on ``p.grad`` in place.
        sink: called with every info dict (after ``"step"`` is added).

    Example:
        >>> import torch
        >>> t = GradientTransform("noop", lambda p: EmptyState(), lambda p, s, step: (s, {}))
        >>> t(torch.nn.Linear(2, 2))
        {'step': 0}
    """

    def __init__(self, name: str, init: Callable[[Params], Any],
                 update: Callable[[Params, Any, int], tuple[Any, Info]], sink: Sink | None = None) -> None:
        self.name = name
        self._init, self._update = init, update
        self.sink = sink
        self.state: Any = None
        self.step = 0

    def init(self, params: Params) -> Any:
        """The transform's starting state for these parameters."""
        return self._init(_reusable(params))

    def update(self, params: Params, state: Any, step: int = 0) -> tuple[Any, Info]:
        """Transform the gradients of ``params`` in place; returns ``(new state, info)``."""
        state, info = self._update(_reusable(params), state, step)
        info["step"] = step
        if self.sink is not None:
            self.sink(info)
        return state, info

    def __call__(self, params: Params) -> Info:
        """Apply once, keeping the state and the step count inside the transform."""
        params = _reusable(params)
        if self.state is None:
            self.state = self.init(params)
        self.state, info = self.update(params, self.state, self.step)
        self.step += 1
        return info

    def reset(self) -> None:
        """Forget the kept state (the next call starts afresh)."""
        self.state, self.step = None, 0

    def __repr__(self) -> str:
        return f"GradientTransform({self.name})"


class ChainState(NamedTuple):
    """One state per chained transform, in order."""

    inner: tuple


def chain(*transforms: GradientTransform, sink: Sink | None = None) -> GradientTransform:
    """Run transforms one after the other on the same gradients (optax ``chain``).

    The info is ``{name: info of that transform}`` (repeated names get ``_1``, ``_2``…).

    Example:
        >>> from gradwatch.remedies.clip import clip_by_value, clip_by_global_norm
        >>> chain(clip_by_value(1.0), clip_by_global_norm(5.0)).name
        'chain(clip_by_value, clip_by_global_norm)'
    """
    names: list[str] = []
    for t in transforms:
        n, k = t.name, 1
        while n in names:
            n, k = f"{t.name}_{k}", k + 1
        names.append(n)

    def init(params: Params) -> ChainState:
        return ChainState(tuple(t.init(params) for t in transforms))

    def update(params: Params, state: ChainState, step: int) -> tuple[ChainState, Info]:
        new, info = [], {}
        for name, t, s in zip(names, transforms, state.inner):
            s, i = t.update(params, s, step)
            new.append(s)
            info[name] = i
        return ChainState(tuple(new)), info

    return GradientTransform(f"chain({', '.join(t.name for t in transforms)})", init, update, sink)


def flatten_info(info: Info, prefix: str = "") -> dict[str, Any]:
    """A chain's nested info as one level: ``{"clip_by_global_norm.norm": …}``; lists and None
    are dropped, tensors stay tensors.

    Example:
        >>> flatten_info({"a": {"norm": 1.0, "excluded": ["x"]}, "step": 3}, "clip.")
        {'clip.a.norm': 1.0, 'clip.step': 3}
    """
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, dict):
            out.update(flatten_info(v, f"{prefix}{k}."))
        elif isinstance(v, (torch.Tensor, int, float, bool)):
            out[f"{prefix}{k}"] = v
    return out


def log_sink(log: Callable[..., None], prefix: str = "clip.") -> Sink:
    """A sink that passes every info, flattened, as scalars to ``log(**scalars)`` — e.g. the
    watcher's ``w.log``, which keeps tensors on the device until its batched flush.

    Example:
        >>> seen = []
        >>> sink = log_sink(lambda **kw: seen.append(kw))
        >>> sink({"norm": 2.0, "clipped": True, "step": 0}); seen
        [{'clip.norm': 2.0, 'clip.clipped': True}]
    """
    def sink(info: Info) -> None:
        log(**{k: v for k, v in flatten_info(info, prefix).items() if not k.endswith(".step")})
    return sink


def attach(optimizer: torch.optim.Optimizer, transform: GradientTransform, params: Params | None = None):
    """Run ``transform`` on the gradients before every ``optimizer.step()``.

    Args:
        optimizer: the optimizer whose steps to precede.
        transform: the transform (its state is kept inside it).
        params: what it acts on; pass the model so transforms that need names (AGC) know the
            layers. By default, every parameter of the optimizer's groups.

    Returns:
        The hook handle; ``handle.remove()`` detaches the transform.

    Example:
        >>> import torch
        >>> from gradwatch.remedies.clip import clip_by_global_norm
        >>> model = torch.nn.Linear(2, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> handle = attach(opt, clip_by_global_norm(1.0), model)
        >>> handle.remove()
    """
    def hook(opt, args, kwargs):
        transform(params if params is not None else [p for g in opt.param_groups for p in g["params"]])
        return None

    return optimizer.register_step_pre_hook(hook)
