"""Critical initialisation: σ_w² at χ₁ = 1 matches the published values and both mean-field
equations, and a deep tanh network initialised there neither vanishes nor explodes."""

import math

import pytest
import torch
from scipy import integrate
from torch import nn

from gradwatch.remedies import init
from gradwatch.remedies.critical import chi1, critical_point, critical_sigma_w2, fixed_point_q, gaussian_moments
from gradwatch.remedies.rules import delta_orthogonal_


@pytest.mark.parametrize("activation, sigma_b2, expected", [
    ("tanh", 0.05, 1.76),   # Schoenholz et al. 2017
    ("tanh", 0.0, 1.0),
    ("relu", 0.0, 2.0),     # He et al. 2015
    ("linear", 0.0, 1.0),
])
def test_published_values(activation, sigma_b2, expected):
    assert critical_sigma_w2(activation, sigma_b2) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.5])
def test_leaky_relu_matches_the_closed_form(slope):
    act = nn.LeakyReLU(slope)
    assert critical_sigma_w2(act) == pytest.approx(2 / (1 + slope ** 2), rel=1e-6)


def test_moments_against_adaptive_quadrature():
    q = 2.3
    dens = lambda h: math.exp(-h * h / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    ref_m2 = integrate.quad(lambda h: math.tanh(h) ** 2 * dens(h), -math.inf, math.inf)[0]
    ref_d2 = integrate.quad(lambda h: (1 - math.tanh(h) ** 2) ** 2 * dens(h), -math.inf, math.inf)[0]
    m2, d2 = gaussian_moments("tanh", torch.tensor([q]))
    assert float(m2[0]) == pytest.approx(ref_m2, rel=1e-8)
    assert float(d2[0]) == pytest.approx(ref_d2, rel=1e-8)


@pytest.mark.parametrize("activation, sigma_b2", [("tanh", 0.05), ("tanh", 0.5), ("sigmoid", 0.0),
                                                  ("hardtanh", 0.05), ("elu", 0.05), ("softsign", 0.1)])
def test_solution_satisfies_both_equations(activation, sigma_b2):
    """The fixed point reached by iterating the variance map (from q = 1) has χ₁ = 1."""
    sw2, q_star = critical_point(activation, sigma_b2)
    assert fixed_point_q(activation, sw2, sigma_b2) == pytest.approx(q_star, rel=1e-4)
    assert chi1(activation, sw2, sigma_b2) == pytest.approx(1.0, abs=1e-4)


def test_no_stable_critical_point_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="sigma_b2"):
        critical_sigma_w2("gelu", 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        critical_sigma_w2("tanh", -1.0)


def _delta_ratio(model: nn.Sequential, width: int) -> tuple[float, float]:
    torch.manual_seed(0)
    h, pre = torch.randn(64, width), []
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.Linear):
            h.retain_grad()
            pre.append(h)
    h.pow(2).sum().backward()
    return float(pre[0].grad.norm() / pre[-1].grad.norm()), float(pre[-1].detach().var())


def _tanh_stack(depth: int, width: int) -> nn.Sequential:
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())])


def test_deep_tanh_net_at_criticality_keeps_the_gradient_and_the_variance():
    """At χ₁ = 1 the back-propagated δ keeps its size over 50 layers and the pre-activation
    variance sits at q*; off criticality it shrinks (ordered) or grows (chaotic) by decades."""
    depth, width, sb2 = 50, 256, 0.05
    sw2, q_star = critical_point("tanh", sb2)
    model = _tanh_stack(depth, width)
    torch.manual_seed(1)
    init.apply(model, "critical", sigma_b2=sb2)
    ratio, q_last = _delta_ratio(model, width)
    assert abs(math.log10(ratio)) < 0.5
    assert q_last == pytest.approx(q_star, rel=0.1)
    for scale, sign in ((0.6, -1), (1.7, 1)):  # ordered, chaotic
        init.apply(model, "orthogonal", gain=math.sqrt(scale * sw2), bias=None)
        off, _ = _delta_ratio(model, width)
        assert sign * math.log10(off) > 1.0


def test_critical_policy_scales_orthogonal_weights_and_draws_biases():
    model = nn.Sequential(nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 4))
    report = init.apply(model, "critical", sigma_b2=0.05)
    sw2 = critical_sigma_w2("tanh", 0.05)
    w = model[2].weight.detach().double()
    assert torch.allclose(w @ w.T, sw2 * torch.eye(128, dtype=torch.float64), atol=1e-4)
    assert model[0].bias.detach().std() == pytest.approx(math.sqrt(0.05), rel=0.3)
    assert "χ₁=1" in report.rule_of("0.weight")


def test_critical_policy_falls_back_to_he_where_no_critical_point_exists():
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2))
    report = init.apply(model, "critical")
    assert report.rule_of("0.weight").startswith("kaiming_normal_")
    assert "no critical point" in report.rule_of("0.weight")


@pytest.mark.parametrize("cin, cout", [(8, 8), (4, 16)])
def test_delta_orthogonal_conv_is_an_isometry(cin, cout):
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    report = init.apply(conv, "delta_orthogonal")
    assert report.rule_of("weight").startswith("delta_orthogonal_")
    x = torch.zeros(1, cin, 7, 7)
    x[0, :, 3, 3] = torch.randn(cin)                    # a centre-pixel input
    with torch.no_grad():
        assert float(conv(x).norm()) == pytest.approx(float(x.norm()), rel=1e-5)
        x = torch.randn(5, cin, 7, 7)                   # and any input
        assert torch.allclose(conv(x).flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-5)
    w = conv.weight.detach()
    assert torch.count_nonzero(w) == torch.count_nonzero(w[:, :, 1, 1])


def test_delta_orthogonal_refuses_a_matrix():
    with pytest.raises(ValueError, match="orthogonal_"):
        delta_orthogonal_(torch.empty(4, 4))
