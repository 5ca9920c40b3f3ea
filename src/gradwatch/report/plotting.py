"""Matplotlib helpers for the report figures: a figure without pyplot (Agg, no global state),
safe labels, log-scale points that show zeros and non-finite values instead of dropping them,
and PNG / data-URI encoding.

matplotlib is imported inside the functions, so importing this module costs nothing.

Example:
    >>> fig, (ax,) = new_figure(3, 2)
    >>> ax.plot([1, 2], [1, 10]) and to_png(fig)[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import base64
import io

import numpy as np

from .format import fmt, layer_label, short

#: colours shared with the HTML (severity) and between figures
COLORS = {
    "critical": "#c0392b", "warning": "#d68910", "info": "#2e6da4", "healthy": "#1e8449",
    "band": "#27ae60", "bad": "#d62728", "zero": "#555555", "ink": "#222222", "grid": "#dddddd",
}


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw):
    """A constrained-layout Agg figure and its axes as a flat list, styled for the report."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw).ravel().tolist()
    for ax in axes:
        style_axes(ax)
    return fig, axes


def style_axes(ax) -> None:
    """Light grid, no top/right spines, small ticks."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color=COLORS["grid"], linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(which="both", labelsize=8)


def safe(text: str) -> str:
    """Text matplotlib shows literally: ``$`` would start mathtext (and can fail to parse).

    Example:
        >>> print(safe("cost $5"))
        cost \\$5
    """
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def name_label(name: str, width: int = 26) -> str:
    """A module/parameter name as a tick label: root as ``(model)``, shortened, mathtext-safe.

    Example:
        >>> name_label(""), name_label("encoder.layers.11.self_attn.out_proj.weight", 20)
        ('(model)', 'encoder.l…roj.weight')
    """
    return safe(short(layer_label(name), width))


def layer_ticks(ax, names: list[str], axis: str = "x", max_labels: int = 36, min_slots: int = 4) -> None:
    """Label layer positions with their names, thinning to at most ``max_labels``.

    With fewer than ``min_slots`` layers the axis keeps room for ``min_slots``, centred, so a
    single bar does not fill the whole width.
    """
    n = len(names)
    step = max(1, int(np.ceil(n / max_labels)))
    pos = list(range(0, n, step))
    labels = [name_label(names[i], 22) for i in pos]
    pad = max(0.0, (min_slots - n) / 2)
    if axis == "x":
        turn = n > 4 or max((len(x) for x in labels), default=0) > 12
        ax.set_xticks(pos, labels, rotation=40 if turn else 0, ha="right" if turn else "center",
                      rotation_mode="anchor", fontsize=7 if n > 12 else 8)
        ax.set_xlim(-0.6 - pad, n - 0.4 + pad)
    else:
        ax.set_yticks(pos, labels, fontsize=7 if n > 12 else 8)


def split_log(x, y):
    """Split points for a log axis: (x, y) positive-finite, x where y == 0, x where y is NaN/inf.

    Example:
        >>> x, y, zeros, bad = split_log([0, 1, 2, 3], [1.0, 0.0, float("nan"), 10.0])
        >>> x.tolist(), y.tolist(), zeros.tolist(), bad.tolist()
        ([0.0, 3.0], [1.0, 10.0], [1.0], [2.0])
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    return x[ok], y[ok], x[y == 0], x[~np.isfinite(y)]


def log_line(ax, x, y, **kw):
    """Plot ``y`` on a log axis (gaps where it cannot be shown); return (zero_x, nonfinite_x)."""
    y = np.asarray(y, dtype=float)
    shown = np.where(np.isfinite(y) & (y > 0), y, np.nan)
    ax.plot(np.asarray(x, dtype=float), shown, **kw)
    _, _, zeros, bad = split_log(x, y)
    return zeros, bad


def mark_edges(ax, zeros, bad, color=None) -> None:
    """Mark exact zeros at the bottom edge (▼) and NaN/inf at the top edge (✕) of a log axis."""
    from matplotlib.transforms import blended_transform_factory

    tr = blended_transform_factory(ax.transData, ax.transAxes)
    zeros, bad = np.asarray(zeros, float), np.asarray(bad, float)
    if zeros.size:
        ax.scatter(zeros, np.full(zeros.size, 0.015), transform=tr, marker="v", s=22,
                   color=color or COLORS["zero"], clip_on=False, zorder=5, label="exactly 0")
    if bad.size:
        ax.scatter(bad, np.full(bad.size, 0.985), transform=tr, marker="x", s=26,
                   color=COLORS["bad"], clip_on=False, zorder=5, label="NaN / inf")


def log_scale(ax, values) -> None:
    """A log y axis; within one decade, plain tick labels (0.6, 0.8) instead of 6×10⁻¹.

    Example:
        >>> fig, (ax,) = new_figure(3, 2)
        >>> log_scale(ax, [0.6, 0.8]); ax.get_yscale(), ax.yaxis.get_major_formatter()(0.6, 0)
        ('log', '0.6')
    """
    ax.set_yscale("log")  # also resets the tick formatters to the log defaults
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() < 10:
        from matplotlib.ticker import FuncFormatter

        f = FuncFormatter(lambda y, _: fmt(y, 3))
        ax.yaxis.set_major_formatter(f)
        ax.yaxis.set_minor_formatter(f)


def dedupe_legend(ax, **kw) -> None:
    """A legend with one entry per label (repeated markers share one)."""
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    if seen:
        ax.legend(seen.values(), seen.keys(), fontsize=7, frameon=False, **kw)


def geomean(values) -> float:
    """Geometric mean of the positive finite values (NaN when there are none).

    Example:
        >>> round(geomean([1, 100, 0, float("nan")]), 6), geomean([])
        (10.0, nan)
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if v.size else float("nan")


def share_ylim(figures) -> None:
    """Give corresponding axes (matched by title) of several figures the same y range."""
    groups: dict[str, list] = {}
    for fig in figures:
        if fig is None:
            continue
        for ax in fig.axes:
            if ax.get_label() != "<colorbar>":
                groups.setdefault(ax.get_title(), []).append(ax)
    for axes in groups.values():
        lows, highs = zip(*(ax.get_ylim() for ax in axes))
        lo, hi = min(lows), max(highs)
        for ax in axes:
            if ax.get_yscale() == "log":
                log_scale(ax, [lo, hi])  # the shared range may need decade labels again
            ax.set_ylim(lo, hi)


def to_png(fig, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,…`` URI, for embedding without any fetch.

    Example:
        >>> data_uri(b"\\x89PNG")
        'data:image/png;base64,iVBORw=='
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
