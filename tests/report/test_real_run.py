"""The report of runs recorded by the real watcher (skipped until the watcher exists)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from .fakes import DROP, SCRIPT

watcher = pytest.importorskip("gradwatch.watcher", reason="the watcher is not there yet")


def _diagnose(run):
    try:
        from gradwatch.diagnosis import diagnose
    except ImportError:
        from gradwatch.findings import Diagnosis

        return Diagnosis(steps=run.n_steps)
    return diagnose(run)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    layers = OrderedDict([(SCRIPT, nn.Linear(8, 16)), (DROP, nn.Sigmoid())])
    for i in range(4):
        layers[f"fc{i}"] = nn.Linear(16, 16)
        layers[f"act{i}"] = nn.Sigmoid()
    layers["out"] = nn.Linear(16, 3)
    model = nn.Sequential(layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = tmp_path_factory.mktemp("mlp")
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    with watcher.watch(model, opt, out=out, every=4):
        for _ in range(12):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    from gradwatch.record import load

    return load(out)


class _Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = nn.RNNCell(4, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        h = torch.zeros(x.shape[0], 8)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.head(h)


def test_real_run_figures_follow_the_model(mlp_run):
    from gradwatch.report.figures import fig_activations, fig_gradient_flow, render_figures
    from gradwatch.report.format import short

    drawn = {r.spec.name for r in render_figures(mlp_run, dpi=40) if r.uri}
    assert {"gradient_flow", "grad_heatmap", "update_ratio", "activations", "loss"} <= drawn
    assert "through_time" not in drawn  # every module ran once per step
    labels = [t.get_text() for t in fig_gradient_flow(mlp_run, panels=("weight",)).axes[0].get_xticklabels()]
    assert labels == ["out.weight", "fc3.weight", "fc2.weight", "fc1.weight", "fc0.weight",
                      short(f"{SCRIPT}.weight", 22)]
    acts = [t.get_text() for t in fig_activations(mlp_run).axes[0].get_xticklabels()]
    assert acts == ["act3", "act2", "act1", "act0", DROP]


def test_real_run_report_escapes_module_names(mlp_run, tmp_path):
    from gradwatch.report import write_report

    text = write_report(mlp_run, _diagnose(mlp_run), tmp_path / "r.html").read_text(encoding="utf-8")
    assert SCRIPT not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()
    assert "Per-layer gradients at step 8" in text  # every=4: statistics at steps 0, 4, 8


def test_real_loop_draws_gradient_through_time(tmp_path):
    from gradwatch.record import load
    from gradwatch.report.figures import fig_through_time

    torch.manual_seed(0)
    model = _Loop()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with watcher.watch(model, opt, out=tmp_path, every=2):
        for _ in range(4):
            loss = model(torch.randn(8, 12, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    run = load(tmp_path)
    calls = run.calls()
    if calls.empty:
        pytest.skip("this watcher records no per-call gradients")
    fig = fig_through_time(run)
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == list(range(12))
    # the reference: geometric mean over steps of the recorded per-call norms
    cell = calls[calls["module"] == "cell"]
    ref = cell.groupby("call")["delta"].apply(lambda v: float(torch.tensor(v.to_numpy()).log().mean().exp()))
    assert line.get_ydata() == pytest.approx(ref.to_numpy(), rel=1e-4)
