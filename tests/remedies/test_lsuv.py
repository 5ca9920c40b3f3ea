"""LSUV (Mishkin & Matas 2016): every layer's output variance is 1 ± tol on the batch, the
weights stay orthogonal up to scale, and nothing but the weights changes."""

import pytest
import torch
from torch import nn

from gradwatch.remedies import init
from gradwatch.remedies.layers import weight_layers


def _output_vars(model, x):
    seen = {}

    def hook(name):
        def record(_m, _i, out):
            seen.setdefault(name, float(out.detach().var()))
        return record

    hooks = [m.register_forward_hook(hook(n)) for n, m in weight_layers(model)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_every_layer_has_unit_output_variance():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64),
                          nn.ELU(), nn.Linear(64, 5))
    x = torch.randn(512, 20) * 7 + 3
    report = init.apply(model, "lsuv", data=x)
    variances = _output_vars(model, x)
    assert len(variances) == 4
    assert all(abs(v - 1) < 0.1 for v in variances.values()), variances
    assert "rescaled to output Var" in report.rule_of("4.weight")


def test_conv_net_and_orthogonal_directions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    x = torch.rand(64, 3, 8, 8)
    init.apply(model, "lsuv", data=x)
    assert all(abs(v - 1) < 0.1 for v in _output_vars(model, x).values())
    w = model[5].weight.detach().double()
    gram = w @ w.T
    scale = gram.diagonal().mean()
    assert torch.allclose(gram / scale, torch.eye(10, dtype=torch.float64), atol=1e-5)


def test_batchnorm_statistics_are_left_as_they_were():
    model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    init.apply(model, "lsuv", data=torch.randn(128, 10) * 4)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_layer_the_forward_never_calls_is_reported():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    report = init.apply(Skips(), "lsuv", data=torch.randn(32, 4))
    assert any("'unused'" in n for n in report.notes)


def test_tolerance_is_respected_with_few_iterations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32))
    x = torch.randn(256, 8)
    init.apply(model, "lsuv", data=x, tol=0.01, max_iter=10)
    assert all(abs(v - 1) < 0.01 for v in _output_vars(model, x).values())
    with pytest.raises(ValueError, match="tol"):
        init.apply(model, "lsuv", data=x, tol=0.0)
