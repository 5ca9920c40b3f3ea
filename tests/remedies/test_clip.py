"""Clipping transforms: the clipped norm equals the bound, clipping twice changes nothing,
value clipping bounds every element, non-finite steps are skipped, chains and hooks compose."""

import math

import pytest
import torch
from torch import nn

from gradwatch.remedies.clip import (attach, chain, clip_by_global_norm, clip_by_value, skip_nonfinite)


def _model_with_grads(scale=100.0, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    model(torch.randn(32, 6)).pow(2).sum().mul(scale).backward()
    return model


def _norm(model):
    return float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("bound", [0.1, 1.0, 7.5])
def test_clipped_global_norm_equals_the_bound_and_direction_is_kept(bound):
    model = _model_with_grads()
    before, norm0 = _grads(model), _norm(model)
    assert norm0 > bound
    info = clip_by_global_norm(bound)(model)
    assert _norm(model) == pytest.approx(bound, rel=1e-5)
    assert float(info["norm"]) == pytest.approx(norm0, rel=1e-6) and bool(info["clipped"])
    for b, p in zip(before, model.parameters()):
        assert torch.allclose(p.grad, b * bound / norm0, rtol=1e-4, atol=1e-8)


def test_clipping_twice_changes_nothing():
    model = _model_with_grads()
    clip = clip_by_global_norm(1.0)
    clip(model)
    once = _grads(model)
    info = clip(model)
    assert all(torch.allclose(a, p.grad, rtol=1e-5, atol=0) for a, p in zip(once, model.parameters()))
    assert float(info["coef"]) == pytest.approx(1.0, abs=1e-5)


def test_norm_below_the_bound_is_left_alone():
    model = _model_with_grads(scale=1e-3)
    before = _grads(model)
    info = clip_by_global_norm(10.0)(model)
    assert not bool(info["clipped"])
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters()))


def test_value_clip_bounds_every_element_and_keeps_the_small_ones():
    model = _model_with_grads()
    before = _grads(model)
    info = clip_by_value(0.5)(model)
    assert float(info["max_abs"]) == pytest.approx(max(float(b.abs().max()) for b in before))
    for b, p in zip(before, model.parameters()):
        assert float(p.grad.abs().max()) <= 0.5
        inside = b.abs() <= 0.5
        assert torch.equal(p.grad[inside], b[inside])


def test_info_values_stay_on_the_device_as_tensors():
    """No ``.item()`` inside the transforms: the caller decides when to sync."""
    model = _model_with_grads()
    info = chain(skip_nonfinite(), clip_by_global_norm(1.0), clip_by_value(1.0))(model)
    for name in ("skip_nonfinite", "clip_by_global_norm", "clip_by_value"):
        assert all(isinstance(v, torch.Tensor) for k, v in info[name].items() if k != "step")


def test_skip_nonfinite_zeroes_every_gradient_and_counts():
    model = _model_with_grads()
    model[0].weight.grad[0, 0] = float("nan")
    skip = skip_nonfinite()
    info = skip(model)
    assert bool(info["skipped"]) and not math.isfinite(float(info["norm"]))
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters())
    model[2].bias.grad.fill_(1.0)
    model[0].bias.grad[0] = float("inf")
    assert bool(skip(model)["skipped"]) and int(skip.state.skips) == 2
    ok = _model_with_grads()
    before = _grads(ok)
    info = skip(ok)
    assert not bool(info["skipped"]) and int(info["skips"]) == 2
    assert all(torch.equal(a, p.grad) for a, p in zip(before, ok.parameters()))


def test_skip_nonfinite_set_to_none_leaves_momentum_optimizers_still():
    model = _model_with_grads()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.step()  # momentum buffers now exist
    weights = [p.detach().clone() for p in model.parameters()]
    model[2].weight.grad[0, 0] = float("nan")
    info = skip_nonfinite(set_to_none=True)(model)
    opt.step()
    assert bool(info["skipped"]) and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(w, p) for w, p in zip(weights, model.parameters()))


def test_chain_runs_in_order_and_reports_each_to_the_sink():
    seen = []
    model = _model_with_grads()
    t = chain(clip_by_value(0.05), clip_by_global_norm(0.01), clip_by_global_norm(1e-3), sink=seen.append)
    info = t(model.parameters())  # a generator is fine: the chain keeps a list
    assert list(info) == ["clip_by_value", "clip_by_global_norm", "clip_by_global_norm_1", "step"]
    assert _norm(model) == pytest.approx(1e-3, abs=1e-6)  # torch divides by norm + 1e-6
    t(model)
    assert [i["step"] for i in seen] == [0, 1]


def test_attach_clips_before_every_optimizer_step():
    model = _model_with_grads()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    w0 = [p.detach().clone() for p in model.parameters()]
    handle = attach(opt, clip_by_global_norm(0.5), model)
    opt.step()
    step = torch.cat([(p.detach() - w).flatten() for w, p in zip(w0, model.parameters())])
    assert float(step.norm()) == pytest.approx(0.5, rel=1e-5)
    handle.remove()


def test_bad_bounds_raise():
    with pytest.raises(ValueError, match="positive"):
        clip_by_global_norm(0.0)
    with pytest.raises(ValueError, match="positive"):
        clip_by_value(-1.0)
