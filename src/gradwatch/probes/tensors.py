"""Per-parameter statistics in a few fused kernels: norms, maxima, non-finite counts, updates.

Tensors are grouped by (device, dtype) and reduced with ``torch._foreach_norm``, as
``torch.nn.utils.clip_grad_norm_`` does; results are scattered into one float32 vector per
statistic, indexed by parameter, and stay on the device (NaN where a parameter had no gradient).

On the CPU, where ``_foreach_*`` is a loop over tensors with a dispatch per tensor, small tensors
of the same shape (the 2 000 weights and biases of a 1 000-layer MLP) are stacked and reduced in
one batched kernel instead: the same numbers, a fraction of the launches. The plan (which tensor
goes where) is computed once and cached while the pattern of missing gradients holds.

Example:
    >>> import torch
    >>> ps = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    >>> ps[0].grad = torch.full((3,), 2.0)
    >>> v = TensorStats(ps).grad_stats(full=False)
    >>> [round(float(x), 3) for x in v["grad_norm"]]  # the second has no gradient
    [3.464, nan]
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch


#: on the CPU, stack same-shaped tensors up to this many elements into one batched reduction
_STACK_MAX_NUMEL = 4096
#: ... when at least this many share the shape
_STACK_MIN_COUNT = 4


def _dense(t: torch.Tensor) -> torch.Tensor:
    if t.is_sparse:
        return t.coalesce().values()
    if t.layout != torch.strided:
        return t.to_dense()
    return t


class _Part:
    """One batch of the plan: tensors ``ix`` reduced together, written at ``index``."""

    __slots__ = ("ix", "index", "stack", "dense")

    def __init__(self, ix: list[int], device: torch.device, stack: bool, dense: bool) -> None:
        self.ix = ix
        self.index = torch.tensor(ix, device=device)
        self.stack = stack  # stacked into one (k, numel) matrix
        self.dense = dense  # some tensors need _dense() first (sparse gradients)


class TensorStats:
    """Computes statistics over a fixed list of parameters, vectorised by (device, dtype)."""

    def __init__(self, params: list[torch.Tensor], keep_snapshot: bool = False) -> None:
        self.params = params
        #: keep the snapshot's buffers between steps (statistics every step: no allocation each
        #: time, at the price of one copy of the weights held for the whole run)
        self.keep_snapshot = keep_snapshot
        self._buffers: tuple[list[_Part], list] | None = None
        self.n = len(params)
        devices = {p.device for p in params}
        self.device = next(iter(devices)) if len(devices) == 1 else torch.device("cpu")
        self._snapshot: list[tuple[_Part, object]] | None = None
        self._plans: dict[tuple, tuple[list[_Part], bool]] = {}
        self._weight_idx = [i for i, p in enumerate(params) if p.dim() >= 2 and not p.is_complex()]

    @property
    def params(self) -> list:
        """The parameters; a wrapper may stand in for one (a sharded parameter's local view) if it
        has ``.grad``, ``.detach()`` and the shape attributes."""
        return self._params

    @params.setter
    def params(self, params: list) -> None:
        self._params = params
        self._plain = all(isinstance(p, torch.Tensor) for p in params)

    def _weights(self) -> list:
        """The parameters' values: plain tensors as they are (the statistics run under no_grad, so
        no detach() per parameter: thousands of calls a step on a deep net), wrappers detached."""
        return self._params if self._plain else [p.detach() for p in self._params]

    # ------------------------------------------------------------ the plan
    def _plan(self, tensors: list[torch.Tensor | None], rebuild: bool = False) -> tuple[list[_Part], bool]:
        """The parts for this pattern of present tensors, and whether all are present."""
        missing = tuple(i for i, t in enumerate(tensors) if t is None)
        plan = None if rebuild else self._plans.get(missing)
        if plan is None:
            by_key: dict[tuple, list[int]] = defaultdict(list)
            shapes: dict[tuple, int] = defaultdict(int)
            for t in tensors:
                if t is not None and t.device.type == "cpu" and t.layout == torch.strided \
                        and 0 < t.numel() <= _STACK_MAX_NUMEL:
                    shapes[(t.dtype, tuple(t.shape))] += 1
            for i, t in enumerate(tensors):
                if t is None:
                    continue
                strided = t.layout == torch.strided
                shape = (t.dtype, tuple(t.shape))
                stack = t.device.type == "cpu" and strided and shapes.get(shape, 0) >= _STACK_MIN_COUNT
                key = (t.device, t.dtype, stack, tuple(t.shape) if stack else None)
                by_key[key].append(i)
            parts = []
            for (_, _, stack, _), ix in by_key.items():
                dense = any(tensors[i].layout != torch.strided for i in ix)
                parts.append(_Part(ix, self.device, stack, dense))
            plan = (parts, len(missing) == 0 and len(parts) == 1 and len(parts[0].ix) == self.n)
            if len(self._plans) > 8:
                self._plans.clear()
            self._plans[missing] = plan
        return plan

    def _reduce(self, tensors, each, stacked, present: list | None = None, stacks: dict | None = None) -> torch.Tensor:
        """A float32 vector over all tensors (NaN where None): ``each(list) -> list of 0-d`` for
        lists, ``stacked((k, numel) matrix) -> (k,)`` for stacked parts. ``stacks`` keeps the
        stacked matrices for another reduction of the same tensors (one copy, two statistics)."""
        try:
            return self._reduce_plan(self._plan(tensors), tensors, each, stacked, present, stacks)
        except RuntimeError:  # a layout, device or shape changed under the cached plan
            if present is not None:
                present.clear()
            if stacks is not None:
                stacks.clear()
            return self._reduce_plan(self._plan(tensors, rebuild=True), tensors, each, stacked, present, stacks)

    def _reduce_plan(self, plan, tensors, each, stacked, present, stacks) -> torch.Tensor:
        parts, whole = plan
        if whole:  # every tensor, one part: no scatter
            vals = self._part_values(parts[0], tensors, each, stacked, stacks, whole=True)
            if present is not None:
                present.append(vals)
            return vals
        out = torch.full((self.n,), float("nan"), device=self.device)
        for part in parts:
            vals = self._part_values(part, tensors, each, stacked, stacks)
            out.index_copy_(0, part.index, vals)
            if present is not None:
                present.append(vals)
        return out

    def _part_values(self, part: _Part, tensors, each, stacked, stacks=None, whole: bool = False) -> torch.Tensor:
        """``whole``: the part is every tensor in order, so the list itself will do."""
        if part.stack:
            m = None if stacks is None else stacks.get(part)
            if m is None:
                m = torch.stack([tensors[i] for i in part.ix]).reshape(len(part.ix), -1)
                if stacks is not None:
                    stacks[part] = m
            vals = stacked(m)
        else:
            if part.dense:
                ts = [_dense(tensors[i]) for i in part.ix]
            else:
                ts = tensors if whole else [tensors[i] for i in part.ix]
            vals = torch.stack(each(ts))
        if vals.dtype != torch.float32:
            vals = vals.float()
        return vals if vals.device == self.device else vals.to(self.device)

    # ------------------------------------------------------------ statistics
    def grad_stats(self, full: bool) -> dict[str, torch.Tensor]:
        """The per-step gradient statistics: grad_norm per parameter and the global norm (the
        norm of the per-parameter norms; NaN/Inf here flags a non-finite gradient). With
        ``full`` (the statistics steps) also grad_max and grad_nonfinite."""
        grads = [p.grad for p in self.params]
        norms: list[torch.Tensor] = []
        stacks: dict | None = {} if full else None  # the stacked small gradients serve both reductions
        stats = {"grad_norm": self._reduce(grads, _norm2, _norm2_rows, norms, stacks)}
        # NaN in grad_norm means "no gradient"; the global norm uses only real gradients
        if len(norms) == 1:
            stats["global_norm"] = torch.linalg.vector_norm(norms[0])
        else:
            stats["global_norm"] = (
                # no gradient at all (a graph that reaches none of these parameters): nothing to
                # step with, which is not a non-finite gradient
                torch.linalg.vector_norm(torch.cat(norms)) if norms else torch.zeros((), device=self.device)
            )
        if full:
            stats["grad_max"] = self._reduce(grads, _max_abs, max_abs_rows, stacks=stacks)
            stats["grad_nonfinite"] = self._nonfinite(grads, stats["grad_norm"])
        return stats

    def grad_norms(self) -> torch.Tensor:
        """The L2 norm of every parameter's gradient as it stands now (NaN where there is none).

        Example:
            >>> import torch
            >>> w = torch.nn.Parameter(torch.ones(3)); w.grad = torch.full((3,), 2.0)
            >>> TensorStats([w, torch.nn.Parameter(torch.ones(2))]).grad_norms().tolist()[1]
            nan
        """
        return self._reduce([p.grad for p in self.params], _norm2, _norm2_rows)

    def _nonfinite(self, grads, norms: torch.Tensor) -> torch.Tensor:
        """Count of NaN/Inf entries per gradient. A finite L2 norm means none (any NaN or Inf
        makes the sum of squares NaN or Inf), so on the CPU (where reading a flag is free) only
        the tensors whose norm is not finite are counted; elsewhere one fused pass, no sync."""
        if self.device.type == "cpu":
            out = torch.where(torch.isnan(norms), norms, torch.zeros_like(norms))  # NaN: no gradient
            bad = torch.isinf(norms) | (torch.isnan(norms) & _present_mask(grads, norms.device))
            if bool(bad.any()):
                for i in bad.nonzero().flatten().tolist():
                    g = _dense(grads[i])
                    out[i] = (~torch.isfinite(g)).sum().float()
            return out
        # x * 0 is 0 for finite x and NaN otherwise; the 0-"norm" counts non-zeros.
        return self._reduce(grads, lambda ts: torch._foreach_norm(torch._foreach_mul(ts, 0.0), 0),
                            lambda m: (~torch.isfinite(m)).sum(1))

    @torch.no_grad()
    def weight_stats(self) -> dict[str, torch.Tensor]:
        """weight_norm per parameter and identical_frac per ≥2-D weight (rows = units)."""
        data = self._weights()
        stats = {"weight_norm": self._reduce(data, _norm2, _norm2_rows)}
        stats["identical_frac"] = self._identical(data)
        return stats

    def _identical(self, data: list[torch.Tensor]) -> torch.Tensor:
        """identical_fraction of every ≥2-D weight: one product per weight (one per shape where
        small same-shape weights are stacked), then one sort for all of them, rows NaN-padded."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in self._weight_idx:
            p = data[i]
            if p.numel() and not p.is_meta and p.layout == torch.strided:
                groups[(p.device, p.dtype, tuple(p.shape))].append(i)
        ident = torch.full((self.n,), float("nan"), device=self.device)
        if not groups:
            return ident
        blocks: list[tuple[list[int], int, torch.Tensor | list[torch.Tensor]]] = []  # (ix, rows, projections)
        for (dev, _, shape), ix in groups.items():
            rows, cols = shape[0], math.prod(shape[1:])
            v = combined_projection(cols, dev)
            if len(ix) > 1 and rows * cols <= _STACK_MAX_NUMEL and dev.type == "cpu":
                blocks.append((ix, rows, torch.stack([data[i] for i in ix]).reshape(len(ix), rows, cols).float() @ v))
            else:
                blocks.append((ix, rows, [data[i].reshape(rows, cols).float() @ v for i in ix]))
        total = sum(len(ix) for ix, _, _ in blocks)
        padded = torch.full((total, max(rows for _, rows, _ in blocks)), float("nan"), device=self.device)
        counts = torch.empty(total, device=self.device)
        at = 0
        for ix, rows, sig in blocks:
            if isinstance(sig, torch.Tensor):
                padded[at:at + len(ix), :rows] = sig
            else:
                for j, one in enumerate(sig):
                    padded[at + j, :rows] = one
            counts[at:at + len(ix)] = rows
            at += len(ix)
        order = torch.tensor([i for ix, _, _ in blocks for i in ix], device=self.device)
        ident.index_copy_(0, order, twin_fraction(padded, counts))
        return ident

    @torch.no_grad()
    def snapshot(self) -> None:
        """Keep a copy of the weights, to measure the optimizer's update afterwards."""
        data = self._weights()
        parts, _ = self._plan(data)
        kept = self._buffers
        if kept is not None and kept[0] is parts:  # the same plan: copy into last step's buffers
            for part, saved in kept[1]:
                if part.stack:
                    torch.stack([data[i] for i in part.ix], out=saved)
                else:
                    torch._foreach_copy_(saved, [data[i] for i in part.ix])
            self._snapshot = kept[1]
            return
        snap = []
        for part in parts:
            if part.stack:
                snap.append((part, torch.stack([data[i] for i in part.ix])))
            else:
                snap.append((part, [data[i].clone() for i in part.ix]))
        self._snapshot = snap
        self._buffers = (parts, snap) if self.keep_snapshot and not any(p.dense for p in parts) else None

    @torch.no_grad()
    def update_norm(self) -> torch.Tensor | None:
        """‖w_now − w_snapshot‖ per parameter (any optimizer), then drop the snapshot."""
        if self._snapshot is None:
            return None
        snap, self._snapshot = self._snapshot, None
        now = self._weights()
        out = torch.full((self.n,), float("nan"), device=self.device)
        for part, saved in snap:
            if part.stack:
                saved.sub_(torch.stack([now[i] for i in part.ix]))
                vals = _norm2_rows(saved.reshape(len(part.ix), -1))
            else:
                torch._foreach_sub_(saved, [now[i] for i in part.ix])
                vals = torch.stack(_norm2(saved))
            out.index_copy_(0, part.index, vals.float().to(self.device))
        return out


