"""e05 edge-of-chaos: a tiny run has the documented structure (not the verdict); mean field vs simulation."""

import math

import pytest
import torch

from gradwatch.lab import e05_edge_of_chaos as e05
from gradwatch.lab.runner import run_experiment


@pytest.mark.slow
def test_tiny_run_structure(tmp_path):
    cfg = e05.Config(sigma_w2=(0.5, 1.75, 4.0), depths=(2, 4), width=8, steps=4, every=2)
    r = run_experiment(e05, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["train_acc"]) == {"0.5", "1.75", "4"} and set(m["train_acc"]["4"]) == {"2", "4"}
    assert set(m["mean_field"]["1.75"]) >= {"q_star", "chi1", "c_star", "chi_c", "xi_c", "six_xi_c"}
    assert set(m["delta_growth_per_layer"]) == set(m["sqrt_chi1"]) == {"0.5", "1.75", "4"}
    assert m["critical_sigma_w2"] == pytest.approx(1.76, abs=0.01)
    assert len(r.checks) == 4
    assert r.figures and all((tmp_path / e05.NAME / f).exists() for f in r.figures)
    assert (tmp_path / e05.NAME / "runs" / "sw2-4-depth-4").is_dir()


def test_mean_field_matches_the_literature():
    assert e05.critical_sigma_w2(0.0) == pytest.approx(1.0, abs=0.02)   # tanh, σ_b = 0
    assert e05.critical_sigma_w2(0.05) == pytest.approx(1.76, abs=0.01)  # Schoenholz et al.
    ordered, chaotic = e05.mean_field(1.0, 0.05), e05.mean_field(3.0, 0.05)
    assert ordered["c_star"] == 1.0 and ordered["chi_c"] == ordered["chi1"] < 1
    assert 0 < chaotic["c_star"] < 1 and chaotic["chi1"] > 1 > chaotic["chi_c"]


def test_q_star_and_chi1_match_a_wide_random_net():
    torch.manual_seed(0)
    s2, b2, n = 2.5, 0.05, 2000
    h = torch.randn(64, n)
    for _ in range(20):
        w = torch.randn(n, n) * math.sqrt(s2 / n)
        h = torch.tanh(h) @ w.T + torch.randn(n) * math.sqrt(b2)
    mf = e05.mean_field(s2, b2)
    assert h.pow(2).mean().item() == pytest.approx(mf["q_star"], rel=0.05)
    chi1 = s2 * (1 - torch.tanh(h) ** 2).pow(2).mean().item()
    assert chi1 == pytest.approx(mf["chi1"], rel=0.05)
