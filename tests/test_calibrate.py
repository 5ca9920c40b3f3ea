import pytest
import torch
from torch import nn

from gradwatch.calibrate import calibrate_lr, measured_update_ratio


@pytest.mark.parametrize("cls", [torch.optim.SGD, torch.optim.Adam])
def test_calibrated_rate_lands_in_the_band_and_leaves_the_model_alone(cls):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    before = [p.detach().clone() for p in model.parameters()]
    batches = [(torch.randn(16, 8), torch.randint(0, 2, (16,))) for _ in range(3)]
    make = lambda p, lr: cls(p, lr=lr)  # noqa: E731
    lr = calibrate_lr(model, make, batches, target=1e-3)
    ratio = measured_update_ratio(model, make, lr, batches, nn.functional.cross_entropy)
    assert 5e-4 <= ratio <= 2e-3
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_model_that_cannot_learn_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    nn.init.constant_(model[0].bias, -100.0)  # every unit dead: no weight but the last moves
    for p in model[2].parameters():
        p.requires_grad_(False)
    batches = [(torch.rand(8, 4), torch.randint(0, 2, (8,)))]
    with pytest.raises(ValueError, match="could not be measured"):
        calibrate_lr(model, lambda p, lr: torch.optim.SGD(p, lr=lr), batches)


def _digits_batches(n=6, bs=64):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    return [(X[i], y[i]) for i in (torch.randint(0, len(X), (bs,), generator=g) for _ in range(n))]


def test_depth_scaled_target():
    from gradwatch.calibrate import depth_scaled_target

    assert depth_scaled_target(10) == pytest.approx(1e-3)
    assert depth_scaled_target(100, base=3e-2) == pytest.approx(3e-4)
    with pytest.raises(ValueError):
        depth_scaled_target(0)


@pytest.mark.parametrize("start_lr", [1e-6, 10.0])
def test_controller_brings_the_weight_ratio_into_the_band_from_either_side(start_lr):
    from gradwatch.calibrate import UpdateRatioController

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=start_lr, momentum=0.9)
    ctl = UpdateRatioController(opt, target=1e-3, every=2, max_factor=4.0)
    batches = _digits_batches()
    for i in range(80):
        x, y = batches[i % len(batches)]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        ctl.step()
    last = [r for _, r, _, _ in ctl.history[-5:]]
    assert all(2.5e-4 < r < 4e-3 for r in last), last
    assert torch.isfinite(loss)


def test_controller_with_a_probe_measures_the_output_change():
    from gradwatch.calibrate import UpdateRatioController

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    batches = _digits_batches()
    ctl = UpdateRatioController(opt, target=lambda s: 2e-2, every=1, probe=(model, batches[0][0]))
    for i in range(40):
        x, y = batches[i % len(batches)]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        ctl.step()
    assert ctl.lr > 1e-4  # output moved far less than 2e-2 per step at the start: the rate went up
    assert 5e-3 < ctl.history[-1][1] < 8e-2
    assert ctl.history[-1][3] == 2e-2


def test_controller_rejects_bad_settings_and_weightless_optimizers():
    from gradwatch.calibrate import UpdateRatioController

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match="weight matrix"):
        UpdateRatioController(opt, 1e-3)
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError):
        UpdateRatioController(opt, 1e-3, every=0)
