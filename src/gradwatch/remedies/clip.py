"""Gradient clipping and step skipping as composable transforms (see :mod:`.transform`).

Each factory returns a :class:`GradientTransform`; call it on the model after ``backward()``
and before ``optimizer.step()``, or ``attach`` it to the optimizer, or ``chain`` several:

    clip_by_value(c)            every gradient element into [−c, c]
    clip_by_global_norm(n)      rescale all gradients together so ‖g‖ ≤ n (Pascanu et al. 2013)
    autoclip(p)                 … with n the p-th percentile of all norms seen (Seetharaman et al. 2020)
    zscore_clip(k)              … with n = mean + k·std of the recent norms (spike clipping)
    adaptive_grad_clip(λ)       per unit, ‖G_i‖ ≤ λ·max(‖W_i‖, ε), never the final layer (Brock et al. 2021)
    skip_nonfinite()            a step with a NaN/Inf gradient has all its gradients zeroed

Coefficients are clamped rather than branched on (``g *= min(1, n/‖g‖)``, as
``torch.nn.utils.clip_grad_norm_`` does), so none of these waits on the device.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(4, 2)
    >>> model(torch.randn(16, 4)).sum().mul(50).backward()
    >>> clip = clip_by_global_norm(1.0)
    >>> info = clip(model)
    >>> bool(info["clipped"]), round(float(info["norm"] * info["coef"]), 3)
    (True, 1.0)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .transform import (EmptyState, GradientTransform, Info, Params, Sink, attach, chain,  # noqa: F401
                        flatten_info, foreach_ok, log_sink, named_params, with_grads)


def grads_of(params: Params) -> list[torch.Tensor]:
    """The ``.grad`` tensors of the parameters that have one.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1); model.weight.grad = torch.ones(1, 2)
        >>> grads_of(model)
        [tensor([[1., 1.]])]
    """
    return [p.grad for _, p in with_grads(params)]


def scale_(grads: list[torch.Tensor], factor: torch.Tensor) -> None:
    """Multiply gradients in place by a 0-d tensor, one fused call per device."""
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for g in grads:
        by_device.setdefault(g.device, []).append(g)
    for device, group in by_device.items():
        f = factor.to(device=device, dtype=group[0].dtype)
        if foreach_ok(group):
            torch._foreach_mul_(group, f)
        else:
            for g in group:
                g.mul_(f)


def clip_by_value(clip_value: float, sink: Sink | None = None) -> GradientTransform:
    """Clamp every gradient element into ``[−clip_value, clip_value]`` (delegates to
    ``torch.nn.utils.clip_grad_value_``). Changes the gradient's direction; prefer the norm.

    Info: ``max_abs`` (largest |g| before), ``clipped`` (whether any element was clamped).

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(3)); p.grad = torch.tensor([-5.0, 0.5, 9.0])
        >>> _ = clip_by_value(1.0)([p]); p.grad.tolist()
        [-1.0, 0.5, 1.0]
    """
    if clip_value <= 0:
        raise ValueError(f"clip_value must be positive, got {clip_value}")

    def update(params, state, step):
        ps = [p for _, p in with_grads(params)]
        grads = [p.grad for p in ps]
        if not grads:
            return state, {"max_abs": None, "clipped": False}
        fe = foreach_ok(grads)
        max_abs = torch.stack([n.to(grads[0].device) for n in torch._foreach_norm(grads, float("inf"))]).max() \
            if fe else torch.stack([g.detach().abs().max().to(grads[0].device) for g in grads]).max()
        torch.nn.utils.clip_grad_value_(ps, clip_value, foreach=fe)
        return state, {"max_abs": max_abs, "clipped": max_abs > clip_value}

    return GradientTransform("clip_by_value", lambda p: EmptyState(), update, sink)


def clip_by_global_norm(max_norm: float, norm_type: float = 2.0, sink: Sink | None = None) -> GradientTransform:
    """Rescale all gradients together so their global norm is at most ``max_norm``
    (delegates to ``torch.nn.utils.clip_grad_norm_``; Pascanu, Mikolov & Bengio 2013).

    Info: ``norm`` (before), ``coef`` (the factor applied, ≤ 1), ``clipped``.

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.tensor([3.0, 4.0])
        >>> info = clip_by_global_norm(1.0)([p]); [round(v, 3) for v in p.grad.tolist()]
        [0.6, 0.8]
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")

    def update(params, state, step):
        named = with_grads(params)
        if not named:
            return state, {"norm": None, "coef": None, "clipped": False}
        grads = [p.grad for _, p in named]
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in named], max_norm, norm_type, foreach=foreach_ok(grads))
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        return state, {"norm": norm, "coef": coef, "clipped": norm > max_norm}

    return GradientTransform("clip_by_global_norm", lambda p: EmptyState(), update, sink)


class SkipState(NamedTuple):
    """How many steps were skipped so far (a 0-d tensor: counting needs no sync).

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(1)); skip = skip_nonfinite()
        >>> p.grad = torch.tensor([float("inf")]); _ = skip([p]); int(skip.state.skips)
        1
    """

    skips: torch.Tensor


def skip_nonfinite(set_to_none: bool = False, sink: Sink | None = None) -> GradientTransform:
    """When any gradient holds a NaN or Inf, zero every gradient of the step and report a skip
    (optax ``apply_if_finite``; the guard does the same with a rollback).

    A zero gradient still moves weights under momentum, Adam's running averages or decoupled
    weight decay. ``set_to_none=True`` sets every ``.grad`` to None instead, which makes
    PyTorch's optimizers leave those parameters entirely alone — at the price of one host sync
    per step to decide.

    Info: ``skipped`` (bool), ``norm`` (the global norm, non-finite on a skipped step),
    ``skips`` (total so far).

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.tensor([1.0, float("nan")])
        >>> info = skip_nonfinite()([p]); bool(info["skipped"]), p.grad.tolist()
        (True, [0.0, 0.0])
    """
    def init(params) -> SkipState:
        ps = [p for _, p in named_params(params)]
        return SkipState(torch.zeros((), dtype=torch.long, device=ps[0].device if ps else None))

    def update(params, state: SkipState, step):
        named = with_grads(params)
        if not named:
            return state, {"skipped": False, "norm": None, "skips": state.skips}
        grads = [p.grad for _, p in named]
        norm = torch.nn.utils.get_total_norm(grads, foreach=foreach_ok(grads))
        ok = torch.isfinite(norm)
        if set_to_none:
            if not bool(ok):
                for _, p in named:
                    p.grad = None
        else:
            for g in grads:  # NaN·0 is NaN: clear non-finite elements first, then multiply by ok
                g.nan_to_num_(0.0, 0.0, 0.0)
            scale_(grads, ok)
        skips = state.skips + (~ok).to(state.skips.device, torch.long)
        return SkipState(skips), {"skipped": ~ok, "norm": norm, "skips": skips}

    return GradientTransform("skip_nonfinite", init, update, sink)


from .clip_adaptive import (AutoClipState, ZScoreState, adaptive_grad_clip, autoclip,  # noqa: E402,F401
                            final_layer_params, unitwise_norm, zscore_clip)
