"""e02 saturation: a tiny run has the documented structure (not the verdict)."""

import pytest
import torch

from gradwatch.lab import e02_saturation as e02
from gradwatch.lab.runner import run_experiment


@pytest.mark.slow
def test_tiny_run_structure(tmp_path):
    cfg = e02.Config(hidden=3, width=8, epochs=2, measure_every=40, every=20, fixed_inputs=20)
    r = run_experiment(e02, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["trajectory"]) == set(e02.ACTIVATIONS) == set(r.tables)
    traj = m["trajectory"]["sigmoid"]
    assert len(traj["epoch"]) == len(traj["mean"]) == 1 + (2 * 134) // 40
    assert all(len(row) == 3 for row in traj["mean"])
    assert traj["epoch"][0] == 0 and traj["epoch"][-1] <= 2
    assert len(m["watcher_act_mean_final"]["tanh"]) == 3
    assert len(r.checks) == 4
    assert r.figures and all((tmp_path / e02.NAME / f).exists() for f in r.figures)
    for act in e02.ACTIVATIONS:
        assert (tmp_path / e02.NAME / "runs" / act).is_dir()


def test_standard_init_and_stats():
    torch.manual_seed(0)
    net = e02.make_net("softsign", 2, 50)
    assert net[0].weight.abs().max() <= 1 / 8 and net[2].weight.abs().max() <= 1 / 50 ** 0.5
    assert net[0].bias.abs().max() == 0
    x = torch.randn(7, 64)
    means, stds = e02.layer_stats(net, x)
    h = net[1](net[0](x))
    assert means[0] == pytest.approx(h.mean().item()) and stds[0] == pytest.approx(h.std().item())
    with pytest.raises(ValueError, match="unknown activation"):
        e02.make_net("relu", 2, 8)
