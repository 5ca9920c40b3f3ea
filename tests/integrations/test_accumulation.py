"""Gradient accumulation and closures: one record per optimizer step, measured on the gradients
the optimizer uses — not one per backward, not the stale gradients before a closure runs."""

import numpy as np
import torch
from torch import nn

import gradwatch as gw


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def global_norm(model):
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))


def test_accumulated_micro_batches_make_one_step(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    k, steps = 4, 5
    norms, losses, deltas = [], [], []
    with gw.watch(model, opt, out=tmp_path, every=1):
        for _ in range(steps):
            opt.zero_grad()
            micro = []
            for _ in range(k):
                x, y = torch.randn(8, 8, generator=g), torch.randn(8, 1, generator=g)
                loss = nn.functional.mse_loss(model(x), y) / k
                loss.backward()
                micro.append(float(loss.detach()))
            norms.append(global_norm(model))
            losses.append(np.mean(micro))
            opt.step()
    run = gw.load(tmp_path)
    assert list(run.steps.index) == list(range(steps))  # 5 optimizer steps, not 20 backwards
    assert np.allclose(run.steps.grad_norm, norms, rtol=1e-6)  # the accumulated gradient
    assert np.allclose(run.steps.loss, losses, rtol=1e-6)  # what backward() saw, averaged
    # the model ran k times in each step: the root's call count says so
    assert (run.series("calls")[""] == k).all()


def test_closure_steps_are_measured_after_the_closure(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    norms = []
    with gw.watch(model, opt, out=tmp_path, every=1):
        for _ in range(6):
            x, y = torch.randn(16, 8, generator=g), torch.randn(16, 1, generator=g)

            def closure():
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                norms.append(global_norm(model))
                return loss

            opt.step(closure)
    run = gw.load(tmp_path)
    assert np.allclose(run.steps.grad_norm, norms, rtol=1e-6)
    assert run.series("update_norm").notna().all().all()


def test_lbfgs_calls_its_closure_many_times_and_is_one_step(tmp_path):
    model = mlp()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    first = []
    with gw.watch(model, opt, out=tmp_path, every=1):
        for _ in range(3):
            calls = []

            def closure():
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                calls.append(global_norm(model))
                return loss

            opt.step(closure)
            assert len(calls) > 1
            first.append(calls[0])
    run = gw.load(tmp_path)
    assert len(run.steps) == 3
    assert np.allclose(run.steps.grad_norm, first, rtol=1e-6)  # the gradient the step starts from
