"""The learning-rate range test: on least squares the suggestion sits below the stability limit
2/λ_max of gradient descent and well above uselessly small rates; the model is untouched."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.functional import mse_loss

from gradwatch.remedies.schedules import lr_range_test


def _problem(seed):
    torch.manual_seed(seed)
    X = torch.randn(256, 8) * torch.linspace(0.2, 3.0, 8)
    y = X @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    Xa = torch.cat([X, torch.ones(256, 1)], 1)
    lr_max = 2.0 / float(torch.linalg.eigvalsh(2.0 * Xa.T @ Xa / 256).max())   # GD diverges above this
    return X, y, [(X[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)], lr_max


@pytest.mark.parametrize("seed", [0, 1])
def test_suggestion_is_below_the_stability_limit_and_useful(seed):
    X, y, batches, lr_max = _problem(seed)
    model = nn.Linear(8, 1)
    res = lr_range_test(model, lambda p: torch.optim.SGD(p, lr=1.0), batches, mse_loss, steps=100)
    assert lr_max / 100 < res.suggestion < lr_max
    assert res.diverged and len(res.lrs) < 100            # the sweep ran past 2/λ_max and stopped
    ratios = [b / a for a, b in zip(res.lrs, res.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios)) and res.lrs[0] == pytest.approx(1e-7)

    def fit(lr):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        for _ in range(30):
            for xb, yb in batches:
                opt.zero_grad()
                mse_loss(m(xb), yb).backward()
                opt.step()
        return float(mse_loss(m(X), y).detach())

    assert fit(res.suggestion) < 0.5 * fit(res.suggestion / 100)


def test_the_users_model_is_untouched():
    _, _, batches, _ = _problem(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    before = copy.deepcopy(model.state_dict())
    model.eval()
    lr_range_test(model, lambda p: torch.optim.Adam(p), batches, mse_loss, steps=30)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_min_over_ten_method_and_plot(tmp_path):
    _, _, batches, _ = _problem(0)
    res = lr_range_test(nn.Linear(8, 1), lambda p: torch.optim.SGD(p, lr=1.0), iter(batches * 30), mse_loss,
                        steps=60, method="min/10")
    best = min(range(len(res.smoothed)), key=res.smoothed.__getitem__)
    assert res.method == "min/10" and res.suggestion == pytest.approx(res.lrs[best] / 10)
    path = tmp_path / "range.png"
    res.plot(str(path))
    assert path.stat().st_size > 1000


def test_bad_arguments():
    with pytest.raises(ValueError, match="start < end"):
        lr_range_test(nn.Linear(1, 1), torch.optim.SGD, [(torch.ones(1, 1), torch.ones(1, 1))], mse_loss, start=1.0,
                      end=0.1)
    with pytest.raises(ValueError, match="batch"):
        lr_range_test(nn.Linear(1, 1), lambda p: torch.optim.SGD(p, lr=0.1), [], mse_loss)
