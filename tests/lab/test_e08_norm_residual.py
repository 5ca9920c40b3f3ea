"""e08 norm-residual: a tiny run has the documented structure (not the verdict)."""

from pathlib import Path

import pytest
import torch

from gradwatch.lab import e08_norm_residual as e08
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e08.Config(depth=4, width=16, steps=6, every=3)
    r = run_experiment(e08, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    for key in ("log10_delta_ratio_init", "log10_delta_ratio_worst", "log10_delta_ratio_worst_after_init",
                "accuracy", "final_loss",
                "cosine_last_block", "delta_profile_init", "delta_nonfinite_steps"):
        assert set(m[key]) == set(e08.VARIANTS), key
    assert all(len(p) == 4 for p in m["delta_profile_init"].values())
    # plain check, 4 per other variant (within 100x, trains better) and the BN mean-field check
    assert len(r.checks) == 1 + 2 * 4 + 1
    assert set(r.tables) == set(e08.VARIANTS)
    assert r.tables["plain"]["support"] == 450
    assert all((tmp_path / e08.NAME / f).exists() for f in r.figures) and r.figures
    assert (tmp_path / e08.NAME / "result.json").exists()
    assert (tmp_path / e08.NAME / "runs" / "residual").is_dir()


def test_blocks_and_prediction():
    torch.manual_seed(0)
    net = e08.make_net("residual+bn", 3, 8, "tanh")
    assert net(torch.randn(5, 64)).shape == (5, 10)
    x = torch.randn(5, 8)
    blk = e08.Block(8, "residual", "relu")
    torch.nn.init.zeros_(blk.linear.weight), torch.nn.init.zeros_(blk.linear.bias)
    assert torch.equal(blk(x), x)  # the identity shortcut
    assert e08.bn_relu_prediction(1) == 0.0
    with pytest.raises(ValueError, match="unknown variant"):
        e08.make_net("weightnorm", 2, 8, "relu")


def test_a_diverged_run_fails_the_delta_check():
    cfg = e08.Config(depth=3, variants=("plain", "residual"))
    m = {"log10_delta_ratio_worst": {"plain": -5.0, "residual": None}, "log10_delta_ratio_init": {"plain": -5.0},
         "accuracy": {"plain": 0.1, "residual": 0.1}, "delta_nonfinite_steps": {"plain": 0, "residual": 3}}
    within = [c for c in e08._checks(cfg, m) if c.criterion.startswith("residual: |log10")]
    assert len(within) == 1 and not within[0].passed and within[0].measured["nonfinite_steps"] == 3


def _bn_checks(init, after_init, nonfinite=0, depth=30):
    cfg = e08.Config(depth=depth, variants=("plain", "batchnorm"))
    m = {"log10_delta_ratio_worst": {"plain": -11.0, "batchnorm": init},
         "log10_delta_ratio_worst_after_init": {"plain": -11.0, "batchnorm": after_init},
         "log10_delta_ratio_init": {"plain": -11.0, "batchnorm": init},
         "accuracy": {"plain": 0.1, "batchnorm": 0.7}, "delta_nonfinite_steps": {"plain": 0, "batchnorm": nonfinite}}
    return {c.criterion.split(":")[0]: c for c in e08._checks(cfg, m)}


def test_batchnorm_is_judged_at_init_by_mean_field_and_after_init_by_100x():
    pred = e08.bn_relu_prediction(30)
    ok = _bn_checks(init=pred, after_init=1.3)  # explodes at init as Yang et al. predict, settles in training
    assert ok["batchnorm once training has started"].passed
    assert ok["batchnorm (ReLU) at init"].passed
    collapsed = _bn_checks(init=pred, after_init=-5.4)  # δ collapses during training (--full, depth 50)
    assert not collapsed["batchnorm once training has started"].passed
    flat = _bn_checks(init=0.0, after_init=0.5)  # no explosion at init contradicts the mean-field rate
    assert not flat["batchnorm (ReLU) at init"].passed
    diverged = _bn_checks(init=pred, after_init=None, nonfinite=2)
    assert not diverged["batchnorm once training has started"].passed
