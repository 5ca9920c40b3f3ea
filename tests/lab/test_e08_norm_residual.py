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
    # plain check; within 100x and trains better for residual, residual+bn and batchnorm (+ its mean-field
    # check); layernorm: δ at init and below batchnorm; the two rank-collapse checks
    assert len(r.checks) == 1 + 2 * 3 + 1 + 2 + 2
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


def _ln_checks(ln_cos, ln_acc, activation="relu", ln_init=0.0):
    cfg = e08.Config(depth=30, activation=activation, variants=("plain", "batchnorm", "layernorm"))
    m = {"log10_delta_ratio_worst": {"plain": -11.0, "batchnorm": 2.4, "layernorm": -4.0},
         "log10_delta_ratio_worst_after_init": {"plain": -11.0, "batchnorm": 1.3, "layernorm": -4.0},
         "log10_delta_ratio_init": {"plain": -11.0, "batchnorm": 2.4, "layernorm": ln_init},
         "accuracy": {"plain": 0.1, "batchnorm": 0.7, "layernorm": ln_acc},
         "delta_nonfinite_steps": {"plain": 0, "batchnorm": 0, "layernorm": 0},
         "cosine_last_block": {"plain": {"init": 1.0}, "batchnorm": {"init": 0.35}, "layernorm": {"init": ln_cos}}}
    return {c.criterion.split(":")[0].split(" (")[0]: c for c in e08._checks(cfg, m)}


def test_layernorm_is_judged_on_scale_at_init_and_on_rank_collapse():
    collapsed = _ln_checks(ln_cos=0.98, ln_acc=0.1)  # what ReLU + LN measures: flat δ, collapsed, no training
    assert all(c.passed for c in collapsed.values()), {k: c.passed for k, c in collapsed.items()}
    separates = _ln_checks(ln_cos=0.3, ln_acc=0.1)  # an LN that kept the inputs apart contradicts the claim
    assert not separates["layernorm does not avoid the collapse"].passed
    trains = _ln_checks(ln_cos=0.98, ln_acc=0.8)  # an LN that trained like BatchNorm contradicts it too
    assert not trains["layernorm without shortcuts does not train where batchnorm does"].passed
    shrinks = _ln_checks(ln_cos=0.98, ln_acc=0.1, ln_init=-5.0)  # LN did not restore δ's scale at init
    assert not shrinks["layernorm at init"].passed
    tanh = _ln_checks(ln_cos=0.4, ln_acc=0.5, activation="tanh")  # no collapse predicted for tanh: not judged
    assert not any("collapse" in k or "does not train" in k for k in tanh)
