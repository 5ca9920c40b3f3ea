"""ReZero starts every block as the identity and learns α; Fixup zeroes the last layer of each
branch and the classifier and scales the rest by L^(−1/(2m−2)); Residual adds x."""

import math

import pytest
import torch
from scipy import stats
from torch import nn

from gradwatch.remedies import init
from gradwatch.remedies.residual import Residual, ReZero


def _stack(width=8, blocks=3):
    layers = [nn.Linear(4, width), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 2))


def test_rezero_block_is_the_identity_until_alpha_moves():
    torch.manual_seed(0)
    block = ReZero(nn.Sequential(nn.Linear(6, 6), nn.Tanh()))
    x = torch.randn(10, 6)
    assert torch.equal(block(x), x)
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    block(x).pow(3).sum().backward()
    assert block.alpha.grad is not None and float(block.alpha.grad.abs()) > 0
    opt.step()
    assert float(block.alpha.detach()) != 0.0


def test_rezero_policy_wraps_same_shape_blocks_and_names_the_new_parameters():
    torch.manual_seed(0)
    model = _stack()
    x = torch.randn(5, 4)
    with torch.no_grad():
        skip = model[8](model[1](model[0](x)))   # the output with every block the identity
    report = init.apply(model, "rezero")
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "ReZero", "ReZero", "ReZero", "Linear"]
    assert report.new_params == ["2.alpha", "3.alpha", "4.alpha"]
    assert set(report.new_params) <= {n for n, _ in model.named_parameters()}
    with torch.no_grad():
        assert torch.allclose(model(x), skip)


def test_rezero_policy_converts_residual_wrappers():
    model = nn.Sequential(nn.Linear(4, 8), Residual(nn.Sequential(nn.Linear(8, 8), nn.ReLU())), nn.Linear(8, 2))
    init.apply(model, "rezero")
    assert isinstance(model[1], ReZero)
    with pytest.raises(ValueError, match="same-shape"):
        init.apply(nn.Sequential(nn.Linear(4, 2)), "rezero")


def test_residual_adds_the_input():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(5, 5), nn.Tanh())
    x = torch.randn(3, 5)
    with torch.no_grad():
        assert torch.allclose(Residual(f)(x), x + f(x))


def test_fixup_zeroes_branch_ends_and_classifier_and_scales_the_rest():
    width, L, m = 256, 4, 2

    def branch():
        return Residual(nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)))

    model = nn.Sequential(nn.Linear(16, width), nn.ReLU(), *[branch() for _ in range(L)], nn.Linear(width, 10))
    report = init.apply(model, "fixup", generator=torch.Generator().manual_seed(0))
    scale = L ** (-1 / (2 * m - 2))
    for i in range(2, 2 + L):
        first, last = model[i].fn[0], model[i].fn[2]
        assert torch.count_nonzero(last.weight) == 0
        ref = stats.norm(0, math.sqrt(2 / width) * scale)
        assert stats.kstest(first.weight.detach().flatten().numpy(), ref.cdf).pvalue > 1e-3
    assert torch.count_nonzero(model[-1].weight) == 0
    assert any("classifier" in n for n in report.notes)
    # still trainable: the zero layers get a gradient once the classifier has moved
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 16), torch.randint(0, 10, (32,))
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert torch.count_nonzero(model[2].fn[2].weight) > 0


def test_fixup_can_keep_the_classifier_and_the_net_still_starts_as_the_identity():
    torch.manual_seed(0)
    width = 32
    model = nn.Sequential(nn.Linear(8, width), *[Residual(nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                                                      nn.Linear(width, width))) for _ in range(3)],
                          nn.Linear(width, 5))
    report = init.apply(model, "fixup", zero_classifier=False)
    assert torch.count_nonzero(model[-1].weight) == model[-1].weight.numel()
    assert any("keeps the standard init" in n for n in report.notes)
    x = torch.randn(4, 8)
    with torch.no_grad():
        h = model[0](x)
        assert torch.allclose(model[1:4](h), h)  # every branch end is zero


def test_fixup_needs_branches():
    with pytest.raises(ValueError, match="branches"):
        init.apply(_stack(), "fixup")
    model = _stack()
    report = init.apply(model, "fixup", branches=["2"])   # a named single-layer branch ending in nothing
    assert torch.count_nonzero(model[2].weight) == 0
    assert "2.weight" in report.touched
