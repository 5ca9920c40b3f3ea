"""Reading a run back: ``gw.load(run_dir)`` gives a :class:`Run` of pandas DataFrames.

Example:
    >>> # run = gw.load("runs/exp1")
    >>> # run.steps[["loss", "grad_norm"]].plot(); run.series("delta").iloc[-1]
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import Any

import numpy as np

from .store import MODULE_METRICS, PARAM_METRICS, connect, db_path, load_series, unpack


class Run:
    """A recorded run, read from its SQLite store. Every table comes back as a DataFrame.

    Attributes:
        dir: the run directory.
        meta: dict of the run's metadata (model description, config, argv, versions).
        params: DataFrame, one row per parameter tensor (name, module, shape, numel, dtype).
        modules: DataFrame, one row per module (name, type, activation, kind).
        steps: DataFrame indexed by step: loss, grad_norm, step_time, lr (list), stats (bool).
        events: DataFrame of one-off events (step, kind, detail dict).
        restarts: DataFrame, one row per resume (``restart`` events).
        superseded: DataFrame of the steps a resumed run trained again, as first recorded.

    Example:
        >>> # run = Run("runs/exp1"); run.series("grad_norm")  # steps x parameter names
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.db = db_path(run_dir)
        self.dir = self.db.parent
        self._cache: dict[str, Any] = {}

    def _con(self):
        return connect(self.db)

    @cached_property
    def meta(self) -> dict[str, Any]:
        with self._con() as con:
            return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}

    @cached_property
    def params(self):
        import pandas as pd

        with self._con() as con:
            df = pd.read_sql_query("SELECT * FROM params ORDER BY id", con)
        df["shape"] = df["shape"].map(lambda s: tuple(json.loads(s)))
        return df.set_index("id")

    @cached_property
    def modules(self):
        import pandas as pd

        with self._con() as con:
            return pd.read_sql_query("SELECT * FROM modules ORDER BY id", con).set_index("id")

    @cached_property
    def steps(self):
        import pandas as pd

        with self._con() as con:
            df = pd.read_sql_query("SELECT * FROM steps ORDER BY step", con)
        df["lr"] = df["lr"].map(lambda s: json.loads(s) if isinstance(s, str) else [])
        df["stats"] = df["stats"].astype(bool)
        df["extra"] = df["extra"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
        for col in ("loss", "grad_norm", "step_time", "time"):
            df[col] = df[col].astype(float)
        df["nonfinite"] = df["nonfinite"].map(lambda s: s if isinstance(s, str) else "")
        for i in np.flatnonzero(df["nonfinite"].to_numpy() != ""):
            for item in df["nonfinite"].iat[i].split(","):
                col, _, value = item.partition(":")
                df.loc[df.index[i], col] = float(value)
        return df.set_index("step")

    @cached_property
    def events(self):
        import pandas as pd

        with self._con() as con:
            df = pd.read_sql_query("SELECT step, kind, detail FROM events ORDER BY id", con)
        df["detail"] = df["detail"].map(json.loads)
        return df

    @cached_property
    def restarts(self):
        """One row per resume of the run (``restart`` events): ``step`` it started at, ``source``
        of that number, ``last_recorded`` step before it, how many steps it ``superseded``, and the
        ``unrecorded`` range trained but never written (the process died before its flush), if any.

        Example:
            >>> # run.restarts[["step", "source", "superseded"]]
        """
        import pandas as pd

        ev = self.events
        rows = [dict(d, step=s) for s, k, d in zip(ev.step, ev.kind, ev.detail) if k == "restart"]
        return pd.DataFrame(rows, columns=["step", "restart", "source", "last_recorded", "superseded",
                                           "unrecorded", "time"])

    @cached_property
    def superseded(self):
        """The steps a resumed run trained again, as recorded before its restart (kept, never
        mixed into :attr:`steps`): the columns of :attr:`steps` plus ``restart``, the number of the
        restart that superseded them. Empty for a run never resumed (and for schema-1 records).

        Example:
            >>> # run.superseded.groupby("restart").size()
        """
        import pandas as pd

        with self._con() as con:
            has = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'superseded_steps'").fetchone()
            if not has:
                return pd.DataFrame(columns=["restart", "step", "loss", "grad_norm"])
            df = pd.read_sql_query("SELECT * FROM superseded_steps ORDER BY restart, step", con)
        for col in ("loss", "grad_norm", "step_time", "time"):
            df[col] = df[col].astype(float)
        return df

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def series(self, metric: str):
        """Wide DataFrame of one metric: index = step, columns = parameter or module names.

        Per-parameter metrics: ``grad_norm``, ``grad_max``, ``grad_nonfinite``, ``weight_norm``,
        ``update_norm``, ``identical_frac``. Per-module: ``delta``, ``act_mean``, ``act_std``,
        ``act_sat``, ``act_zero``, ``act_silent``, ``act_dead``, ``act_nonfinite``,
        ``act_identical``, ``calls``. Steps where the metric was not measured are absent.

        Example:
            >>> # run.series("delta").iloc[0]   # δ per module at the first measured step
        """
        if metric not in self._cache:
            with self._con() as con:
                self._cache[metric] = load_series(self.db, metric, con=con)
        return self._cache[metric]

    def update_ratio(self):
        """‖Δw‖/‖w‖ per parameter at the steps where both were measured (Karpathy's ~1e-3 band).

        Example:
            >>> # run.update_ratio().median()   # per parameter
        """
        upd, w = self.series("update_norm"), self.series("weight_norm")
        common = upd.index.intersection(w.index)
        return upd.loc[common] / w.loc[common].where(w.loc[common] > 0)

    def calls(self):
        """Gradient norms per time step of a recurrent module (‖∂L/∂s_t‖ at a cell's state, NaN
        where none arrived; ‖∂L/∂x_t‖ at a fused RNN's input), and per call of other modules
        called several times per step.

        Returns a long DataFrame with columns ``step``, ``module``, ``call`` (0 = first call in
        the forward pass), ``delta``.

        Example:
            >>> # run.calls().query("module == 'cell'").groupby("call").delta.mean()
        """
        import pandas as pd

        names = self.modules["name"].tolist()
        rows = []
        with self._con() as con:
            for step, mod, dtype, data in con.execute(
                "SELECT step, module, dtype, data FROM calls ORDER BY step, module"
            ):
                v = unpack(data, dtype)
                rows.append(
                    pd.DataFrame(
                        {"step": step, "module": names[mod], "call": np.arange(len(v)), "delta": v}
                    )
                )
        if not rows:
            return pd.DataFrame({"step": [], "module": [], "call": [], "delta": []})
        return pd.concat(rows, ignore_index=True)

    @property
    def model(self) -> dict[str, Any]:
        """The model description taken when watching began (layers, activations, init gains…)."""
        return self.meta.get("model", {})

    def _repr_html_(self) -> str:  # Jupyter shows a run as its report
        from .report.html import render_html

        from .diagnosis import diagnose

        return render_html(self, diagnose(self))

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, steps={self.n_steps})"


def load(run_dir: str | os.PathLike) -> Run:
    """Open a recorded run.

    Args:
        run_dir: the directory passed as ``out=`` to :func:`gradwatch.watch` or ``--out``.

    Raises:
        StoreError: no run is stored there.

    Example:
        >>> # run = gw.load("runs/exp1"); run.steps.loss.plot()
    """
    return Run(run_dir)


__all__ = ["Run", "load", "PARAM_METRICS", "MODULE_METRICS"]
