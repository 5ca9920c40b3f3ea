"""e13 — Optimisers: adaptive steps on a deep net; conditioning and the classic methods.

1. A deep sigmoid MLP on digits (vanishing gradients), identical init and batches, trained by
   SGD, momentum, Nesterov, Adagrad, RMSProp and Adam, each over a learning-rate grid; steps to
   a training-accuracy target at each method's best rate. Momentum grids are SGD's ÷ 10 (the
   same effective rate lr/(1 − β)).
2. ½xᵀAx − bᵀx with eigenvalues log-spaced in [1, κ]: iterations to a relative gradient of
   1e-6 for steepest descent (exact step; theory ∝ κ), Polyak's heavy ball (∝ √κ), linear CG
   (≤ n in exact arithmetic) and Newton (1); CG cross-checked against scipy.sparse.linalg.cg.
   The 2-D Rosenbrock function from (−1.2, 1): steepest descent, Polak–Ribière CG and Newton,
   cross-checked against scipy.optimize.minimize (CG, trust-exact).
3. Multivariate linear regression (sklearn's diabetes data, 10 features) by gradient descent vs
   the normal equation, with MSE/RMSE/MAE/R² on a held-out split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "optimisers"
CLAIM = ("Adaptive steps (Adagrad, RMSProp, Adam) train a deep sigmoid net faster than SGD; on a quadratic "
         "steepest descent needs ∝ κ iterations, heavy-ball momentum ∝ √κ, CG few and Newton one.")
SOURCE = ("Duchi et al. 2011; Tieleman & Hinton 2012; Kingma & Ba 2015; Polyak 1964; "
          "Nocedal & Wright 2006, ch. 3 and 5")
OPTIMISERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


@dataclass(frozen=True)
class Config:
    depth: int = 4                                       # sigmoid hidden layers of the deep net
    width: int = 64                                      # their width
    sgd_lrs: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)   # SGD grid; momentum/Nesterov use it ÷ 10
    adagrad_lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)   # Adagrad grid
    adam_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)    # RMSProp and Adam grid
    max_steps: int = 2000                                # step budget per run
    batch: int = 32                                      # mini-batch size
    target_acc: float = 0.95                             # training accuracy that counts as trained
    eval_every: int = 25                                 # steps between accuracy evaluations
    kappas: tuple[float, ...] = (10.0, 100.0, 1000.0, 10000.0)  # condition numbers of the quadratics
    n: int = 20                                          # dimension of the quadratics
    tol: float = 1e-6                                    # relative gradient tolerance (quadratics), absolute (Rosenbrock)
    every: int = 50                                      # watcher: steps between slow statistics


FULL = {"depth": 6, "max_steps": 10000, "kappas": (10.0, 100.0, 1000.0, 10000.0, 100000.0), "n": 100}


def _grid(config: Config, name: str) -> tuple[float, ...]:
    if name == "sgd":
        return config.sgd_lrs
    if name in ("momentum", "nesterov"):
        return tuple(lr / 10 for lr in config.sgd_lrs)
    return config.adagrad_lrs if name == "adagrad" else config.adam_lrs


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """One of :data:`OPTIMISERS` with the given learning rate (momentum 0.9, torch defaults otherwise)."""
    if name in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=0.0 if name == "sgd" else 0.9, nesterov=name == "nesterov")
    return {"adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[name](params, lr=lr)


def _net(config: Config) -> nn.Sequential:
    layers, n = [], 64
    for _ in range(config.depth):
        layers += [nn.Linear(n, config.width), nn.Sigmoid()]
        n = config.width
    return nn.Sequential(*layers, nn.Linear(n, 10))


def _train(name: str, lr: float, init: dict, data, config: Config, ctx: Context) -> dict:
    model = _net(config)
    model.load_state_dict(init)
    opt = make_optimizer(name, model.parameters(), lr)
    draw = batches(len(data.X_train), config.batch, ctx.generator(1))
    run_name, hit, curve = f"{name}-lr{lr:g}", None, []
    with ctx.watch(model, opt, run_name, every=config.every):
        for step in range(1, config.max_steps + 1):
            idx = next(draw)
            loss = F.cross_entropy(model(data.X_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % config.eval_every == 0:
                with torch.no_grad():
                    acc = (model(data.X_train).argmax(1) == data.y_train).float().mean().item()
                curve.append((step, acc))
                if acc >= config.target_acc or not math.isfinite(loss.item()):
                    hit = step if acc >= config.target_acc else None
                    break
    with torch.no_grad():
        pred = model(data.X_test).argmax(1)
    return {"steps": hit, "curve": curve, "pred": pred, "name": run_name, "lr": lr}


def deep_net_part(config: Config, ctx: Context) -> dict:
    """Best steps-to-target per optimiser over its grid, with classification reports."""
    from gradwatch.lab.metrics import classification_report

    data = digits(standardize=True)
    init = {k: v.clone() for k, v in _net(config).state_dict().items()}
    cap = config.max_steps + config.eval_every
    best: dict[str, dict] = {}
    total = sum(len(_grid(config, o)) for o in OPTIMISERS)
    with ctx.progress(total, "deep net: optimiser × lr") as advance:
        for name in OPTIMISERS:
            for lr in _grid(config, name):
                r = _train(name, lr, init, data, config, ctx)
                r["cost"] = r["steps"] or cap
                if name not in best or r["cost"] < best[name]["cost"]:
                    best[name] = r
                advance()
    tables = {f"{k} lr={r['lr']:g}": classification_report(data.y_test, r["pred"], labels=range(10))
              for k, r in best.items()}
    return {"best": best, "cap": cap, "tables": tables}


def _slope(xs, ys) -> float:
    lx, ly = torch.tensor([math.log(x) for x in xs]), torch.tensor([math.log(max(y, 1)) for y in ys])
    return float(((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum())


def quadratic_part(config: Config) -> dict:
    """Iterations to tolerance per κ for SD, heavy ball, CG, Newton and scipy's CG."""
    import numpy as np
    from scipy.sparse.linalg import cg as scipy_cg

    from gradwatch.lab import classic_optim as co

    iters: dict[str, dict[float, int]] = {k: {} for k in ("steepest", "heavy_ball", "cg", "scipy_cg", "newton")}
    worst_error = 0.0
    for kappa in config.kappas:
        A, b = co.ill_conditioned_quadratic(config.n, kappa)
        x0, x_star = np.zeros(config.n), np.linalg.solve(A, b)
        for key, solver in (("steepest", co.steepest_descent_quadratic), ("heavy_ball", co.heavy_ball_quadratic),
                            ("cg", co.conjugate_gradient)):
            k, x = solver(A, b, x0, config.tol)
            iters[key][kappa] = k
            worst_error = max(worst_error, float(np.linalg.norm(A @ x - b) / np.linalg.norm(b)))
        count = [0]
        scipy_cg(A, b, x0=x0, rtol=config.tol, atol=0.0, maxiter=100 * config.n,
                 callback=lambda _: count.__setitem__(0, count[0] + 1))
        iters["scipy_cg"][kappa] = count[0]
        x1 = x0 - np.linalg.solve(A, A @ x0 - b)  # one Newton step
        iters["newton"][kappa] = 1 if np.linalg.norm(A @ x1 - b) <= config.tol * np.linalg.norm(b) else 2
        worst_error = max(worst_error, float(np.linalg.norm(x1 - x_star) / np.linalg.norm(x_star)))
    return {"iters": iters, "worst_relative_residual": worst_error,
            "slopes": {k: _slope(config.kappas, [v[kp] for kp in config.kappas]) for k, v in iters.items()}}


