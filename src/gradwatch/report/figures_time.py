"""The report's figures over time: loss and global gradient norm per step, and the gradient
at each call of a module run many times per step (through time).

Example:
    >>> # fig = fig_loss(gw.load("runs/x")); fig and fig.savefig("loss.png")
"""

from __future__ import annotations

import numpy as np

from .plotting import (COLORS, dedupe_legend, geomean, log_scale, mark_edges, name_label,
                       new_figure, safe)

_EVENT_COLORS = ["#8e44ad", "#16a085", "#d35400", "#2c3e50", "#7f8c8d", "#c71585"]


def fig_loss(run):
    """Loss (linear, or log when it spans orders of magnitude) and global ‖g‖ (log) per step.

    Steps where the loss or the gradient was NaN/inf are shaded red; recorded events (guard
    actions, skipped steps, clipping) are marked along the top with their kind.
    Needs: the loss or the global gradient norm per step.
    """
    st = run.steps
    if st is None or st.empty:
        return None
    steps = np.asarray(st.index, dtype=float)
    loss = st["loss"].to_numpy(dtype=float)
    gn = st["grad_norm"].to_numpy(dtype=float)
    has_loss, has_gn = np.isfinite(loss).any(), np.isfinite(gn).any()
    if not (has_loss or has_gn or np.isinf(loss).any() or np.isinf(gn).any()):
        return None
    bad = _nonfinite_steps(st, loss, gn, has_gn)
    panels = [p for p, keep in (("loss", has_loss), ("grad", has_gn or np.isinf(gn).any())) if keep]
    fig, axes = new_figure(10.8, 2.3 + 1.5 * len(panels), nrows=len(panels), sharex=True)
    for ax, what in zip(axes, panels):
        if what == "loss":
            _series(ax, steps, loss, COLORS["ink"])
            pos = loss[np.isfinite(loss)]
            if pos.size and (pos > 0).all() and pos.max() / pos.min() > 100:
                ax.set_yscale("log")
            ax.set_ylabel("loss", fontsize=8)
        else:
            _series(ax, steps, np.where(gn > 0, gn, np.nan), COLORS["info"])
            log_scale(ax, gn)
            ax.set_ylabel("global ‖g‖", fontsize=8)
            mark_edges(ax, steps[gn == 0], [])
        _shade(ax, steps, bad)
    _events(axes[0], run)
    axes[-1].set_xlabel("step", fontsize=8)
    for ax in axes:
        dedupe_legend(ax, loc="upper right")
    return fig


def _nonfinite_steps(st, loss, gn, has_gn):
    """Steps whose loss or global gradient norm was NaN/inf.

    The store names them in the ``nonfinite`` column (SQLite reads NaN back as NULL, the
    same as "not recorded"); without it, only an inf loss, or a NaN/inf gradient norm in a
    run that recorded gradient norms, counts.
    """
    if "nonfinite" in st.columns:
        named = st["nonfinite"].map(lambda s: bool(s) if isinstance(s, str) else False).to_numpy(dtype=bool)
        return named | np.isinf(loss) | np.isinf(gn)
    return np.isinf(loss) | (~np.isfinite(gn) if has_gn else np.isinf(gn))


def _series(ax, steps, y, color) -> None:
    """Raw values, with a running median on top when there are many noisy steps."""
    ok = np.isfinite(y)
    if ok.sum() > 200:
        ax.plot(steps, np.where(ok, y, np.nan), color=color, alpha=0.25, lw=0.8)
        import pandas as pd

        w = max(5, int(ok.sum() // 60))
        smooth = pd.Series(np.where(ok, y, np.nan)).rolling(w, center=True, min_periods=1).median()
        ax.plot(steps, smooth.to_numpy(), color=color, lw=1.5, label=f"running median ({w} steps)")
    else:
        ax.plot(steps, np.where(ok, y, np.nan), color=color, lw=1.4, marker="." if ok.sum() < 40 else None)


def _shade(ax, steps, bad) -> None:
    """Shade runs of consecutive non-finite steps."""
    if not bad.any():
        return
    half = (np.median(np.diff(steps)) if len(steps) > 1 else 1.0) / 2
    idx = np.flatnonzero(bad)
    starts = idx[np.r_[True, np.diff(idx) > 1]]
    ends = idx[np.r_[np.diff(idx) > 1, True]]
    for a, b in zip(starts, ends):
        ax.axvspan(steps[a] - half, steps[b] + half, color=COLORS["bad"], alpha=0.22, lw=0,
                   label="NaN / inf")


def _events(ax, run) -> None:
    """Mark recorded events along the top of the axes, one colour per kind."""
    from matplotlib.transforms import blended_transform_factory

    try:
        ev = run.events
    except Exception:  # noqa: BLE001 - no events table: nothing to mark
        return
    if ev is None or ev.empty:
        return
    ev = ev[ev["step"].notna() & (ev["kind"] != "metrics")]
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    for i, (kind, grp) in enumerate(ev.groupby("kind", sort=False)):
        color = _EVENT_COLORS[i % len(_EVENT_COLORS)]
        x = grp["step"].to_numpy(dtype=float)
        if len(x) <= 30:
            for s in x:
                ax.axvline(s, color=color, lw=0.8, ls=":", alpha=0.7)
        ax.scatter(x, np.full(len(x), 1.0), transform=tr, marker="v", s=30, color=color,
                   clip_on=False, zorder=6, label=f"{safe(kind)} ({len(x)})")


def fig_through_time(run, max_modules: int = 5):
    """Gradient norm at each call of a module called several times per step, vs call index.

    The geometric mean over steps, with the min–max range shaded. Falling towards call 0 is the
    gradient vanishing back through time (Bengio, Simard & Frasconi 1994; Pascanu et al. 2013).
    Needs: per-call gradients (a module run in a loop, e.g. an RNN cell).
    """
    calls = run.calls()
    if calls is None or calls.empty:
        return None
    n_calls = calls.groupby("module")["call"].max() + 1
    mods = n_calls[n_calls >= 2].sort_values(ascending=False).index.tolist()[:max_modules]
    if not mods:
        return None
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    fig, (ax,) = new_figure(10.8, 3.6)
    any_line = False
    for i, mod in enumerate(mods):
        d = calls[calls["module"] == mod]
        g = d.groupby("call")["delta"]
        x = np.asarray(sorted(d["call"].unique()), dtype=float)
        mean = np.array([geomean(g.get_group(c)) for c in x])
        vals = [np.asarray(g.get_group(c), float) for c in x]
        lo = np.array([_pos(v).min() if _pos(v).size else np.nan for v in vals])
        hi = np.array([_pos(v).max() if _pos(v).size else np.nan for v in vals])
        color = cmap(i % 10)
        n_steps = d["step"].nunique()
        ax.plot(x, mean, color=color, lw=1.6, label=f"{name_label(mod)}  ({n_steps} steps)")
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        any_line |= bool(np.isfinite(mean).any())
        zeros = x[np.array([(v == 0).all() for v in vals])]
        bad = x[np.array([(~np.isfinite(v)).any() for v in vals])]
        mark_edges(ax, zeros, bad)
    if any_line:
        log_scale(ax, calls["delta"])
    ax.set_title("‖∂L/∂h_t‖ at each call (geometric mean over steps; band: min–max)", fontsize=10)
    ax.set_xlabel("call  (forward order: 0 = first time step)", fontsize=8)
    dedupe_legend(ax, loc="best")
    return fig


def _pos(v):
    return v[np.isfinite(v) & (v > 0)]
