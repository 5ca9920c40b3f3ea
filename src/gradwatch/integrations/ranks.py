"""Combining the records of the ranks of a distributed job into one, as rank 0 writes it, and
finding the ranks whose gradients differ after the all-reduce.

Every rank measures its own step: the loss of its micro-batch, δ and activations on its share
of the data, the gradient it holds. Rank 0 gathers the batches of records and writes what a
single process training on the whole global batch would have recorded:

===================  ==================================  ===================================
quantity             DDP (replicated gradients)          FSDP (sharded gradients)
===================  ==================================  ===================================
loss                 mean over ranks (NaN if any is)     same
global grad norm     max over ranks (NaN if any is)      √Σ of the shards' norms²
grad_norm / _max     max (identical when in sync)        √Σ shard norms² / max
grad_nonfinite       max                                 sum
weight/update norm   rank 0 / max                        √Σ shard norms²
δ (per module, call) √(Σ_r δ_r²) / R: the gradient of the mean loss w.r.t. the whole batch
act_nonfinite        sum (a NaN on any rank shows)
act_dead             min (a unit is dead only if dead on every rank)
other act_* stats    mean over ranks (equal shares of the batch)
step_time            max (the slowest rank sets the pace)
===================  ==================================  ===================================

With DDP every rank holds the same averaged gradient after ``backward()``; a parameter whose
gradient norm (or max) differs between ranks was not averaged — it lives outside the DDP
module, or the last backward before ``step()`` ran under ``no_sync()`` — and the replicas are
drifting apart. :func:`unsynced` finds them; no other tool looks.

Example:
    >>> import numpy as np
    >>> a = {"rank": 0, "steps": [dict(step=0, loss=1.0, grad_norm=2.0, step_time=0.1)],
    ...      "series": [(0, {"grad_norm": np.array([1.0, 2.0], dtype=np.float32)})], "calls": []}
    >>> b = {"rank": 1, "steps": [dict(step=0, loss=3.0, grad_norm=2.0, step_time=0.2)],
    ...      "series": [(0, {"grad_norm": np.array([1.0, 2.5], dtype=np.float32)})], "calls": []}
    >>> steps, series, calls = merge([a, b])
    >>> steps[0]["loss"], steps[0]["step_time"]
    (2.0, 0.2)
    >>> unsynced([a, b], ["w", "b"])["params"]
    ['b']
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

_PARAM_MAX = {"grad_norm", "grad_max", "grad_nonfinite", "update_norm"}
_SHARD_RSS = {"grad_norm", "weight_norm", "update_norm"}
_SHARD_SUM = {"grad_nonfinite"}
_SUM = {"act_nonfinite"}
_MIN = {"act_dead"}
_MEAN = {"act_mean", "act_std", "act_sat", "act_zero", "act_silent", "act_identical"}


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _stack(vs: list[np.ndarray]) -> np.ndarray | None:
    if not vs or any(v.shape != vs[0].shape for v in vs):
        return None
    return np.stack([np.asarray(v, dtype=np.float64) for v in vs])


def _combine(metric: str, vs: list[np.ndarray], sharded: bool) -> np.ndarray:
    m = _stack(vs)
    if m is None:  # layouts differ between ranks (should not happen): keep rank 0's
        return vs[0]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if metric == "delta":
            out = np.sqrt((m ** 2).sum(0)) / len(vs)
        elif sharded and metric in _SHARD_RSS:
            out = np.sqrt((m ** 2).sum(0))
        elif sharded and metric in _SHARD_SUM:
            out = m.sum(0)
        elif metric in _PARAM_MAX:
            out = m.max(0)  # NaN on any rank stays NaN
        elif metric in _SUM:
            out = np.where(np.isnan(m).all(0), np.nan, np.nansum(m, 0))
        elif metric in _MIN:
            out = np.nanmin(m, 0)
        elif metric in _MEAN or sharded:
            out = np.nanmean(m, 0)
        else:  # weight_norm, identical_frac, calls: the same on every replica
            out = m[0]
    return out.astype(np.float32)


def merge(parts: list[dict[str, Any]], sharded: bool = False):
    """Combine the ranks' record batches into ``(steps, series, calls)`` rows for the store.

    Args:
        parts: one dict per rank (rank 0 first): ``steps`` (rows), ``series`` ((step, {metric:
            vector})), ``calls`` ((step, module, vector)), as the watcher hands them to its store.
        sharded: FSDP: each rank holds a shard of every parameter (norms add in quadrature).
    """
    parts = sorted(parts, key=lambda p: p["rank"])
    n = len(parts)
    by_step: dict[int, list[dict]] = {}
    for p in parts:
        for row in p["steps"]:
            by_step.setdefault(int(row["step"]), []).append(row)
    steps = []
    for step in sorted(by_step):
        rows = by_step[step]
        out = dict(rows[0])
        losses = [_num(r.get("loss")) for r in rows if r.get("loss") is not None]
        out["loss"] = float(np.mean(losses)) if losses else None
        norms = [_num(r.get("grad_norm")) for r in rows]
        if sharded:
            out["grad_norm"] = math.sqrt(sum(g * g for g in norms)) if len(norms) == n else float("nan")
        else:
            out["grad_norm"] = float("nan") if any(math.isnan(g) for g in norms) else max(norms)
        out["step_time"] = max(_num(r.get("step_time")) for r in rows)
        steps.append(out)
    vec: dict[tuple[int, str], list[np.ndarray]] = {}
    for p in parts:
        for step, vectors in p["series"]:
            for metric, v in vectors.items():
                vec.setdefault((int(step), metric), []).append(np.asarray(v))
    series: dict[int, dict[str, np.ndarray]] = {}
    for (step, metric), vs in vec.items():
        series.setdefault(step, {})[metric] = _combine(metric, vs, sharded) if len(vs) == n else vs[0]
    calls: dict[tuple[int, int], list[np.ndarray]] = {}
    for p in parts:
        for step, module, v in p["calls"]:
            calls.setdefault((int(step), int(module)), []).append(np.asarray(v))
    call_rows = [(s, m, _combine("delta", vs, sharded) if len(vs) == n else vs[0])
                 for (s, m), vs in sorted(calls.items())]
    return steps, sorted(series.items()), call_rows


def _differs(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return np.zeros(0, dtype=bool), np.zeros(0)
    with np.errstate(all="ignore"):
        same = (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=rtol, atol=0.0)
        rel = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-30)
    rel = np.where(same, 0.0, np.where(np.isfinite(rel), rel, np.inf))
    return ~same, rel


def unsynced(parts: list[dict[str, Any]], names: list[str], rtol: float = 1e-5) -> dict[str, Any] | None:
    """Parameters whose gradient differs between ranks after the all-reduce (None if none).

    Compares each rank's per-parameter gradient L2 norm and max |g| with rank 0's at every
    step, and the weight norms where they were measured (replicas that already drifted).
    ``rtol`` allows for reduction-order rounding; an all-reduce gives every rank the very same
    bits, so real differences are far larger.

    Returns:
        ``{"params", "ranks", "first_step", "last_step", "steps", "max_rel_diff",
        "weights_differ"}`` or None.
    """
    parts = sorted(parts, key=lambda p: p["rank"])
    base = {(int(s), m): v for s, vecs in parts[0]["series"] for m, v in vecs.items()}
    bad_params: set[int] = set()
    weights: set[int] = set()
    ranks: set[int] = set()
    steps: set[int] = set()
    worst = 0.0
    for p in parts[1:]:
        for step, vecs in p["series"]:
            for metric in ("grad_norm", "grad_max", "weight_norm"):
                if metric not in vecs or (int(step), metric) not in base:
                    continue
                diff, rel = _differs(base[(int(step), metric)], vecs[metric], rtol)
                if not diff.any():
                    continue
                idx = set(np.flatnonzero(diff).tolist())
                (weights if metric == "weight_norm" else bad_params).update(idx)
                ranks.add(int(p["rank"]))
                steps.add(int(step))
                worst = max(worst, float(rel.max()))
    if not steps:
        return None
    label = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    return {"params": [label(i) for i in sorted(bad_params)], "ranks": sorted(ranks),
            "first_step": min(steps), "last_step": max(steps), "steps": len(steps),
            "max_rel_diff": worst, "weights_differ": [label(i) for i in sorted(weights)]}


__all__ = ["merge", "unsynced"]
