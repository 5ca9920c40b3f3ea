"""Per-layer figures of how units and weights behave: the update-to-weight ratio against its
band, and activation saturation / dead fractions.

Example:
    >>> # fig = fig_update_ratio(gw.load("runs/x")); fig and fig.savefig("ratio.png")
"""

from __future__ import annotations

import warnings

import numpy as np

from .layers import measured, output_first, series_or_none, weight_params
from .plotting import COLORS, dedupe_legend, layer_ticks, log_line, log_scale, mark_edges, new_figure, safe

BAND = (1e-4, 1e-2)  # update/weight ratio band around Karpathy's ~1e-3 rule of thumb


def fig_update_ratio(run):
    """‖ΔW‖/‖W‖ per weight (median, 10–90% whiskers) against the 1e-3 band, and over steps.

    Needs: weight and update norms (slow statistics, with an optimizer step).
    Karpathy, CS231n notes / "A Recipe for Training Neural Networks" (2019): ~1e-3 is healthy.
    """
    if series_or_none(run, "update_norm") is None or series_or_none(run, "weight_norm") is None:
        return None
    ratio = run.update_ratio()
    names = [n for n in output_first(weight_params(run)) if n in set(measured(ratio))]
    if not names:
        return None
    vals = ratio[names].to_numpy(dtype=float)
    pos = np.where(np.isfinite(vals) & (vals > 0), vals, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med, lo, hi = (np.nanpercentile(pos, q, axis=0) for q in (50, 10, 90))
    over_time = len(ratio.index) >= 2
    fig, axes = new_figure(10.8 if over_time else 6.0, 3.7, ncols=2 if over_time else 1,
                           width_ratios=[3, 2] if over_time else None)
    ax = axes[0]
    x = np.arange(len(names))
    ax.axhspan(*BAND, color=COLORS["band"], alpha=0.12, lw=0, label="band 1e-4 … 1e-2")
    ax.axhline(1e-3, color=COLORS["band"], lw=1, ls="--", label="1e-3")
    inside = (med >= BAND[0]) & (med <= BAND[1])
    for sel, color in ((inside, COLORS["info"]), (~inside, COLORS["warning"])):
        ok = sel & np.isfinite(med)
        ax.errorbar(x[ok], med[ok], yerr=[med[ok] - lo[ok], hi[ok] - med[ok]], fmt="o", ms=4,
                    color=color, elinewidth=1, capsize=2)
    log_scale(ax, np.r_[med, BAND])
    zeros = x[(np.nan_to_num(vals, nan=1.0) == 0).all(axis=0)]
    mark_edges(ax, zeros, x[np.isinf(vals).any(axis=0)])
    layer_ticks(ax, names)
    ax.set_title("update / weight per layer (median over steps)", fontsize=10)
    ax.set_xlabel("layer  (output → input)", fontsize=8)
    dedupe_legend(ax, loc="best")
    if over_time:
        _ratio_over_steps(axes[1], ratio, names)
    return fig


def _ratio_over_steps(ax, ratio, names, max_lines: int = 8) -> None:
    import matplotlib

    pick = [names[i] for i in np.unique(np.linspace(0, len(names) - 1, min(max_lines, len(names))).astype(int))]
    cmap = matplotlib.colormaps["viridis"]
    ax.axhspan(*BAND, color=COLORS["band"], alpha=0.12, lw=0)
    ax.axhline(1e-3, color=COLORS["band"], lw=1, ls="--")
    for i, n in enumerate(pick):
        log_line(ax, ratio.index, ratio[n], lw=1.2, color=cmap(i / max(1, len(pick) - 1)),
                 label=safe(n if len(n) < 24 else "…" + n[-22:]))
    ax.set_yscale("log")
    ax.set_title("update / weight over steps", fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.legend(fontsize=6, frameon=False, ncols=2 if len(pick) > 4 else 1)


def fig_activations(run):
    """Saturated fraction (sigmoid/tanh tails) and dead fraction (ReLU never firing) per layer.

    Bars at the last measured step; a black tick marks the first measured step.
    Needs: activation statistics (activation modules, on slow-statistics steps).
    """
    panels = []
    sat = series_or_none(run, "act_sat")
    if sat is not None:
        panels.append(("saturated (flat tails)", sat, COLORS["warning"]))
    dead = series_or_none(run, "act_dead")
    dead_title = "dead (never fired over the window)"
    if dead is None:
        dead, dead_title = series_or_none(run, "act_silent"), "silent (never fired in the batch)"
    if dead is not None:
        panels.append((dead_title, dead, COLORS["critical"]))
    if not panels:
        return None
    fig, axes = new_figure(10.8, 3.6, ncols=len(panels))
    for ax, (title, df, color) in zip(axes, panels):
        names = output_first(measured(df), list(run.modules["name"]))
        last = df[names].ffill().iloc[-1].to_numpy(dtype=float)
        first = df[names].bfill().iloc[0].to_numpy(dtype=float)
        x = np.arange(len(names))
        ax.bar(x, np.nan_to_num(last), color=color, alpha=0.85, width=0.6, label=f"step {df.index[-1]}")
        ax.scatter(x, first, marker="_", s=160, color=COLORS["ink"], zorder=3, label=f"step {df.index[0]}")
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(matplotlib_percent())
        layer_ticks(ax, names)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer  (output → input)", fontsize=8)
        dedupe_legend(ax, loc="best")
    return fig


def matplotlib_percent():
    """A tick formatter for fractions shown as percent."""
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0, decimals=0)
