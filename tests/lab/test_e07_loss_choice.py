"""e07 loss-choice: structure of a tiny run; the saturated gradients by formula."""

import math

import pytest

from gradwatch.lab import e07_loss_choice as e07
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e07.Config(hidden=(8,), lr_grid=(0.5,), max_steps=30, eval_every=10, every=10)
    r = run_experiment(e07, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["steps_at_lr"]) == set(e07.LOSSES) and set(m["steps_grid"]["mse+sigmoid"]) == {"0.5"}
    assert m["predicted_ratio"] == pytest.approx(0.98 * 0.02)
    assert len(r.checks) == 4 and set(r.tables) == {f"{k} lr=0.5" for k in e07.LOSSES}
    assert r.tables["softmax+nll lr=0.5"]["support"] == 450
    assert (tmp_path / e07.NAME / r.figures[0]).is_file()


@pytest.mark.parametrize("a, y", [(0.98, 0.0), (0.5, 0.0), (0.1, 1.0)])
def test_saturated_gradients_match_the_formulas(a, y):
    g = e07.saturated_gradients(a, y)
    assert g["mse"] == pytest.approx(abs(a - y) * a * (1 - a), rel=1e-9)
    assert g["bce"] == pytest.approx(abs(a - y), rel=1e-9)


def test_output_starts_saturated_and_lr_must_be_in_grid(tmp_path):
    import torch

    net = e07._model(e07.Config(hidden=(8,)))
    assert net[-1].bias[0].item() == pytest.approx(math.log(0.98 / 0.02), rel=1e-6)
    with pytest.raises(ValueError, match="must be one of lr_grid"):
        run_experiment(e07, config=e07.Config(lr=0.3, lr_grid=(0.5,)), out=tmp_path, quiet=True)
    assert torch.sigmoid(net(torch.zeros(1, 64))).mean() > 0.9