def rosenbrock_part(config: Config) -> dict:
    """Ours (SD, PR-CG, Newton) vs scipy (CG, trust-exact) on Rosenbrock from (−1.2, 1)."""
    import numpy as np
    from scipy import optimize as so

    from gradwatch.lab import classic_optim as co

    x0 = np.array([-1.2, 1.0])
    ours = {name: fn(co.rosenbrock, x0.copy(), config.tol) for name, fn in
            (("steepest", co.steepest_descent), ("cg", co.nonlinear_cg), ("newton", co.newton))}
    sc = {"cg": so.minimize(so.rosen, x0, jac=so.rosen_der, method="CG", options={"gtol": config.tol}),
          "newton": so.minimize(so.rosen, x0, jac=so.rosen_der, hess=so.rosen_hess, method="trust-exact",
                                options={"gtol": config.tol})}
    return {"iters": {k: v[0] for k, v in ours.items()}, "scipy_iters": {k: int(v.nit) for k, v in sc.items()},
            "distance_to_optimum": {**{k: float(np.linalg.norm(v[1] - 1)) for k, v in ours.items()},
                                    **{f"scipy_{k}": float(np.linalg.norm(v.x - 1)) for k, v in sc.items()}}}


def regression_part(config: Config) -> dict:
    """Gradient descent vs the normal equation on diabetes; test metrics of both and of sklearn."""
    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    from gradwatch.lab.metrics import regression_report

    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    design = lambda Z: np.hstack([np.ones((len(Z), 1)), (Z - mu) / sd])  # noqa: E731
    A, Ate = design(Xtr), design(Xte)
    theta_ne = np.linalg.solve(A.T @ A, A.T @ ytr)  # the normal equation
    H = A.T @ A / len(A)
    eig = np.linalg.eigvalsh(H)
    theta, lr, steps = np.zeros(A.shape[1]), 1 / eig.max(), 0
    grad = lambda t: A.T @ (A @ t - ytr) / len(A)  # noqa: E731
    g0 = np.linalg.norm(grad(theta))
    while np.linalg.norm(grad(theta)) > 1e-10 * g0 and steps < 10 ** 6:  # stops on its own gradient, not on θ_NE
        theta -= lr * grad(theta)
        steps += 1
    sk = LinearRegression().fit((Xtr - mu) / sd, ytr)
    return {"gd_steps": steps, "condition_number": float(eig.max() / eig.min()),
            "theta_rel_diff": float(np.linalg.norm(theta - theta_ne) / np.linalg.norm(theta_ne)),
            "reports": {"normal equation": regression_report(yte, Ate @ theta_ne),
                        "gradient descent": regression_report(yte, Ate @ theta),
                        "sklearn LinearRegression": regression_report(yte, sk.predict((Xte - mu) / sd))}}


