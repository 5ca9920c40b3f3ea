"""Clipping whose threshold comes from the run itself: AutoClip, z-score spikes, AGC.

AutoClip (Seetharaman et al. 2020): clip the global norm to the p-th percentile of every norm
seen so far (p = 10 is their default) — no threshold to tune. Z-score clipping: clip to
mean + k·std of a window of recent (already clipped) norms, so a single spike is cut back to
the run's usual range. Adaptive gradient clipping (Brock et al. 2021, NFNets): per unit i
(a row of a Linear weight, an output channel of a conv), if ‖G_i‖ / max(‖W_i‖, ε) > λ, scale
G_i to λ·max(‖W_i‖, ε); the final layer is left alone.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> clip = autoclip(percentile=50)
    >>> for g in ([3.0, 4.0], [0.6, 0.8], [6.0, 8.0]):    # norms 5, 1, 10
    ...     p.grad = torch.tensor(g); info = clip([p])
    >>> float(info["threshold"]), round(float(p.grad.norm()), 4)   # median of 5, 1, 10
    (5.0, 5.0)
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from .layers import final_layer
from .transform import GradientTransform, Sink, foreach_ok, named_params, with_grads


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.get_total_norm(grads, foreach=foreach_ok(grads))


class AutoClipState(NamedTuple):
    """The finite norms seen so far (a buffer, NaN where unused) and how many were written.

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.tensor([3.0, 4.0])
        >>> clip = autoclip(); _ = clip([p]); clip.state.count, float(clip.state.norms[0])
        (1, 5.0)
    """

    norms: torch.Tensor
    count: int


def autoclip(percentile: float = 10.0, history: int | None = None, sink: Sink | None = None) -> GradientTransform:
    """Clip the global norm to the ``percentile``-th percentile of the norms seen so far,
    the current one included (Seetharaman et al. 2020, "AutoClip").

    Args:
        percentile: p in [0, 100]; 10 in the paper.
        history: keep only the last ``history`` norms (None: all of them, as in the paper).

    Info: ``norm``, ``threshold``, ``coef``, ``clipped``. Non-finite norms do not enter the history.

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(2)); clip = autoclip(percentile=0)
        >>> for g in ([3.0, 4.0], [6.0, 8.0]):          # norms 5, then 10
        ...     p.grad = torch.tensor(g); info = clip([p])
        >>> float(info["threshold"]), round(float(p.grad.norm()), 4)   # the smallest norm seen
        (5.0, 5.0)
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")

    def init(params) -> AutoClipState:
        ps = [p for _, p in named_params(params)]
        size = history or 256
        return AutoClipState(torch.full((size,), float("nan"), device=ps[0].device if ps else None), 0)

    def update(params, state: AutoClipState, step):
        named = with_grads(params)
        if not named:
            return state, {"norm": None, "threshold": None, "coef": None, "clipped": False}
        grads = [p.grad for _, p in named]
        norm = _global_norm(grads)
        buf, n = state.norms, state.count
        if history is None and n == len(buf):  # grow, amortised O(1)
            buf = torch.cat([buf, torch.full_like(buf, float("nan"))])
        buf[n % len(buf)] = torch.where(torch.isfinite(norm), norm, torch.nan).to(buf.device, buf.dtype)
        threshold = torch.nanquantile(buf[: min(n + 1, len(buf))], percentile / 100.0).to(norm.device)
        torch.nn.utils.clip_grads_with_norm_([p for _, p in named], threshold, norm, foreach=foreach_ok(grads))
        coef = torch.clamp(threshold / (norm + 1e-6), max=1.0)
        return AutoClipState(buf, n + 1), {"norm": norm, "threshold": threshold, "coef": coef,
                                           "clipped": norm > threshold}

    return GradientTransform("autoclip", init, update, sink)


class ZScoreState(NamedTuple):
    """A ring buffer of recent clipped norms (NaN where empty) and the write position.

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(1)); p.grad = torch.tensor([2.0])
        >>> clip = zscore_clip(window=4, min_history=2); _ = clip([p]); clip.state.pos, clip.state.norms.tolist()
        (1, [2.0, nan, nan, nan])
    """

    norms: torch.Tensor
    pos: int


