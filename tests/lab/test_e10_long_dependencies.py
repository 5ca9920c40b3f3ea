"""e10 long-dependencies: a tiny run has the documented structure (not the verdict)."""

import pytest
import torch

from gradwatch.lab import e10_long_dependencies as e10
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e10.Config(lengths=(4, 6), hidden=4, steps=4, every=2, test_size=20)
    r = run_experiment(e10, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["baseline_mse"]) == {"4", "6"}
    for key in ("mse", "log10_decay_init", "log10_decay_trained", "grad_through_time_trained"):
        assert set(m[key]) == {"rnn", "lstm", "gru"}, key
    # the watcher's per-time-step records give one gradient norm per time step
    assert all(len(m["grad_through_time_trained"][c]["6"]) == 6 for c in ("rnn", "lstm", "gru"))
    assert len(r.checks) == 5
    assert set(r.tables) == {f"{c}-T{t}" for c in ("rnn", "lstm", "gru") for t in (4, 6)}
    assert set(r.tables["gru-T6"]) == {"mse", "rmse", "mae", "r2"}
    assert r.figures and all((tmp_path / e10.NAME / f).exists() for f in r.figures)


def test_adding_problem_and_baseline():
    x, y = e10.adding_problem(4000, 20, torch.Generator().manual_seed(0))
    marks = x[..., 1]
    assert bool((marks[:, :10].sum(1) == 1).all()) and bool((marks[:, 10:].sum(1) == 1).all())
    assert abs(float(y.var()) - 1 / 6) < 0.02  # Var(x1 + x2) for x ~ U(0, 1)
    with pytest.raises(ValueError, match="T >= 2"):
        e10.adding_problem(2, 1, torch.Generator())


def test_forget_bias_is_set():
    m = e10.SeqRegressor("lstm", 5, forget_bias=1.0)
    total = m.rnn.bias_ih_l0 + m.rnn.bias_hh_l0
    assert torch.allclose(total[5:10], torch.ones(5))
