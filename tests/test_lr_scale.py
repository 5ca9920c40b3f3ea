"""A lasting learning-rate change survives the LR scheduler that drives the optimizer."""

import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as L

import gradwatch as gw
from gradwatch.guard import Guard
from gradwatch.lr_scale import scale_lr, schedulers_of

SCHEDULES = {
    "lambda_warmup": lambda o: L.LambdaLR(o, lambda t: min(1.0, (t + 1) / 10)),
    "linear": lambda o: L.LinearLR(o, start_factor=0.1, total_iters=20),
    "cosine": lambda o: L.CosineAnnealingLR(o, T_max=15),
    "onecycle": lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=60),
    "step": lambda o: L.StepLR(o, step_size=7, gamma=0.5),
    "cyclic": lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, cycle_momentum=False),
    "sequential": lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=5),
                                               L.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
    "polynomial": lambda o: L.PolynomialLR(o, total_iters=40, power=2.0),
}


def _rates(name, cut_at=None, factor=0.25, steps=40):
    torch.manual_seed(0)
    p = nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = SCHEDULES[name](opt)
    out = []
    for t in range(steps):
        if t == cut_at:
            scale_lr(opt, factor)
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
        out.append(float(opt.param_groups[0]["lr"]))
    return out


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_scheduler_keeps_the_cut(name):
    ref, cut = _rates(name), _rates(name, cut_at=12)
    assert cut[:12] == pytest.approx(ref[:12])
    # from the cut on the schedule runs on at a quarter of its rates (the step it acts on included)
    assert cut[12:] == pytest.approx([0.25 * r for r in ref[12:]], rel=1e-6, abs=1e-12)


def test_schedulers_of_finds_only_the_optimizers_own():
    a = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    b = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sa, sb = L.StepLR(a, 3), L.LambdaLR(b, lambda t: 1.0)
    assert schedulers_of(a) == [sa] and schedulers_of(b) == [sb]
    assert schedulers_of(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)) == []


def test_a_tensor_rate_stays_a_tensor():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.01))
    scale_lr(opt, 0.5)
    lr = opt.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and float(lr) == pytest.approx(0.005)


def test_the_guards_rollback_cut_survives_a_warmup_schedule(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    X = torch.randn(256, 8)
    y = X.sum(1, keepdim=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    warm = lambda t: min(1.0, (t + 1) / 20)  # noqa: E731
    sched = L.LambdaLR(opt, warm)
    guard = Guard(max_bad=3, snapshot_every=5, lr_factor=0.5)
    with gw.watch(model, opt, out=tmp_path, guard=guard):
        for step in range(60):
            loss = (model(X) - y).pow(2).mean()
            if 30 <= step < 34:
                loss = loss * 1e6  # a burst of exploding gradients
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    assert guard.rollbacks == 1
    # without the scheduler's base rate cut, LambdaLR would put the rate back to 0.01 × warm(t)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.01 * warm(sched.last_epoch))
    assert math.isfinite(float(loss))
