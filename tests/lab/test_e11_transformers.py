"""e11 transformers: a tiny run has the documented structure (not the verdict)."""

import math

import pytest
import torch

from gradwatch.lab import e11_transformers as e11
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e11.Config(runs=e11.RUNS, d_model=16, layers=2, heads=2, steps=4, warmup=2, every=2,
                     attn_dim=16, attn_steps=3)
    r = run_experiment(e11, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["accuracy"]) == set(e11.RUNS)
    assert set(m["ffn_grad_init"]) == {"post-LN", "pre-LN"}
    assert all(len(g) == 2 and all(v > 0 for v in g) for g in m["ffn_grad_init"].values())
    for name in ("attention-scaled", "attention-unscaled"):
        a = m["attention"][name]
        assert 0 <= a["entropy_fraction_init"] <= 1 + 1e-6 and a["score_delta_init"] > 0
    assert 0 < m["footnote4_batch_ratio"] <= 1.05
    assert len(r.checks) == 8
    assert set(r.tables) == set(e11.RUNS) | {"attention-scaled", "attention-unscaled"}
    assert r.figures and all((tmp_path / e11.NAME / f).exists() for f in r.figures)


def test_scaling_and_entropy():
    q, k = torch.randn(2, 5, 64), torch.randn(2, 5, 64)
    assert torch.allclose(e11.Scores(True)(q, k) * 8, e11.Scores(False)(q, k))
    assert math.isclose(e11.entropy(torch.eye(4).unsqueeze(0)), 0.0, abs_tol=1e-6)
    pre = e11.Encoder(16, 2, 2, pre_ln=True)
    assert pre.layers[0].norm_first and isinstance(pre.norm, torch.nn.LayerNorm)
    with pytest.raises(ValueError, match="unknown runs"):
        e11.run(e11.Config(runs=("post-LN", "deepnorm")), ctx=None)


def test_footnote4_prediction_follows_the_near_tie_law():
    """Scores of variance d_k: ratio 1 at d_k = 1, then ∝ d_k^(-1/4) (ties between the top two scores)."""
    g = torch.Generator().manual_seed(0)
    assert math.isclose(e11.footnote4_batch_ratio(1, 8, generator=g), 1.0, abs_tol=0.02)
    r = {d: e11.footnote4_batch_ratio(d, 8, generator=g) for d in (64, 256, 4096)}
    assert r[64] > r[256] > r[4096]
    slope = math.log(r[4096] / r[256]) / math.log(4096 / 256)
    assert -0.3 < slope < -0.2
    # the batch-level 10x reduction the old check asked for needs d_k ~ 10^5 at T = 8
    assert e11.footnote4_batch_ratio(256, 8, generator=g) > 0.1


def test_batch_check_can_fail_both_ways():
    cfg = e11.Config(runs=())
    base = {"entropy_fraction_init": 0.5, "row_score_grad_median_init": 1.0, "saturated_rows_init": 0.0,
            "accuracy": 0.5}
    def batch_check(unscaled):
        m = {"accuracy": {}, "ffn_grad_init": {}, "footnote4_batch_ratio": 0.45,
             "attention": {"attention-scaled": {**base, "score_delta_init": 1.0},
                           "attention-unscaled": {**base, "score_delta_init": unscaled}}}
        return next(c for c in e11._checks(cfg, m) if c.criterion.startswith("batch"))
    assert batch_check(0.5).passed
    assert not batch_check(0.05).passed   # far more suppressed than footnote 4's model allows
    assert not batch_check(1.0).passed    # scaling made no difference
