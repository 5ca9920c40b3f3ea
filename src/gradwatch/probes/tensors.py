"""Per-parameter statistics in a few fused kernels: norms, maxima, non-finite counts, updates.

Tensors are grouped by (device, dtype) and reduced with ``torch._foreach_norm``, as
``torch.nn.utils.clip_grad_norm_`` does; results are scattered into one float32 vector per
statistic, indexed by parameter, and stay on the device (NaN where a parameter had no gradient).

Example:
    >>> import torch
    >>> ps = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    >>> ps[0].grad = torch.full((3,), 2.0)
    >>> v = TensorStats(ps).grad_stats(full=False)
    >>> [round(float(x), 3) for x in v["grad_norm"]]  # the second has no gradient
    [3.464, nan]
"""

from __future__ import annotations

from collections import defaultdict

import torch

from .activations import identical_fraction


def _dense(t: torch.Tensor) -> torch.Tensor:
    if t.is_sparse:
        return t.coalesce().values()
    if t.layout != torch.strided:
        return t.to_dense()
    return t


class TensorStats:
    """Computes statistics over a fixed list of parameters, vectorised by (device, dtype)."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.n = len(params)
        devices = {p.device for p in params}
        self.device = next(iter(devices)) if len(devices) == 1 else torch.device("cpu")
        self._snapshot: list[torch.Tensor] | None = None
        self._group_cache: dict[tuple, list] = {}
        self._weight_idx = [i for i, p in enumerate(params) if p.dim() >= 2 and not p.is_complex()]

    def _groups(self, tensors: list[torch.Tensor | None]):
        """[(index tensor, tensors)] per (device, dtype); cached while the pattern holds."""
        pattern = tuple(None if t is None else (t.device, t.dtype, t.layout) for t in tensors)
        cached = self._group_cache.get(pattern)
        if cached is None:
            by_key: dict[tuple, list[int]] = defaultdict(list)
            for i, key in enumerate(pattern):
                if key is not None:
                    by_key[key[:2]].append(i)
            cached = [(idx, torch.tensor(idx, device=self.device)) for idx in by_key.values()]
            if len(self._group_cache) > 8:
                self._group_cache.clear()
            self._group_cache[pattern] = cached
        return [(index, [_dense(tensors[i]) for i in idx]) for idx, index in cached]

    def _reduce(self, tensors, fn, present: list | None = None) -> torch.Tensor:
        groups = self._groups(tensors)
        if len(groups) == 1 and groups[0][0].numel() == self.n:  # every tensor, one group
            vals = torch.stack(fn(groups[0][1])).float().to(self.device)
            if present is not None:
                present.append(vals)
            return vals
        out = torch.full((self.n,), float("nan"), device=self.device)
        for index, ts in groups:
            vals = torch.stack(fn(ts)).float().to(self.device)
            out.index_copy_(0, index, vals)
            if present is not None:
                present.append(vals)
        return out

    def grad_stats(self, full: bool) -> dict[str, torch.Tensor]:
        """The per-step gradient statistics: grad_norm per parameter and the global norm (one
        fused norm per (device, dtype) group; NaN/Inf here flags a non-finite gradient). With
        ``full`` (the statistics steps) also grad_max and grad_nonfinite."""
        grads = [p.grad for p in self.params]
        norms: list[torch.Tensor] = []
        stats = {"grad_norm": self._reduce(grads, lambda ts: torch._foreach_norm(ts, 2), norms)}
        # NaN in grad_norm means "no gradient"; the global norm uses only real gradients
        stats["global_norm"] = (
            torch.linalg.vector_norm(torch.cat(norms)) if norms else torch.tensor(float("nan"))
        )
        if full:
            stats["grad_max"] = self._reduce(grads, lambda ts: torch._foreach_norm(ts, float("inf")))
            # x * 0 is 0 for finite x and NaN otherwise; the 0-"norm" counts non-zeros.
            stats["grad_nonfinite"] = self._reduce(
                grads, lambda ts: torch._foreach_norm(torch._foreach_mul(ts, 0.0), 0)
            )
        return stats

    @torch.no_grad()
    def weight_stats(self) -> dict[str, torch.Tensor]:
        """weight_norm per parameter and identical_frac per ≥2-D weight (rows = units)."""
        data = [p.detach() for p in self.params]
        stats = {"weight_norm": self._reduce(data, lambda ts: torch._foreach_norm(ts, 2))}
        ident = torch.full((self.n,), float("nan"), device=self.device)
        for i in self._weight_idx:
            p = self.params[i]
            if p.numel() and not p.is_meta:
                ident[i] = identical_fraction(p.detach()).to(self.device)
        stats["identical_frac"] = ident
        return stats

    @torch.no_grad()
    def snapshot(self) -> None:
        """Keep a copy of the weights, to measure the optimizer's update afterwards."""
        self._snapshot = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update_norm(self) -> torch.Tensor | None:
        """‖w_now − w_snapshot‖ per parameter (any optimizer), then drop the snapshot."""
        if self._snapshot is None:
            return None
        now = [p.detach() for p in self.params]
        diffs: list[torch.Tensor | None] = [None] * self.n
        for idx, _ in self._groups(now):
            sub = torch._foreach_sub([now[i] for i in idx], [self._snapshot[i] for i in idx])
            for j, i in enumerate(idx):
                diffs[i] = sub[j]
        self._snapshot = None
        return self._reduce(diffs, lambda ts: torch._foreach_norm(ts, 2))
