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
