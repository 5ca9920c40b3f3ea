"""e03 initialisation: a tiny run has the documented structure (not the verdict); inits match their formulas."""

import math

import pytest
import torch

from gradwatch.lab import e03_initialisation as e03
from gradwatch.lab.runner import run_experiment


@pytest.mark.slow
def test_tiny_run_structure(tmp_path):
    inits = ("zero", "normal", "xavier", "he", "lsuv")
    cfg = e03.Config(depths=(3, 30), tanh_depths=(3,), inits=inits, width=8, steps=4, every=2)
    r = run_experiment(e03, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["final_loss"]) == {"relu", "tanh"}
    assert set(m["final_loss"]["relu"]) == {"3", "30"} and set(m["final_loss"]["tanh"]) == {"3"}
    assert set(m["final_loss"]["relu"]["30"]) == set(inits)
    assert m["identical_frac_final"]["relu"]["3"]["zero"] == 1.0  # zero init: every unit identical
    assert len(r.checks) == 4  # He trains, Xavier stalls, zero symmetric, N(0,1) explodes
    assert set(r.tables) == {f"relu-30-{p}" for p in inits}
    assert r.figures and all((tmp_path / e03.NAME / f).exists() for f in r.figures)
    assert (tmp_path / e03.NAME / "runs" / "tanh-3-lsuv").is_dir()


def test_init_variances_follow_their_formulas():
    torch.manual_seed(0)
    cfg = e03.Config()
    x = torch.randn(512, 64)
    for policy, std in (("he", math.sqrt(2 / 256)), ("xavier", math.sqrt(2 / 512)), ("small", 0.01), ("normal", 1.0)):
        net = e03.make_net("relu", 2, 256)
        e03.init_(net, policy, "relu", x, cfg)
        assert net[2].weight.std().item() == pytest.approx(std, rel=0.02), policy
    net = e03.make_net("tanh", 2, 64)
    e03.init_(net, "orthogonal", "tanh", x, cfg)
    w = net[2].weight
    assert torch.allclose(w @ w.T, (5 / 3) ** 2 * torch.eye(64), atol=1e-4)


def test_lsuv_gives_unit_variance_outputs():
    torch.manual_seed(0)
    net = e03.make_net("relu", 6, 64)
    x = torch.randn(256, 64)
    rule = e03.init_(net, "lsuv", "relu", x, e03.Config(lsuv_tol=0.1, lsuv_iters=10))
    assert "rescaled" in rule
    h = x
    with torch.no_grad():
        for m in net:
            h = m(h)
            if isinstance(m, torch.nn.Linear):
                assert abs(h.var().item() - 1) < 0.1


def test_bad_config(tmp_path):
    with pytest.raises(ValueError, match="depths must include 30"):
        run_experiment(e03, config=e03.Config(depths=(3,), steps=1), out=tmp_path, quiet=True)
