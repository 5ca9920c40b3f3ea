"""Per-layer views of a recorded run, read straight from the store: which layers were
measured, in what order to show them, and the rows of the per-layer gradient table.

The report shows layers from the output back to the input, the direction the gradient flows.

Example:
    >>> # rows = layer_rows(gw.load("runs/x"))   # one dict per module, forward order
    >>> # rows[0]["grad_norm"], rows[0]["delta"]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def measured(df) -> list[str]:
    """Columns of a wide series with at least one recorded (non-NaN) value, in store order."""
    if df is None or df.empty:
        return []
    has = ~np.isnan(df.to_numpy(dtype=float)).all(axis=0)
    return [c for c, h in zip(df.columns, has) if h]


def output_first(names: list[str], all_modules: list[str] | None = None) -> list[str]:
    """Forward order reversed: the output layer first, the input layer last.

    Names are in registration order. With ``all_modules`` (the run's module names), a
    container (the root ``""`` included) is placed at its last submodule, whose output it
    returns, so the model's output comes first rather than last.

    Example:
        >>> output_first(["", "0", "1"], ["", "0", "1"])
        ['', '1', '0']
    """
    if not all_modules:
        return list(reversed(names))
    index = {n: i for i, n in enumerate(all_modules)}

    def key(name: str):
        prefix = name + "." if name else ""
        last = max((i for n, i in index.items() if n.startswith(prefix) and n != name),
                   default=index.get(name, -1))
        return (last, -name.count(".") - bool(name))  # a child's output comes before its parent's

    return sorted(names, key=key, reverse=True)


def pick_steps(steps: list[int], k: int = 3) -> list[int]:
    """First, middle and last of the measured steps (fewer when fewer were measured).

    Example:
        >>> pick_steps([0, 10, 20, 30, 40]), pick_steps([5])
        ([0, 20, 40], [5])
    """
    steps = list(steps)
    if len(steps) <= k:
        return steps
    idx = np.linspace(0, len(steps) - 1, k).round().astype(int)
    return [steps[i] for i in dict.fromkeys(idx.tolist())]


def weight_params(run) -> list[str]:
    """Names of matrix/kernel parameters (2 or more dims); all parameters when there are none.

    Biases and norm gains have tiny norms whose update ratios say little about the learning
    rate, so the per-layer figures show weights (Karpathy, "A Recipe for Training Neural
    Networks", 2019).
    """
    p = run.params
    if p.empty:
        return []
    w = [n for n, s in zip(p["name"], p["shape"]) if len(s) >= 2]
    return w or list(p["name"])


def series_or_none(run, metric: str):
    """``run.series(metric)`` when anything was recorded for it, else None."""
    try:
        df = run.series(metric)
    except Exception:  # noqa: BLE001 - a metric the store does not know is simply absent
        return None
    return df if measured(df) else None


def _at(df, step: int | None, exact: bool = False) -> dict[str, float]:
    """Values of a wide series at ``step`` (or the latest measured step at or before it)."""
    if df is None or df.empty:
        return {}
    idx = df.index
    if step is None:
        row = df.iloc[-1]
    else:
        prior = idx[idx <= step]
        if len(prior) == 0 or (exact and prior[-1] != step):
            return {}
        row = df.loc[prior[-1]]
    return {k: float(v) for k, v in row.items()}


def table_step(run) -> int | None:
    """The default step of the layer table: the last step with slow statistics, else the last."""
    for metric in ("delta", "act_mean", "weight_norm", "grad_norm"):
        df = series_or_none(run, metric)
        if df is not None:
            return int(df.index[-1])
    return int(run.steps.index[-1]) if len(run.steps) else None


def stats_step(run, step: int) -> int | None:
    """The last step at or before ``step`` where the slow statistics (δ, activations) were taken."""
    for metric in ("delta", "act_mean", "weight_norm"):
        df = series_or_none(run, metric)
        if df is not None:
            prior = df.index[df.index <= step]
            return int(prior[-1]) if len(prior) else None
    return None


def layer_rows(run, step: int | None = None) -> tuple[int | None, list[dict[str, Any]]]:
    """Rows of the per-layer gradient table at ``step`` (default: see :func:`table_step`).

    One row per module that has anything recorded, in forward (registration) order. A module
    that owns a single weight (plus maybe a bias) shows the weight's gradient norm and
    update ratio on its own row; any other parameters get rows of their own under it.

    Returns:
        ``(step, rows)``; each row has ``name``, ``type``, ``param`` (True for a parameter
        row), ``grad_norm``, ``delta``, ``update_ratio``, ``act_mean``, ``act_sat``,
        ``act_dead`` (NaN when not recorded; a gradient with NaN/inf entries reads inf).
    """
    step = table_step(run) if step is None else int(step)
    if step is None:
        return None, []
    grad = _at(series_or_none(run, "grad_norm"), step, exact=True)
    nonfin = _at(series_or_none(run, "grad_nonfinite"), step, exact=True)
    ratio_df = run.update_ratio() if series_or_none(run, "update_norm") is not None else None
    ratio = _at(ratio_df, step)
    delta = _at(series_or_none(run, "delta"), step)
    act = {m: _at(series_or_none(run, m), step) for m in ("act_mean", "act_sat", "act_dead")}
    nan = math.nan
    by_module: dict[str, list[str]] = {}
    for name, mod in zip(run.params["name"], run.params["module"]):
        by_module.setdefault(mod, []).append(name)
    rows = []
    for name, typ in zip(run.modules["name"], run.modules["type"]):
        owned = by_module.get(name, [])
        leaf = [p for p in owned if p.rsplit(".", 1)[-1] not in ("weight", "bias")]
        main = next((p for p in owned if p.rsplit(".", 1)[-1] == "weight"), None) if not leaf else None
        row = dict(name=name, type=typ, param=False,
                   grad_norm=_grad(grad, nonfin, main) if main else nan,
                   update_ratio=ratio.get(main, nan) if main else nan,
                   delta=delta.get(name, nan),
                   **{m: act[m].get(name, nan) for m in act})
        subs = [dict(name=p, type="", param=True, grad_norm=_grad(grad, nonfin, p),
                     update_ratio=ratio.get(p, nan), delta=nan, act_mean=nan, act_sat=nan,
                     act_dead=nan) for p in (owned if leaf else [])]
        subs = [r for r in subs if _has_data(r)]
        if subs or _has_data(row):
            rows.append(row)
            rows.extend(subs)
    return step, rows


def _grad(grad: dict[str, float], nonfinite: dict[str, float], name: str) -> float:
    """The gradient norm, made inf when the store counted non-finite entries in it."""
    if nonfinite.get(name, 0.0) > 0:
        return math.inf
    return grad.get(name, math.nan)


def _has_data(row: dict[str, Any]) -> bool:
    return any(not math.isnan(v) for k, v in row.items() if k not in ("name", "type", "param"))