def run(config: Config, ctx: Context) -> Result:
    """The four parts, then the checks."""
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise RuntimeError("e13 cross-checks against scipy: pip install scipy") from None
    net = deep_net_part(config, ctx)
    quad, rosen, reg = quadratic_part(config), rosenbrock_part(config), regression_part(config)
    best = {k: r["cost"] for k, r in net["best"].items()}
    adaptive = ("adagrad", "rmsprop", "adam")
    slopes, qi = quad["slopes"], quad["iters"]
    ri, rs = rosen["iters"], rosen["scipy_iters"]
    reports = reg["reports"]
    same_metrics = max(abs(reports["gradient descent"][m] - reports["sklearn LinearRegression"][m])
                       / max(abs(reports["sklearn LinearRegression"][m]), 1e-12) for m in ("mse", "rmse", "mae", "r2"))
    checks = [
        check("deep sigmoid net, best lr each: Adagrad, RMSProp and Adam reach the target in fewer steps than SGD",
              best["sgd"] > max(best[k] for k in adaptive) and all(net["best"][k]["steps"] for k in adaptive),
              **{k: best[k] for k in ("sgd",) + adaptive}),
        check("quadratics: iterations ∝ κ^s with s ∈ [0.8, 1.2] for steepest descent and [0.35, 0.65] for heavy ball; "
              "CG ≤ heavy ball at every κ; Newton 1 iteration",
              0.8 <= slopes["steepest"] <= 1.2 and 0.35 <= slopes["heavy_ball"] <= 0.65
              and all(qi["cg"][k] <= qi["heavy_ball"][k] for k in config.kappas)
              and all(v == 1 for v in qi["newton"].values()),
              slope_sd=slopes["steepest"], slope_hb=slopes["heavy_ball"], slope_cg=slopes["cg"],
              newton_max=max(qi["newton"].values())),
        check("cross-check: our CG's iterations equal scipy.sparse.linalg.cg's (±1) at every κ",
              all(abs(qi["cg"][k] - qi["scipy_cg"][k]) <= 1 for k in config.kappas),
              ours=list(qi["cg"].values()), scipy=list(qi["scipy_cg"].values())),
        check("Rosenbrock: all reach (1, 1) within 1e-4; Newton < CG < steepest descent; ours within 2× of scipy's "
              "CG and trust-exact Newton",
              max(rosen["distance_to_optimum"].values()) < 1e-4 and ri["newton"] < ri["cg"] < ri["steepest"]
              and all(0.5 <= ri[k] / rs[k] <= 2 for k in ("cg", "newton")),
              sd=ri["steepest"], cg=ri["cg"], newton=ri["newton"], scipy_cg=rs["cg"], scipy_newton=rs["newton"]),
        check("linear regression: gradient descent reaches the normal-equation θ (relative 1e-6) and its test "
              "MSE/RMSE/MAE/R² match sklearn's LinearRegression (relative 1e-6)",
              reg["theta_rel_diff"] <= 1e-6 and same_metrics <= 1e-6,
              theta_rel_diff=reg["theta_rel_diff"], metric_rel_diff=same_metrics, gd_steps=reg["gd_steps"]),
    ]
    tables = {**net["tables"], **{f"regression: {k}": v for k, v in reports.items()}}
    figures = [_figure(config, ctx, net, quad, rosen)]
    return Result(
        measurements={"deep_net_best_steps": best, "deep_net_best_lr": {k: r["lr"] for k, r in net["best"].items()},
                      "quadratic_iterations": {k: {f"{kp:g}": v for kp, v in d.items()} for k, d in qi.items()},
                      "quadratic_slopes": slopes, "rosenbrock": rosen,
                      "regression": {k: v for k, v in reg.items() if k != "reports"}},
        checks=checks, figures=figures, tables=tables,
        notes=f"Runs that never reach the target count as {net['cap']} steps (a lower bound). Momentum and "
              "Nesterov use β = 0.9 and SGD's grid ÷ 10 (equal effective rate). Newton on the quadratic is one "
              "exact solve; SD and heavy ball use the exact step and optimal constants.",
    )


