"""e12 clipping-methods: a tiny run has the documented structure (not the verdict)."""

import torch

from gradwatch.lab import e12_clipping_methods as e12
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e12.Config(depth=2, width=8, steps=5, hessian_samples=64, power_iters=3, norm_sweep=(1.0,),
                     agc_sweep=(0.04,), every=2)
    r = run_experiment(e12, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    names = set(e12.METHODS) | {"norm×1g0", "agc λ=0.04"}
    for key in ("final_loss", "finite", "max_grad_norm", "accuracy", "thresholds"):
        assert set(m[key]) == names, key
    assert m["lr_factor"] in cfg.lr_factors and m["lambda_max"] > 0 and m["g0"] > 0
    assert m["lr"] == m["lr_factor"] * m["stable_lr"]
    assert m["thresholds"]["norm"] == m["g0"] / m["lr_factor"]
    # the search tried k in order and stopped at the chosen one
    tried = list(m["unclipped_search"])
    assert tried == [f"{k:g}" for k in cfg.lr_factors[: len(tried)]] and tried[-1] == f"{m['lr_factor']:g}" or \
        len(tried) == len(cfg.lr_factors)
    assert len(r.checks) == 4
    assert set(r.tables) == names
    assert r.figures and all((tmp_path / e12.NAME / f).exists() for f in r.figures)
    assert (tmp_path / e12.NAME / "runs" / "agc-0.04").is_dir()


def test_power_iteration_matches_exact_hessian():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, bias=False)
    X, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    lam = e12.top_hessian_eigenvalue(model, X, y, 200, torch.Generator().manual_seed(0))

    def loss(w):
        return torch.nn.functional.cross_entropy(X @ w.view(2, 3).T, y)

    H = torch.autograd.functional.hessian(loss, model.weight.detach().flatten())
    assert abs(lam - float(torch.linalg.eigvalsh(H).max())) < 1e-3 * max(1.0, lam)
