"""The report's figures: gradient flow and the layer × step heat map, and the registry of all
figures (update ratio and activations: :mod:`.figures_units`; over time: :mod:`.figures_time`).

Each ``fig_xxx(run) -> Figure | None`` declares what it needs and returns None when the run
did not record it; :func:`render_figures` turns that into a note instead of a picture.
Layers are shown from the output back to the input, the way the gradient flows.

Example:
    >>> # fig = fig_gradient_flow(gw.load("runs/x")); fig and fig.savefig("flow.png")
    >>> [spec.name for spec in FIGURES][:2]
    ['gradient_flow', 'grad_heatmap']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .figures_time import fig_loss, fig_through_time
from .figures_units import fig_activations, fig_update_ratio
from .layers import measured, output_first, pick_steps, series_or_none, weight_params
from .plotting import (COLORS, data_uri, dedupe_legend, layer_ticks, log_line, log_scale, mark_edges,
                       new_figure, to_png)


def fig_gradient_flow(run, panels: tuple[str, ...] = ("delta", "weight")):
    """δ = ‖∂L/∂h‖ per module and ‖∂L/∂W‖ per weight, log scale, output → input.

    Drawn at the first, middle and last measured steps. A line falling from left to right is
    a gradient vanishing on its way back (Glorot & Bengio 2010; Hochreiter 1991).
    Needs: δ (slow statistics) or per-parameter gradient norms.

    Args:
        run: the recorded run.
        panels: which panels to draw, of ``"delta"`` and ``"weight"``.
    """
    want = set(panels)
    delta = series_or_none(run, "delta") if "delta" in want else None
    grad = series_or_none(run, "grad_norm") if "weight" in want else None
    panels = []
    if delta is not None:
        mods = output_first(measured(delta), list(run.modules["name"]))
        panels.append(("δ at each module's output", delta, mods))
    if grad is not None:
        names = [n for n in output_first(weight_params(run)) if n in set(measured(grad))]
        if names:
            panels.append(("weight gradient ‖∂L/∂W‖", grad, names))
    if not panels:
        return None
    first_df, first_names = panels[0][1], panels[0][2]
    finite_rows = np.isfinite(first_df[first_names].to_numpy(dtype=float)).any(axis=1)
    steps = pick_steps(list(first_df.index[finite_rows]) or list(first_df.index))
    shades = [0.45, 0.7, 0.95][-len(steps):]
    import matplotlib

    cmap = matplotlib.colormaps["Blues"]
    fig, axes = new_figure(5.4 * len(panels), 3.9, ncols=len(panels))
    for ax, (title, df, names) in zip(axes, panels):
        zeros, bad, shown = [], [], []
        for s, shade in zip(steps, shades):
            prior = df.index[df.index <= s]
            if len(prior) == 0:
                continue
            y = df.loc[prior[-1], names].to_numpy(dtype=float)
            z, b = log_line(ax, np.arange(len(names)), y, marker="o", ms=3.5, lw=1.6,
                            color=cmap(shade), label=f"step {prior[-1]}")
            zeros.extend(z), bad.extend(b), shown.extend(y)
        log_scale(ax, shown)
        mark_edges(ax, zeros, bad)
        layer_ticks(ax, names)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer  (output → input)", fontsize=8)
        dedupe_legend(ax, loc="best")
    return fig


def fig_grad_heatmap(run):
    """Layer × step heat map of log10 ‖∂L/∂W‖; grey = no gradient, red = NaN/inf, black = 0.

    Needs: per-parameter gradient norms at two or more steps.
    """
    grad = series_or_none(run, "grad_norm")
    if grad is None or len(grad.index) < 2:
        return None
    names = [n for n in output_first(weight_params(run)) if n in set(measured(grad))]
    if not names:
        return None
    mat = grad[names].to_numpy(dtype=float).T  # layers x steps
    nonfin = ~np.isfinite(mat) & ~np.isnan(mat)
    nf = series_or_none(run, "grad_nonfinite")
    if nf is not None:
        counts = nf.reindex(index=grad.index, columns=names).to_numpy(dtype=float).T
        nonfin |= np.nan_to_num(counts) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log10(mat)
    steps = np.asarray(grad.index, dtype=float)
    logm, nonfin, steps = _bin_columns(logm, nonfin, steps, max_cols=600)
    shown = logm[np.isfinite(logm)]
    vmin, vmax = (float(shown.min()), float(shown.max())) if shown.size else (-1.0, 1.0)
    if vmax - vmin < 1e-6:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    zero = np.isneginf(logm)
    img = np.where(nonfin, vmax + 1, np.where(zero, vmin - 1, logm))
    img = np.where(np.isnan(logm) & ~nonfin, np.nan, img)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(
        bad="#e6e6e6", over=COLORS["bad"], under="black")
    fig, (ax,) = new_figure(10.8, min(7.5, 1.6 + 0.2 * len(names)))
    ax.grid(False)
    half = (steps[1] - steps[0]) / 2 if len(steps) > 1 else 0.5
    im = ax.imshow(np.ma.masked_invalid(img), aspect="auto", interpolation="nearest", cmap=cmap,
                   vmin=vmin, vmax=vmax, extent=(steps[0] - half, steps[-1] + half, len(names) - 0.5, -0.5))
    layer_ticks(ax, names, axis="y", max_labels=30)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("layer  (output at the top)", fontsize=8)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}
    cb = fig.colorbar(im, ax=ax, pad=0.01, extend=extend[(bool(zero.any()), bool(nonfin.any()))])
    cb.set_label("log10 ‖∂L/∂W‖", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig


def _bin_columns(logm, nonfin, steps, max_cols):
    """Average log norms over bins of steps so a long run stays a readable picture."""
    n = logm.shape[1]
    if n <= max_cols:
        return logm, nonfin, steps
    edges = np.linspace(0, n, max_cols + 1).astype(int)
    out = np.full((logm.shape[0], max_cols), np.nan)
    bad = np.zeros((logm.shape[0], max_cols), dtype=bool)
    for j, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        block = logm[:, a:b]
        fin = np.where(np.isfinite(block), block, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[:, j] = np.nanmean(fin, axis=1)
        out[:, j] = np.where(np.isneginf(block).all(axis=1), -np.inf, out[:, j])
        bad[:, j] = nonfin[:, a:b].any(axis=1)
    return out, bad, steps[edges[:-1]]


@dataclass
class FigureSpec:
    """A figure of the report: its function, title, what it needs and how to read it.

    Example:
        >>> spec = FigureSpec("blank", "Nothing", lambda run: None, "nothing", "Draws nothing.")
        >>> spec.wide, spec.draw(None), FIGURES[0].name
        (True, None, 'gradient_flow')
    """

    name: str
    title: str
    draw: Callable
    needs: str
    caption: str
    wide: bool = True


@dataclass
class Rendered:
    """A drawn figure (``uri`` is a PNG data URI) or the note saying why it was skipped."""

    spec: FigureSpec
    uri: str | None
    note: str = ""


FIGURES = [
    FigureSpec("gradient_flow", "Gradient flow per layer", fig_gradient_flow,
               "δ (slow statistics) or per-parameter gradient norms",
               "Gradient norm at each layer, output on the left, input on the right. A line "
               "falling to the right is a vanishing gradient; rising, an exploding one."),
    FigureSpec("grad_heatmap", "Gradient norm, layer × step", fig_grad_heatmap,
               "per-parameter gradient norms at two or more steps",
               "log10 of each weight's gradient norm over training. Grey: no gradient; "
               "black: exactly zero; red: NaN or inf."),
    FigureSpec("update_ratio", "Update-to-weight ratio", fig_update_ratio,
               "weight and update norms (slow statistics with an optimizer)",
               "How far one optimizer step moves each weight, relative to its size. Near 1e-3 "
               "is healthy; far above, the learning rate is too high; far below, too low."),
    FigureSpec("activations", "Activation saturation and dead units", fig_activations,
               "activation statistics of activation modules",
               "Fraction of sigmoid/tanh outputs in their flat tails, and of ReLU units that "
               "never fire. Both pass (almost) no gradient."),
    FigureSpec("loss", "Loss and global gradient norm", fig_loss,
               "loss or global gradient norm per step",
               "Red bands: steps with a non-finite loss or gradient. Markers: recorded events "
               "(guard actions, skipped steps)."),
    FigureSpec("through_time", "Gradient through time", fig_through_time,
               "per-call gradients of a module called several times per step",
               "Gradient at each call of a module run in a loop (an RNN cell): call 0 is the "
               "first time step. Falling towards call 0 is a gradient vanishing back through time."),
]


def render_figures(run, names: list[str] | None = None, dpi: int = 110) -> list[Rendered]:
    """Draw every figure (or those named) as a PNG data URI, or a note when it is skipped.

    A figure that fails to draw becomes a note and a warning; it never stops the report.

    Example:
        >>> # [r.spec.name for r in render_figures(run) if r.uri]
    """
    out = []
    for spec in FIGURES:
        if names is not None and spec.name not in names:
            continue
        try:
            fig = spec.draw(run)
        except Exception as e:  # noqa: BLE001 - a broken figure must not lose the report
            warnings.warn(f"gradwatch report: figure {spec.name!r} failed: {e!r}", stacklevel=2)
            out.append(Rendered(spec, None, f"could not be drawn ({type(e).__name__}: {e})"))
            continue
        if fig is None:
            out.append(Rendered(spec, None, f"skipped: this run did not record {spec.needs}"))
        else:
            out.append(Rendered(spec, data_uri(to_png(fig, dpi=dpi))))
    return out


__all__ = ["FIGURES", "FigureSpec", "Rendered", "render_figures", "fig_gradient_flow", "fig_grad_heatmap",
           "fig_update_ratio", "fig_activations", "fig_loss", "fig_through_time"]
