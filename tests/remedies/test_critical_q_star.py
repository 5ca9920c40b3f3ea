"""critical_for_q: (σ_w², σ_b²) for a target fixed point q* at χ₁ = 1 (Pennington et al. 2017),
checked against the existing solver, the small-q* series of tanh, the variance map itself and a
deep tanh network; and ``init.apply(model, "critical", q_star=...)``."""

import math

import pytest
import torch
from torch import nn

from gradwatch.remedies import init
from gradwatch.remedies.critical import chi1, critical_for_q, critical_point, fixed_point_q, gaussian_moments

torch.set_num_threads(1)


@pytest.mark.parametrize("activation, q_star", [("tanh", 0.05), ("tanh", 0.5), ("tanh", 2.0),
                                                ("softsign", 0.3), ("hardtanh", 0.5), ("elu", 0.5)])
def test_the_variance_map_settles_at_q_star_with_chi1_one(activation, q_star):
    sw2, sb2 = critical_for_q(activation, q_star)
    # iterate the map from q = 1 (not from q*): q* must be the fixed point actually reached
    assert fixed_point_q(activation, sw2, sb2, q0=1.0, iters=3000) == pytest.approx(q_star, rel=1e-5)
    _, d2 = gaussian_moments(activation, torch.tensor([q_star], dtype=torch.float64))
    assert sw2 * float(d2[0]) == pytest.approx(1.0, abs=1e-9)
    if q_star >= 0.3:  # chi1 iterates 500 steps from q = 1: converged for these
        assert chi1(activation, sw2, sb2) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("q_star", [0.05, 0.3, 1.0, 3.0])
def test_inverse_of_the_existing_solver(q_star):
    """critical_point(σ_b²) solves the same two equations for q*: it must give q* back."""
    sw2, sb2 = critical_for_q("tanh", q_star)
    sw2_ref, q_ref = critical_point("tanh", sb2)
    assert sw2_ref == pytest.approx(sw2, rel=1e-5)
    assert q_ref == pytest.approx(q_star, rel=1e-4)


@pytest.mark.parametrize("q_star", [1e-4, 1e-3])
def test_tanh_small_q_series(q_star):
    """tanh h = h − h³/3 + 2h⁵/15 gives σ_w² = 1 + 2q* − 3q*² + O(q*³) and σ_b² = (4/3)q*³ + O(q*⁴)."""
    sw2, sb2 = critical_for_q("tanh", q_star)
    assert sw2 == pytest.approx(1 + 2 * q_star - 3 * q_star ** 2, abs=50 * q_star ** 3)
    assert sb2 == pytest.approx(4 / 3 * q_star ** 3, rel=20 * q_star)


def test_unreachable_or_bad_q_star_is_a_one_line_error():
    with pytest.raises(ValueError, match="not reachable"):
        critical_for_q("sigmoid", 0.5)       # φ(0) = ½: σ_w²·E[φ²] alone exceeds q*
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            critical_for_q("tanh", bad)


def test_deep_tanh_net_holds_q_star_where_sigma_b_zero_decays():
    width, depth, q_star = 256, 150, 0.05
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())])

    def last_q() -> float:
        h = torch.randn(128, width)
        with torch.no_grad():
            for layer in list(model)[:-1]:
                h = layer(h)
        return float(h.var())

    init.apply(model, "critical", q_star=q_star)
    assert last_q() == pytest.approx(q_star, rel=0.15)
    init.apply(model, "critical")             # σ_b = 0: q_ℓ ≈ 1/(2ℓ), far below q*
    assert last_q() < 0.3 * q_star


def test_critical_policy_with_q_star():
    model = nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 10))
    report = init.apply(model, "critical", q_star=0.5, generator=torch.Generator().manual_seed(0))
    sw2, sb2 = critical_for_q("tanh", 0.5)
    w = model[2].weight.detach().double()
    assert torch.allclose(w @ w.T, sw2 * torch.eye(128, dtype=torch.float64), atol=1e-4)
    assert model[2].bias.detach().std() == pytest.approx(math.sqrt(sb2), rel=0.3)
    out = model[4].weight.detach().double()        # linear read-out: σ_w² = 1
    assert torch.allclose(out @ out.T, torch.eye(10, dtype=torch.float64), atol=1e-4)
    assert "q*=0.5" in report.rule_of("2.weight")


def test_critical_q_star_refuses_ambiguity():
    mixed = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="one activation"):
        init.apply(mixed, "critical", q_star=0.1)
    init.apply(mixed, "critical", q_star=0.1, activation="tanh")   # forced: fine
    with pytest.raises(ValueError, match="not both"):
        init.apply(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), "critical", q_star=0.1, sigma_b2=0.05)
