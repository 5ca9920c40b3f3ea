"""e04 deep-linear: structure of a tiny run, and the pieces against references."""

import torch

from gradwatch.lab import e04_deep_linear as e04
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e04.Config(depths=(2, 4, 8), width=16, lr0_grid=(0.3,), max_steps=20, eval_every=5, every=10)
    r = run_experiment(e04, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["steps"]) == {"orthogonal", "gaussian"} and set(m["steps"]["orthogonal"]) == {"2", "4", "8"}
    assert all(1 <= v <= 25 for d in m["steps"].values() for v in d.values())
    assert m["loss_least_squares"] < m["loss_target"] < m["loss_zero"]
    assert len(r.checks) == 2 and r.figures and (tmp_path / e04.NAME / r.figures[0]).is_file()
    assert (tmp_path / e04.NAME / "runs" / "orthogonal-d8-lr0.3").is_dir()


def test_whitening_and_product_spectrum():
    X, Y = e04.whitened_digits()
    assert torch.allclose(X.T @ X / len(X), torch.eye(X.shape[1]), atol=1e-4)
    assert torch.allclose(Y.mean(0), torch.zeros(10), atol=1e-6)
    torch.manual_seed(0)
    # square orthogonal layers: every singular value of the product is exactly 1
    net = e04.linear_net(32, 32, 20, "orthogonal")[:-1]
    sv = e04._product_svals(net)
    assert torch.allclose(sv, torch.ones_like(sv), atol=1e-6)
    # scaled Gaussian: the product's spectrum spreads with depth
    spread = [(lambda s: s.max() / s.min())(e04._product_svals(e04.linear_net(32, 32, d, "gaussian")[:-1]))
              for d in (2, 16)]
    assert spread[1] > 10 * spread[0]
