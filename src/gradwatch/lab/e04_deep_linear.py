"""e04 — Deep linear networks: orthogonal init learns in depth-independent time, scaled Gaussian does not.

A deep linear network y = W_D ⋯ W_1 x computes only a linear map, yet its gradient dynamics are
nonlinear and depend on the spectrum of the product at init. With orthogonal layers every
singular value of the product is 1 (dynamical isometry) and, with the learning rate ∝ 1/depth as
Saxe et al. prescribe, the time to learn is independent of depth. With scaled Gaussian layers
(variance 1/fan-in) the product's singular values spread exponentially with depth: a rate small
enough for the largest is too small for the smallest, and learning time grows with depth.

Measured: PCA-whitened digits (Σ_xx = I as in the paper's analysis), targets one-hot
(centred), loss ½‖ŷ − y‖²; mini-batch SGD with lr = lr0 / depth for each lr0 in a grid (the best
per depth and init is kept, as the paper optimises the rate per depth); steps until the training
loss has closed 95% of the gap between the zero predictor and the least-squares optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "deep-linear"
CLAIM = ("In deep linear networks orthogonal init learns in depth-independent time "
         "(steps at depth 64 ≤ 2× depth 4) while scaled Gaussian init slows with depth.")
SOURCE = "Saxe, McClelland & Ganguli 2014 (ICLR), learning time vs depth, orthogonal vs scaled Gaussian"
INITS = ("orthogonal", "gaussian")


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)  # number of weight matrices
    width: int = 64                                  # hidden width
    lr0_grid: tuple[float, ...] = (0.1, 0.3, 1.0)    # lr = lr0 / depth; the best lr0 per depth is kept
    gap: float = 0.05                                # target: loss ≤ L* + gap·(L_zero − L*)
    max_steps: int = 1000                            # step budget per run
    batch: int = 128                                 # mini-batch size
    eval_every: int = 5                              # steps between full-training-set loss evaluations
    ref_depth: int = 4                               # the shallow depth the deepest is compared with
    max_ratio: float = 2.0                           # orthogonal: steps(deepest)/steps(ref) must be ≤ this
    every: int = 50                                  # watcher: steps between slow statistics


FULL = {"depths": (2, 4, 8, 16, 32, 64, 128), "lr0_grid": (0.03, 0.1, 0.3, 1.0), "max_steps": 3000}


def whitened_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Training digits, centred and PCA-whitened (components with ≥ 1% of the top variance).

    Example:
        >>> X, Y = whitened_digits()
        >>> torch.allclose(X.T @ X / len(X), torch.eye(X.shape[1]), atol=1e-4)
        True
    """
    d = digits()
    X = d.X_train - d.X_train.mean(0)
    _, S, V = torch.linalg.svd(X.double(), full_matrices=False)
    var = S ** 2 / len(X)
    keep = var > 1e-2 * var.max()
    Xw = (X.double() @ V[keep].T / var[keep].sqrt()).float()
    Y = nn.functional.one_hot(d.y_train, 10).float()
    return Xw, Y - Y.mean(0)


def linear_net(n_in: int, width: int, depth: int, init: str) -> nn.Sequential:
    """``depth`` bias-free linear layers n_in → width → … → 10, orthogonal or N(0, 1/fan_in)."""
    dims = [n_in] + [width] * (depth - 1) + [10]
    layers = [nn.Linear(a, b, bias=False) for a, b in zip(dims, dims[1:])]
    for layer in layers:
        if init == "orthogonal":
            nn.init.orthogonal_(layer.weight)
        else:
            nn.init.normal_(layer.weight, std=1 / math.sqrt(layer.weight.shape[1]))
    return nn.Sequential(*layers)