# ---------------------------------------------------------------- reductions


def _present_mask(tensors, device) -> torch.Tensor:
    return torch.tensor([t is not None for t in tensors], device=device)


def _norm2(ts):
    return torch._foreach_norm(ts, 2)


def _norm2_rows(m: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(m, dim=1)


def _max_abs(ts):
    if ts and ts[0].device.type != "cpu":
        return torch._foreach_norm(ts, float("inf"))  # one fused kernel on an accelerator
    # the CPU's inf-norm is a slow path; min and max in one pass is not (NaN propagates)
    out = []
    for t in ts:
        if t.numel() == 0:
            out.append(torch.zeros((), dtype=t.dtype, device=t.device))
        elif t.is_complex():
            out.append(t.abs().amax())
        else:
            lo, hi = torch.aminmax(t)
            out.append(torch.maximum(hi, lo.neg()))
    return out


def max_abs_rows(m: torch.Tensor) -> torch.Tensor:
    """max |x| of each row of a (k, n) matrix, NaN where a row has NaN; on the CPU ``amax`` and
    ``amin`` are vectorised where ``aminmax(dim=1)`` is not (8x faster) and ``abs()`` would copy."""
    if m.is_complex():
        return m.abs().amax(dim=1)
    return torch.maximum(m.amax(dim=1), m.amin(dim=1).neg())


_PROJECTIONS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def projection(cols: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The random vectors of :func:`~gradwatch.probes.activations.identical_fraction` for rows of
    ``cols`` entries (same seed, so the same numbers), made once per (cols, device)."""
    key = (cols, device)
    pr = _PROJECTIONS.get(key)
    if pr is None:
        gen = torch.Generator(device="cpu").manual_seed(1234)
        r = torch.randn(cols, generator=gen, dtype=torch.float32).to(device)
        r2 = torch.randn(cols, generator=gen, dtype=torch.float32).to(device)
        if len(_PROJECTIONS) > 64:
            _PROJECTIONS.clear()
        pr = _PROJECTIONS[key] = (r, r2)
    return pr


def combined_projection(cols: int, device: torch.device) -> torch.Tensor:
    """``r + 1e-3·r2`` of :func:`projection`: ``m @ r + 1e-3·(m @ r2)`` in one product."""
    key = ("combined", cols, device)
    v = _PROJECTIONS.get(key)
    if v is None:
        r, r2 = projection(cols, device)
        v = _PROJECTIONS[key] = r + 1e-3 * r2
    return v


def twin_fraction(sig: torch.Tensor, counts: torch.Tensor | None = None, rtol: float = 1e-5) -> torch.Tensor:
    """The fraction of rows with a twin, per matrix, from the rows' projections ``sig`` (k, rows):
    two rows are twins when their projections differ by at most ``rtol`` of the matrix's largest
    projection (identical rows project to the same number up to rounding; distinct ones almost
    never come that close). Rows may be NaN-padded, with ``counts`` (k,) the real rows per matrix.

    Example:
        >>> twin_fraction(torch.tensor([[1.0, 2.0, 1.0], [3.0, -3.0, float("nan")]]), torch.tensor([3, 2]))
        tensor([0.6667, 0.0000])
    """
    k, n = sig.shape
    scale = sig.abs().nan_to_num_(0.0).amax(dim=1) + 1e-30
    s, _ = torch.sort(sig, dim=1)  # NaN (padding) sorts last and is nobody's twin
    close = (s[:, 1:] - s[:, :-1]).abs() <= rtol * scale[:, None]
    twin = torch.zeros(k, n, dtype=torch.bool, device=sig.device)
    twin[:, 1:] |= close
    twin[:, :-1] |= close
    if counts is None:
        return twin.float().mean(dim=1)
    return twin.sum(dim=1).float() / counts.clamp(min=1)
