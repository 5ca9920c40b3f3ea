"""Optimizer swaps and weight decay."""

import pytest
import torch
from torch import nn

from gradwatch.remedies.architecture import insert_norm
from gradwatch.remedies.optim import swap_optimizer, with_weight_decay


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def test_swap_to_adam_keeps_group_ratios_and_weight_decay():
    model = _model()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.5},
                           {"params": model[2].parameters(), "lr": 0.05, "weight_decay": 1e-3},
                           {"params": model[4].parameters(), "lr": 0.5}], lr=0.5, momentum=0.9)
    new = swap_optimizer(opt, model, "adam")
    assert isinstance(new, torch.optim.Adam)
    assert [g["lr"] for g in new.param_groups] == pytest.approx([1e-3, 1e-4, 1e-3])
    assert new.param_groups[1]["weight_decay"] == 1e-3 and new.param_groups[0]["weight_decay"] == 0
    assert swap_optimizer(opt, None, "rmsprop", lr=3e-4).param_groups[0]["lr"] == pytest.approx(3e-4)


def test_swap_picks_up_parameters_a_rewrite_added():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    insert_norm(model)
    new = swap_optimizer(opt, model, "adamw")
    held = {id(p) for g in new.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters()}
    nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 2, (16,))).backward()
    new.step()
    with pytest.raises(ValueError, match="choose one of"):
        swap_optimizer(opt, model, "lion")


def test_weight_decay_is_the_l2_step():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with_weight_decay(opt, 0.01)
    w = model[0].weight.detach().clone()
    model(torch.randn(5, 4)).sum().backward()
    g = model[0].weight.grad.clone()
    opt.step()
    assert torch.allclose(model[0].weight, w - 0.1 * (g + 0.01 * w), atol=1e-7)


def test_skip_1d_and_functional_form_copy_the_state():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    new = with_weight_decay(opt, 1e-2, skip_1d=True, inplace=False)
    assert all(g.get("weight_decay", 0) == 0 for g in opt.param_groups)       # the original is unchanged
    decays = {id(p): g["weight_decay"] for g in new.param_groups for p in g["params"]}
    assert all(decays[id(p)] == (1e-2 if p.dim() >= 2 else 0.0) for p in model.parameters())
    for p in model.parameters():
        assert torch.equal(new.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])
        assert new.state[p]["momentum_buffer"] is not opt.state[p]["momentum_buffer"]