def _loss(model: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (model(X) - Y).pow(2).sum(1).mean()


def _product_svals(model: nn.Sequential) -> torch.Tensor:
    with torch.no_grad():
        P = model[0].weight.double()
        for layer in model[1:]:
            P = layer.weight.double() @ P
    return torch.linalg.svdvals(P)


def _train(depth: int, init: str, lr0: float, X, Y, target: float, config: Config, ctx: Context) -> dict:
    torch.manual_seed(ctx.seed * 7919 + depth)  # the same init for every lr0 of a (depth, init) pair
    model = linear_net(X.shape[1], config.width, depth, init)
    svals = _product_svals(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr0 / depth)
    draw = batches(len(X), config.batch, ctx.generator(depth))
    name = f"{init}-d{depth}-lr{lr0:g}"
    hit, curve = None, []
    with ctx.watch(model, opt, name, every=config.every):
        for step in range(1, config.max_steps + 1):
            idx = next(draw)
            loss = _loss(model, X[idx], Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % config.eval_every == 0:
                with torch.no_grad():
                    full = _loss(model, X, Y).item()
                curve.append((step, full))
                if not math.isfinite(full) or full <= target:
                    hit = step if full <= target else None
                    break
    return {"steps": hit, "curve": curve, "name": name, "svals": svals}


def run(config: Config, ctx: Context) -> Result:
    """Steps to target for each depth × init (best over the lr grid), then the two criteria."""
    if config.ref_depth not in config.depths:
        raise ValueError(f"ref_depth={config.ref_depth} must be one of depths={config.depths}")
    X, Y = whitened_digits()
    W = torch.linalg.lstsq(X, Y).solution  # the normal-equation optimum: the floor of every depth
    l_star, l_zero = _loss(lambda x: x @ W, X, Y).item(), 0.5 * Y.pow(2).sum(1).mean().item()
    target = l_star + config.gap * (l_zero - l_star)
    cap = config.max_steps + config.eval_every  # "not reached" counts as this (a lower bound)
    best: dict[str, dict[int, dict]] = {k: {} for k in INITS}
    with ctx.progress(len(INITS) * len(config.depths) * len(config.lr0_grid), "init × depth × lr") as advance:
        for init in INITS:
            for depth in config.depths:
                for lr0 in config.lr0_grid:
                    r = _train(depth, init, lr0, X, Y, target, config, ctx)
                    r["lr0"], r["cost"] = lr0, r["steps"] or cap
                    if depth not in best[init] or r["cost"] < best[init][depth]["cost"]:
                        best[init][depth] = r
                    advance()

    deep, ref = max(config.depths), config.ref_depth
    steps = {k: {d: best[k][d]["cost"] for d in config.depths} for k in INITS}
    reached = {k: {d: best[k][d]["steps"] is not None for d in config.depths} for k in INITS}
    ratio = {k: steps[k][deep] / steps[k][ref] for k in INITS}
    spread = {k: {d: float(best[k][d]["svals"].max() / best[k][d]["svals"].min()) for d in config.depths}
              for k in INITS}
    checks = [
        check(f"orthogonal: steps(depth {deep}) / steps(depth {ref}) ≤ {config.max_ratio:g} (both reach the target)",
              reached["orthogonal"][deep] and reached["orthogonal"][ref] and ratio["orthogonal"] <= config.max_ratio,
              ratio=ratio["orthogonal"], steps_deep=steps["orthogonal"][deep], steps_ref=steps["orthogonal"][ref]),
        check(f"scaled Gaussian: steps(depth {deep}) / steps(depth {ref}) > {config.max_ratio:g} (grows with depth)",
              reached["gaussian"][ref] and ratio["gaussian"] > config.max_ratio,
              ratio=ratio["gaussian"], steps_deep=steps["gaussian"][deep], steps_ref=steps["gaussian"][ref],
              deep_reached=reached["gaussian"][deep]),
    ]
    figures = [_figure(config, ctx, best, steps, spread, cap, target)]
    return Result(
        measurements={"steps": steps, "reached": reached, "best_lr0": {k: {d: best[k][d]["lr0"] for d in config.depths}
                                                                      for k in INITS},
                      "ratio_deep_over_ref": ratio, "product_sval_spread_at_init": spread,
                      "loss_target": target, "loss_least_squares": l_star, "loss_zero": l_zero},
        checks=checks, figures=figures,
        notes=f"lr = lr0/depth with lr0 ∈ {config.lr0_grid} (best kept per depth and init, as the paper tunes "
              f"the rate per depth); bias-free layers; PCA-whitened inputs; a run that never reaches the target "
              f"counts as {cap} steps (a lower bound). torch.nn.init orthogonal_/normal_.",
    )


def _figure(config, ctx, best, steps, spread, cap, target) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    deep = max(config.depths)
    fig, ax = plt.subplots(1, 4, figsize=(20, 4.2), layout="constrained")
    for init, colour in zip(INITS, ("C0", "C3")):
        ds = list(config.depths)
        ax[0].plot(ds, [steps[init][d] for d in ds], "o-", color=colour, label=init)
        xs, ys = zip(*best[init][deep]["curve"])
        ax[1].plot(xs, ys, color=colour, label=f"{init}, lr0={best[init][deep]['lr0']:g}")
        ax[2].plot(ds, [spread[init][d] for d in ds], "o-", color=colour, label=init)
        g = ctx.load(best[init][deep]["name"]).series("grad_norm").iloc[0]
        ax[3].plot(range(len(g)), g.to_numpy(), "o-", ms=3, color=colour, label=init)
    ax[0].axhline(cap, color="grey", ls=":", label="not reached")
    ax[0].set(xscale="log", yscale="log", xlabel="depth (weight matrices)", ylabel="steps to target",
              title="learning time vs depth (best lr0/depth)")
    ax[1].axhline(target, color="grey", ls=":", label="target")
    ax[1].set(yscale="log", xlabel="step", ylabel="training loss", title=f"depth {deep}")
    ax[2].set(xscale="log", yscale="log", xlabel="depth", ylabel="σ_max / σ_min of W_D⋯W_1",
              title="spread of the product's singular values at init")
    ax[3].set(yscale="log", xlabel="layer (input → output)", ylabel="‖∂L/∂W‖ at step 0 (watcher)",
              title=f"per-layer gradient, depth {deep}")
    for a in (ax[0], ax[2]):
        a.set_xscale("log", base=2)
        a.set_xticks(list(config.depths), [str(d) for d in config.depths])
        a.minorticks_off()
    for a in ax:
        a.legend()
    return ctx.savefig(fig, "deep_linear")
