"""AutoClip's threshold is numpy's percentile of the norm history, z-score clipping's is
mean + k·std of the recent clipped norms, and AGC bounds ‖G_i‖/‖W_i‖ per unit except in the
final layer."""

import numpy as np
import pytest
import torch
from torch import nn

from gradwatch.remedies.clip import adaptive_grad_clip, autoclip, final_layer_params, unitwise_norm, zscore_clip


def _param_with_norms(norms, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p = nn.Parameter(torch.zeros(5))
    for n in norms:
        g = torch.randn(5, generator=gen)
        p.grad = g / g.norm() * n
        yield p


@pytest.mark.parametrize("percentile, history", [(10, None), (50, None), (90, 7)])
def test_autoclip_threshold_is_the_numpy_percentile_of_the_history(percentile, history):
    norms = np.random.default_rng(0).lognormal(0.0, 1.5, size=300)   # crosses the buffer's growth
    clip = autoclip(percentile, history=history)
    for i, p in enumerate(_param_with_norms(norms)):
        info = clip([p])
        past = norms[: i + 1] if history is None else norms[max(0, i + 1 - history): i + 1]
        expect = np.percentile(past, percentile)
        assert float(info["threshold"]) == pytest.approx(expect, rel=1e-5)
        assert float(p.grad.norm()) == pytest.approx(min(norms[i], expect), rel=1e-4)


def test_autoclip_keeps_nonfinite_norms_out_of_the_history():
    clip = autoclip(50)
    p = nn.Parameter(torch.zeros(2))
    for g in ([3.0, 4.0], [float("nan"), 0.0], [6.0, 8.0]):
        p.grad = torch.tensor(g)
        info = clip([p])
    assert float(info["threshold"]) == pytest.approx(7.5)   # median of 5 and 10


def test_zscore_threshold_is_mean_plus_k_std_of_the_recent_clipped_norms():
    k, window, warm = 2.0, 20, 5
    norms = np.abs(np.random.default_rng(1).normal(1.0, 0.2, size=60))
    norms[[10, 30, 31]] = [40.0, 25.0, 90.0]                         # spikes
    clip = zscore_clip(k=k, window=window, min_history=warm)
    recorded = []
    for i, p in enumerate(_param_with_norms(norms)):
        info = clip([p])
        hist = np.array(recorded[-window:])
        expect = hist.mean() + k * hist.std(ddof=1) if len(hist) >= warm else np.inf
        assert float(info["threshold"]) == pytest.approx(expect, rel=1e-5)
        assert float(p.grad.norm()) == pytest.approx(min(norms[i], expect), rel=1e-4)
        recorded.append(min(norms[i], expect))
    assert max(recorded) < 3.0                                        # every spike was cut back


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(),
                         nn.Linear(16, 4))


def test_agc_bounds_each_unit_and_leaves_the_final_layer():
    model, lam, eps = _net(), 0.02, 1e-3
    model(torch.randn(16, 3, 6, 6)).pow(2).sum().mul(100).backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    info = adaptive_grad_clip(lam, eps)(model)
    assert info["excluded"] == ["5.weight", "5.bias"] and 0 < float(info["clipped_frac"]) <= 1
    for name, p in model.named_parameters():
        if name.startswith("5."):
            assert torch.equal(p.grad, before[name])
            continue
        ratio = unitwise_norm(p.grad) / unitwise_norm(p.detach()).clamp(min=eps)
        assert float(ratio.max()) <= lam * (1 + 1e-4)
        small = (unitwise_norm(before[name]) / unitwise_norm(p.detach()).clamp(min=eps) <= lam).expand_as(p)
        assert torch.equal(p.grad[small], before[name][small])


def test_agc_exclusions_by_name_and_for_unnamed_lists():
    model = _net()
    model(torch.randn(4, 3, 6, 6)).sum().mul(1e4).backward()
    head = model[5].weight.grad.clone()
    first = model[0].weight.grad.clone()
    info = adaptive_grad_clip(0.01, exclude=["0.weight"])(model)
    assert torch.equal(model[0].weight.grad, first) and not torch.equal(model[5].weight.grad, head)
    assert info["excluded"] == ["0.weight"]
    params = list(model.parameters())
    assert adaptive_grad_clip(0.01)(params)["excluded"] == [str(len(params) - 2), str(len(params) - 1)]


def test_unitwise_norm_and_final_layer_params():
    w = torch.randn(8, 3, 3, 3)
    assert torch.allclose(unitwise_norm(w).flatten(), torch.stack([w[i].norm() for i in range(8)]))
    assert unitwise_norm(torch.tensor([3.0, 4.0])).item() == pytest.approx(5.0)
    assert final_layer_params(_net()) == ["5.weight", "5.bias"]
