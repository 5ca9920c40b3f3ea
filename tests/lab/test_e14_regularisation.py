"""e14 regularisation: a tiny run has the documented structure (not the verdict)."""

import torch

from gradwatch.lab import e14_regularisation as e14
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e14.Config(hidden=(8,), steps=8, every=2)
    r = run_experiment(e14, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    for key in ("weight_norm_mid", "weight_norm_final", "growth_second_half", "grad_norm_final",
                "grad_norm_max", "final_loss", "accuracy"):
        assert set(m[key]) == set(e14.VARIANTS), key
    assert m["weight_norm_init"] > 0
    assert len(r.checks) == 4
    assert set(r.tables) == set(e14.VARIANTS)
    assert r.figures and all((tmp_path / e14.NAME / f).exists() for f in r.figures)


def test_total_norm_matches_the_weights(tmp_path):
    from gradwatch.lab.core import Context

    ctx = Context(seed=0, out=tmp_path, quiet=True)
    model = e14.make_mlp((6,), 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with ctx.watch(model, opt, "w", every=1):
        model(torch.rand(4, 64)).sum().backward()
        opt.step()
    expected = torch.sqrt(sum((p.detach() ** 2).sum() for p in model.parameters()))
    got = float(e14.total_norm(ctx.load("w")).iloc[0])
    assert abs(got - float(expected)) < 1e-2 * float(expected)  # stored as bfloat16
