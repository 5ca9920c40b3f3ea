"""Figures: drawn from what the run recorded, skipped with a note when it did not."""

from __future__ import annotations

import numpy as np
import pytest

from gradwatch.report import figures
from gradwatch.report.figures import (FIGURES, fig_activations, fig_grad_heatmap, fig_gradient_flow,
                                      fig_loss, fig_through_time, fig_update_ratio, render_figures)
from gradwatch.report.format import short
from gradwatch.report.plotting import to_png

from .fakes import DOLLAR, DROP, N_CALLS, RICH, SCRIPT


def _labels(ax, axis="x"):
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text().replace("\\$", "$") for t in ticks]


@pytest.mark.parametrize("spec", FIGURES, ids=lambda s: s.name)
def test_every_figure_draws_the_fake_run_to_png(fake_run, spec):
    fig = spec.draw(fake_run)
    assert fig is not None, f"{spec.name} skipped a run that recorded {spec.needs}"
    png = to_png(fig, dpi=40)  # mathtext-looking names ($, ^, {) must not break drawing
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("spec", [s for s in FIGURES if s.name != "loss"], ids=lambda s: s.name)
def test_figures_needing_layer_data_skip_a_bare_run(bare_run, spec):
    assert spec.draw(bare_run) is None


def test_render_figures_notes_what_was_missing(bare_run):
    out = {r.spec.name: r for r in render_figures(bare_run, dpi=40)}
    assert out["loss"].uri.startswith("data:image/png;base64,")
    for name in ("gradient_flow", "grad_heatmap", "update_ratio", "activations", "through_time"):
        assert out[name].uri is None and out[name].note.startswith("skipped: this run did not record")


def test_a_failing_figure_becomes_a_note(fake_run, monkeypatch):
    def broken(run):
        raise RuntimeError("boom")

    spec = figures.FigureSpec("broken", "Broken", broken, "nothing", "")
    monkeypatch.setattr(figures, "FIGURES", [spec, *FIGURES[-1:]])
    with pytest.warns(UserWarning, match="broken"):
        out = render_figures(fake_run, dpi=40)
    assert out[0].uri is None and "RuntimeError: boom" in out[0].note
    assert out[1].uri  # the others still draw


def test_gradient_flow_runs_output_to_input(fake_run):
    fig = fig_gradient_flow(fake_run)
    delta_ax, weight_ax = fig.axes
    # the root returns the output, so it comes first; then modules in reverse registration order
    names = ["(model)", "head", "cell", RICH, DOLLAR, DROP, SCRIPT, "1", "0"]
    assert _labels(delta_ax) == [short(n, 22) for n in names]  # long names shortened in the middle
    assert _labels(weight_ax)[0] == "head.weight" and _labels(weight_ax)[-1] == "0.weight"
    assert "0.bias" not in _labels(weight_ax)  # weights only
    # δ is drawn as recorded: increasing towards the output
    y = delta_ax.lines[-1].get_ydata()
    np.testing.assert_allclose(y, [1, 1, .5, .3, .1, .03, .01, .003, .001], rtol=1e-6)
    assert [t.get_text() for t in delta_ax.get_legend().get_texts()] == ["step 0", "step 10", "step 20"]


def test_gradient_flow_skips_all_nan_steps(fake_run):
    fig = fig_gradient_flow(fake_run, panels=("weight",))
    steps = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert steps[-1] == "step 26"  # steps 27–29 have no finite gradient


def test_heatmap_colours_nonfinite_and_zero(fake_run):
    fig = fig_grad_heatmap(fake_run)
    img = fig.axes[0].images[0]
    data = np.ma.getdata(img.get_array())
    vmin, vmax = img.norm.vmin, img.norm.vmax
    # rows are output-first weights; columns steps 0..29; NaN gradients from step 27 on
    assert (data[:, 27:] > vmax).all()  # drawn in the "over" colour (red)
    assert (data[:, :27] >= vmin).all() and (data[:, :27] <= vmax).all()
    # head.weight (top row) ≈ 1 → log10 ≈ 0; 0.weight (bottom) ≈ 1e-4 → ≈ -4
    assert abs(np.median(data[0, :27]) - 0.02) < 0.05 and abs(np.median(data[-1, :27]) + 3.98) < 0.05


def test_update_ratio_matches_the_record(fake_run):
    fig = fig_update_ratio(fake_run)
    ax = fig.axes[0]
    names = _labels(ax)
    # fake update/weight = 10^-(1 + depth): head (depth 4) 1e-5 … 0.weight (depth 0) 1e-1
    expect = {"head.weight": 1e-5, "cell.weight_hh": 1e-4, "0.weight": 1e-1}
    pts = {}
    for coll in ax.lines:
        x, y = coll.get_xdata(), coll.get_ydata()
        if len(x) and coll.get_marker() == "o":
            pts.update({names[int(i)]: v for i, v in zip(x, y)})
    for name, value in expect.items():
        assert pts[name] == pytest.approx(value, rel=1e-6)
    # the band is drawn
    assert any(p.get_label().startswith("band") for p in ax.patches)


def test_activation_bars_are_the_last_measured_values(fake_run):
    fig = fig_activations(fake_run)
    sat_ax, dead_ax = fig.axes
    assert _labels(sat_ax) == [DROP, "1"]
    assert [b.get_height() for b in sat_ax.patches] == pytest.approx([0.5, 0.9])
    assert _labels(dead_ax) == [RICH]
    assert [b.get_height() for b in dead_ax.patches] == pytest.approx([0.4])


def test_loss_marks_nonfinite_steps_and_events(fake_run):
    fig = fig_loss(fake_run)
    loss_ax, grad_ax = fig.axes
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert "guard_skip (1)" in labels and "nonfinite (1)" in labels and "NaN / inf" in labels
    assert "note (1)" not in labels  # an event without a step has no place on the axis
    span = next(p for p in grad_ax.patches if p.get_label() == "NaN / inf")
    x0 = span.get_x()
    assert 26 < x0 < 27 and x0 + span.get_width() > 29  # steps 27–29


def test_through_time_is_the_geometric_mean_per_call(fake_run):
    fig = fig_through_time(fake_run)
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), np.arange(N_CALLS))
    np.testing.assert_allclose(line.get_ydata(), 0.5 ** np.arange(N_CALLS)[::-1], rtol=1e-6)
    assert ax.get_yscale() == "log"


def test_heatmap_bins_long_runs(tmp_path):
    from gradwatch.record import load
    from gradwatch.store import RunStore

    s = RunStore(tmp_path, precision="float32")
    s.write_layout([("a.weight", "a", (2, 2), 4, "float32")], [("", "M", "", "container"), ("a", "Linear", "", "param")])
    n = 1500
    s.write_batch([dict(step=t, loss=1.0, grad_norm=1.0, lr=[0.1]) for t in range(n)],
                  [(t, {"grad_norm": np.array([10.0 ** (-(t // 500))])}) for t in range(n)])
    s.close()
    fig = fig_grad_heatmap(load(tmp_path))
    data = np.ma.getdata(fig.axes[0].images[0].get_array())
    assert data.shape == (1, 600)
    np.testing.assert_allclose(data[0, [0, 250, 599]], [0, -1, -2], atol=1e-6)