def _figure(config, ctx, net, quad, rosen) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(17, 4.4), layout="constrained")
    for i, (name, r) in enumerate(net["best"].items()):
        if r["curve"]:
            xs, ys = zip(*r["curve"])
            ax[0].plot(xs, ys, color=f"C{i}", label=f"{name} (lr {r['lr']:g})")
    ax[0].axhline(config.target_acc, color="grey", ls=":")
    ax[0].set(xlabel="step", ylabel="training accuracy", title=f"{config.depth}-layer sigmoid net, best lr each")
    ax[0].legend(fontsize=8)
    for key, style in (("steepest", "o-"), ("heavy_ball", "s-"), ("cg", "^-"), ("scipy_cg", "x--"), ("newton", "d-")):
        ks = list(config.kappas)
        ax[1].plot(ks, [quad["iters"][key][k] for k in ks], style,
                   label=f"{key} (slope {quad['slopes'][key]:.2f})")
    ax[1].set(xscale="log", yscale="log", xlabel="condition number κ", ylabel=f"iterations to rel. grad {config.tol:g}",
              title=f"quadratics, n = {config.n}")
    ax[1].legend(fontsize=8)
    labels = ["SD", "CG", "Newton", "scipy CG", "scipy trust-exact"]
    values = [rosen["iters"]["steepest"], rosen["iters"]["cg"], rosen["iters"]["newton"],
              rosen["scipy_iters"]["cg"], rosen["scipy_iters"]["newton"]]
    ax[2].bar(labels, values, color=["C0", "C2", "C4", "C2", "C4"])
    ax[2].set(yscale="log", ylabel=f"iterations to ‖∇f‖ ≤ {config.tol:g}", title="Rosenbrock from (−1.2, 1)")
    return ctx.savefig(fig, "optimisers")
