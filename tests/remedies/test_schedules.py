"""Schedules: factors at known steps from the formulas, and the LambdaLR adapter."""

import math
import pickle

import pytest
import torch

from gradwatch.remedies.schedules import (linear_warmup, to_lambda_lr, warmup_cosine, warmup_inverse_sqrt,
                                          warmup_linear_decay)


def test_linear_warmup_reaches_one_at_the_last_warmup_step():
    f = linear_warmup(5)
    assert [f(s) for s in range(7)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    assert linear_warmup(0)(0) == 1.0


def test_warmup_cosine_at_known_steps():
    w, total, m = 10, 210, 0.1
    f = warmup_cosine(w, total, m)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(w - 1) == 1.0
    for s in (w, 59, 109, 150, total - 1):
        t = (s - (w - 1)) / (total - w)
        assert f(s) == pytest.approx(m + (1 - m) * 0.5 * (1 + math.cos(math.pi * t)))
    assert f(109) == pytest.approx(m + (1 - m) / 2)   # half-way down
    assert f(total - 1) == pytest.approx(m) and f(10 * total) == pytest.approx(m)
    values = [f(s) for s in range(w - 1, total)]
    assert all(a >= b for a, b in zip(values, values[1:]))   # monotone after the peak


def test_warmup_linear_decay_at_known_steps():
    f = warmup_linear_decay(4, 104, 0.0)
    assert f(1) == pytest.approx(0.5) and f(3) == 1.0
    assert f(53) == pytest.approx(0.5) and f(103) == pytest.approx(0.0) and f(500) == 0.0


def test_warmup_inverse_sqrt_is_continuous_at_the_peak():
    w = 16
    f = warmup_inverse_sqrt(w)
    assert f(7) == pytest.approx(0.5) and f(w - 1) == 1.0
    assert f(4 * w - 1) == pytest.approx(0.5) and f(100 * w - 1) == pytest.approx(0.1)


def test_lambda_lr_follows_the_schedule_and_pickles():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD([{"params": [model.weight], "lr": 0.5}, {"params": [model.bias], "lr": 0.05}])
    f = warmup_cosine(3, 20, 0.0)
    sched = to_lambda_lr(opt, f)
    for step in range(25):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * f(step))
        assert opt.param_groups[1]["lr"] == pytest.approx(0.05 * f(step))
        opt.step()
        sched.step()
    assert pickle.loads(pickle.dumps(f))(7) == f(7)
    assert repr(f) == "warmup_cosine(warmup=3, total=20, min_factor=0.0)"


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="larger than warmup"):
        warmup_cosine(100, 50)
    with pytest.raises(ValueError, match="min_factor"):
        warmup_linear_decay(0, 10, 2.0)
    with pytest.raises(ValueError, match="warmup"):
        warmup_inverse_sqrt(0)
    with pytest.raises(TypeError, match="step -> factor"):
        to_lambda_lr(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1), 0.5)
