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
