"""e06 activations: a tiny run has the documented structure (not the verdict); the dead-unit probe."""

import pytest
import torch

from gradwatch.lab import e06_activations as e06
from gradwatch.lab.runner import run_experiment


@pytest.mark.slow
def test_tiny_run_structure(tmp_path):
    cfg = e06.Config(depth=3, width=8, steps=6, every=2)
    r = run_experiment(e06, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    for key in ("delta_ratio_init", "delta_ratio_median", "delta_profile_init", "zero_gradient_units", "accuracy"):
        assert set(m[key]) == set(e06.ACTIVATIONS), key
    assert all(len(p) == 3 and p[-1] == pytest.approx(1.0) for p in m["delta_profile_init"].values())
    assert set(m["act_dead_final"]) == set(e06.ACTIVATIONS) - {"sigmoid", "tanh"}  # saturating units never "fire"
    assert len(r.checks) == 5
    assert set(r.tables) == set(e06.ACTIVATIONS) and r.tables["gelu"]["support"] == 450
    assert r.figures and all((tmp_path / e06.NAME / f).exists() for f in r.figures)
    assert (tmp_path / e06.NAME / "runs" / "prelu").is_dir()


def test_inits_and_zero_gradient_units():
    torch.manual_seed(0)
    for act, std in (("relu", (2 / 256) ** 0.5), ("tanh", (2 / 512) ** 0.5), ("prelu", (2 / 1.0625 / 256) ** 0.5)):
        net = e06.make_net(act, 2, 256)
        assert net[2].weight.std().item() == pytest.approx(std, rel=0.02), act
    net = e06.make_net("relu", 3, 16)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    assert e06.zero_gradient_units(net, x, y) < 0.5
    with torch.no_grad():
        net[4].bias[:4] = -1e4  # 4 of the 48 hidden units never fire
    assert e06.zero_gradient_units(net, x, y) == pytest.approx(4 / 48)
    leaky = e06.make_net("leaky_relu", 3, 16)
    with torch.no_grad():
        leaky[4].bias[:4] = -1e4  # never positive, but a leaky unit still passes gradient
    assert e06.zero_gradient_units(leaky, x, y) == 0.0
    with pytest.raises(ValueError, match="unknown activation"):
        e06.make_net("swish", 2, 8)
