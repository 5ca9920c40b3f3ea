"""What every rule needs from a recorded run, derived once: finite steps, the layer order,
the δ profile, update ratios, loss trends, and the model description.

Example:
    >>> # ctx = Context(gw.load("runs/x")); ctx.layers, ctx.delta_profile()
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..record import Run

_WEIGHT_KINDS = ("param", "recurrent", "attention")


class Context:
    """Derived views of a run, shared by the rules (computed lazily, once)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.model: dict[str, Any] = run.model or {}
        self.steps: pd.DataFrame = run.steps
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, compute):
        """``compute(self)``, computed once per context (for views several rules share).

        Example:
            >>> # ctx.memo("initial_scale", initial_scale_uncached)
        """
        if key not in self._memo:
            self._memo[key] = compute(self)
        return self._memo[key]

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    # ------------------------------------------------------------ non-finite cut
    @cached_property
    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss or global gradient norm was NaN/Inf (None if none)."""
        flags = self.steps["nonfinite"] if "nonfinite" in self.steps else pd.Series(dtype=str)
        bad = flags[flags != ""]
        return int(bad.index[0]) if len(bad) else None

    def finite(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows strictly before the first non-finite step."""
        cut = self.first_nonfinite_step
        return df if cut is None else df[df.index < cut]

    # ------------------------------------------------------------ layers
    @cached_property
    def layers(self) -> list[str]:
        """Weight-bearing modules in registration order (≈ input to output)."""
        m = self.run.modules
        return m[m["kind"].isin(_WEIGHT_KINDS)]["name"].tolist()

    @cached_property
    def layer_info(self) -> dict[str, dict[str, Any]]:
        return {layer["name"]: layer for layer in self.model.get("layers", [])}

    def series(self, metric: str) -> pd.DataFrame:
        """A metric restricted to finite steps, with all-NaN columns and rows dropped."""
        df = self.finite(self.run.series(metric))
        return df.dropna(axis=1, how="all").dropna(axis=0, how="all")

    def delta_profile(self) -> pd.DataFrame:
        """δ at the weight layers' outputs (columns input→output), measured finite steps."""
        d = self.series("delta")
        cols = [c for c in self.layers if c in d.columns]
        return d[cols]

    def weight_grad_profile(self) -> pd.DataFrame:
        """Gradient norm of each layer's weight (columns input→output), finite steps."""
        g = self.series("grad_norm")
        p = self.run.params
        cols = [n for n, mod in zip(p["name"], p["module"]) if mod in set(self.layers) and n.endswith("weight")
                and n in g.columns]
        order = {name: i for i, name in enumerate(self.layers)}
        cols.sort(key=lambda n: order.get(p.set_index("name").loc[n, "module"], 0))
        return g[cols]

    @cached_property
    def near_zero_init(self) -> set[str]:
        """Weights that started ≥ 10× below the LeCun scale 1/√fan_in (zero init, Fixup, ReZero):
        their ‖Δw‖/‖w‖ is large by construction and says nothing about the learning rate."""
        out = set()
        for layer in self.model.get("layers", []):
            if layer.get("weight_std", 1.0) < 0.1 / max(1, layer.get("fan_in", 1)) ** 0.5:
                out.add(f"{layer['name']}.weight" if layer["name"] else "weight")
        return out

    def update_ratio(self) -> pd.DataFrame:
        """‖Δw‖/‖w‖ per parameter at measured finite steps (weights with ≥ 2 dims that did not
        start near zero)."""
        r = self.finite(self.run.update_ratio())
        p = self.run.params.set_index("name")
        cols = [c for c in r.columns if len(p.loc[c, "shape"]) >= 2 and c not in self.near_zero_init]
        return r[cols].replace([np.inf, -np.inf], np.nan).dropna(axis=1, how="all")

    # ------------------------------------------------------------ loss
    @cached_property
    def loss(self) -> pd.Series:
        return self.steps["loss"].astype(float)

    def loss_finite(self) -> pd.Series:
        lo = self.loss
        return lo[np.isfinite(lo.to_numpy())]

    @cached_property
    def loss_graph(self) -> list[str]:
        return list(self.run.meta.get("loss_graph") or [])

    def module_type(self, name: str) -> str:
        m = self.run.modules
        row = m[m["name"] == name]
        return str(row["type"].iloc[0]) if len(row) else ""

    def activation_of(self, name: str) -> str:
        m = self.run.modules
        row = m[m["name"] == name]
        return str(row["activation"].iloc[0]) if len(row) else ""


def log_ratio_span(values: np.ndarray) -> float:
    """log10 of first / last of a positive profile (NaN if not computable)."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size < 2:
        return float("nan")
    return float(np.log10(v[0]) - np.log10(v[-1]))


def robust_profile(df: pd.DataFrame) -> np.ndarray:
    """Per-column median of log10 values over rows (ignores zeros/NaN), back in linear scale."""
    import warnings

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no signal there
        logs = np.log10(df.where(df > 0).to_numpy(dtype=float))
        med = np.nanmedian(logs, axis=0) if logs.size else np.array([])
    return np.power(10.0, med)
