"""e01 sigmoid-attenuation: a tiny run has the documented structure (not the verdict)."""

import pytest
import torch

from gradwatch.lab import e01_sigmoid_attenuation as e01
from gradwatch.lab.runner import run_experiment


@pytest.mark.slow
def test_tiny_run_structure(tmp_path):
    cfg = e01.Config(hidden_layers=(2, 4, 6), width=8, steps=6, every=3)
    r = run_experiment(e01, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert len(m["ratios_median"]["4"]) == 3 and len(m["ratios_median"]["6"]) == 5
    assert len(m["delta_geomean"]["6"]) == 6 and len(m["speed_median_4"]) == 4
    for key in ("median_consecutive_ratio", "slowdown_bias_4", "slowdown_weight_4", "delta_first_over_last_6"):
        assert isinstance(m[key], float), key
    assert len(r.checks) == 4  # median ratio, σ′ bound, 4-layer slowdown, compounding at the deepest
    assert set(r.tables) == {"hidden-2", "hidden-4", "hidden-6"}
    assert r.tables["hidden-4"]["support"] == 450
    assert r.figures and all((tmp_path / e01.NAME / f).exists() for f in r.figures)
    assert (tmp_path / e01.NAME / "runs" / "hidden-4").is_dir()


def test_bound_holds_for_any_sigmoid_net():
    # ‖δ_l‖ ≤ ¼‖W_l+1‖₂‖δ_l+1‖ by σ′ ≤ 1/4: check it with autograd on a random net
    torch.manual_seed(0)
    net = e01.make_net(3, 16)
    x = torch.randn(32, 64)
    zs = []
    h = x
    for m in net:
        h = m(h)
        if isinstance(m, torch.nn.Linear):
            h.retain_grad()
            zs.append(h)
    h.pow(2).sum().backward()
    for l in range(2):
        w = net[2 * (l + 1)].weight
        assert zs[l].grad.norm() <= 0.25 * torch.linalg.matrix_norm(w, ord=2) * zs[l + 1].grad.norm() + 1e-6


def test_needs_four_layers(tmp_path):
    with pytest.raises(ValueError, match="must include 4"):
        run_experiment(e01, config=e01.Config(hidden_layers=(1, 2), steps=2), out=tmp_path, quiet=True)