def zscore_clip(k: float = 3.0, window: int = 100, min_history: int = 10, sink: Sink | None = None) -> GradientTransform:
    """Clip the global norm to ``mean + k·std`` of the last ``window`` norms (each recorded
    after clipping, so one spike does not raise the bar for the next); no clipping until
    ``min_history`` finite norms are in.

    Info: ``norm``, ``threshold`` (inf while warming up), ``coef``, ``clipped``.

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.zeros(1)); clip = zscore_clip(k=3.0, min_history=5)
        >>> for v in [1.0, 1.1, 0.9, 1.0, 1.05, 50.0]:
        ...     p.grad = torch.tensor([v]); info = clip([p])
        >>> bool(info["clipped"]), float(p.grad) < 1.3
        (True, True)
    """
    if k <= 0 or window < 2 or not 2 <= min_history <= window:
        raise ValueError(f"zscore_clip needs k > 0 and 2 <= min_history <= window; got k={k}, "
                         f"window={window}, min_history={min_history}")

    def init(params) -> ZScoreState:
        ps = [p for _, p in named_params(params)]
        return ZScoreState(torch.full((window,), float("nan"), device=ps[0].device if ps else None), 0)

    def update(params, state: ZScoreState, step):
        named = with_grads(params)
        if not named:
            return state, {"norm": None, "threshold": None, "coef": None, "clipped": False}
        grads = [p.grad for _, p in named]
        norm = _global_norm(grads)
        buf = state.norms
        valid = torch.isfinite(buf)
        n = valid.sum()
        mean = torch.where(valid, buf, 0.0).sum() / n.clamp(min=1)
        var = torch.where(valid, (buf - mean) ** 2, 0.0).sum() / (n - 1).clamp(min=1)
        threshold = torch.where(n >= min_history, mean + k * var.sqrt(), torch.inf).to(norm.device, norm.dtype)
        torch.nn.utils.clip_grads_with_norm_([p for _, p in named], threshold, norm, foreach=foreach_ok(grads))
        coef = torch.clamp(threshold / (norm + 1e-6), max=1.0)
        kept = torch.where(torch.isfinite(norm), torch.minimum(norm, threshold), torch.nan)
        buf[state.pos % window] = kept.to(buf.device, buf.dtype)
        return ZScoreState(buf, state.pos + 1), {"norm": norm, "threshold": threshold, "coef": coef,
                                                 "clipped": norm > threshold}

    return GradientTransform("zscore_clip", init, update, sink)


def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """Norm per output unit (over every dim but the first), shaped to broadcast against ``x``;
    for vectors and scalars, the norm of the whole tensor (as in the NFNets code).

    Example:
        >>> import torch
        >>> unitwise_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist()
        [[5.0], [1.0]]
        >>> unitwise_norm(torch.ones(8, 3, 3, 3)).shape, float(unitwise_norm(torch.tensor([3.0, 4.0])))
        (torch.Size([8, 1, 1, 1]), 5.0)
    """
    if x.dim() <= 1:
        return x.norm()
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def final_layer_params(model: nn.Module) -> list[str]:
    """Names of the parameters of the model's final weight layer (see ``layers.final_layer``).

    Example:
        >>> from torch import nn
        >>> final_layer_params(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3)))
        ['2.weight', '2.bias']
    """
    head = final_layer(model)
    if head is None:
        return []
    return [f"{head}.{n}" if head else n for n, _ in model.get_submodule(head).named_parameters()]


def _last_matrix_onwards(named: list[tuple[str, torch.Tensor]]) -> list[str]:
    idx = [i for i, (_, p) in enumerate(named) if p.dim() >= 2]
    return [n for n, _ in named[idx[-1]:]] if idx else []


def adaptive_grad_clip(clipping: float = 0.01, eps: float = 1e-3, exclude: Sequence[str] | str = "auto",
                       sink: Sink | None = None) -> GradientTransform:
    """Adaptive gradient clipping, unit-wise (Brock, De, Smith & Simonyan 2021, NFNets):
    where ‖G_i‖ / max(‖W_i‖, eps) > clipping, scale G_i to clipping·max(‖W_i‖, eps).

    Args:
        clipping: λ; 0.01–0.16 in the paper, smaller for larger batches.
        eps: the floor on ‖W_i‖, so zero-initialised weights can still move.
        exclude: parameter names left alone. ``"auto"``: the final layer's parameters — found
            by module when the transform is given the model, else the last matrix and what
            follows it in parameter order.

    Info: ``clipped_frac`` (fraction of units clipped), ``excluded`` (names).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> model(torch.randn(8, 4)).sum().mul(1e3).backward()
        >>> head = model[2].weight.grad.clone()
        >>> info = adaptive_grad_clip(0.01)(model)
        >>> info["excluded"], bool(torch.equal(model[2].weight.grad, head))
        (['2.weight', '2.bias'], True)
    """
    if clipping <= 0 or eps <= 0:
        raise ValueError(f"adaptive_grad_clip needs clipping > 0 and eps > 0; got {clipping}, {eps}")

    def init(params) -> tuple[str, ...]:
        if exclude != "auto":
            return tuple([exclude] if isinstance(exclude, str) else exclude)
        if isinstance(params, nn.Module):
            return tuple(final_layer_params(params))
        return tuple(_last_matrix_onwards(named_params(params)))

    @torch.no_grad()
    def update(params, excluded: tuple[str, ...], step):
        clipped, units, skip = [], 0, set(excluded)
        for name, p in with_grads(params):
            if name in skip:
                continue
            w_norm = unitwise_norm(p.detach()).clamp(min=eps)
            g_norm = unitwise_norm(p.grad)
            max_norm = w_norm * clipping
            p.grad.mul_(torch.clamp(max_norm / g_norm.clamp(min=1e-6), max=1.0))
            hit = (g_norm > max_norm).flatten()
            clipped.append(hit.sum())
            units += hit.numel()
        frac = torch.stack(clipped).sum() / max(units, 1) if clipped else None
        return excluded, {"clipped_frac": frac, "excluded": list(excluded)}

    return GradientTransform("adaptive_grad_clip", init, update, sink)
