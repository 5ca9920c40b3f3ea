"""e07 — Loss choice: MSE behind a saturated sigmoid learns slowly; cross-entropy does not.

Behind a sigmoid output a = σ(z), the squared error ½(a − y)² has ∂L/∂z = (a − y)·a(1 − a): the
factor a(1 − a) vanishes when the unit saturates (a = 0.98, y = 0 → 0.0192), while the binary
cross-entropy gives ∂L/∂z = a − y (0.98). The experiment (1) computes both by autograd at
a = 0.98, y = 0; (2) trains the same sigmoid MLP on digits from the *same* initial weights, with
every output unit starting saturated at 0.98 (output bias = logit 0.98), under MSE + sigmoid,
BCE + sigmoid and softmax + NLL, over a grid of learning rates, counting steps until the
training accuracy reaches a target; (3) reads ‖δ‖ = ‖∂L/∂z‖ at the output layer at step 0 off
the watcher and compares the MSE/BCE ratio with the predicted a(1 − a).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "loss-choice"
CLAIM = ("Behind a saturated sigmoid output, MSE's gradient carries σ′ (0.019 at a = 0.98, y = 0) while "
         "cross-entropy's is a − y (0.98), so from the same init MSE needs many more steps.")
SOURCE = "Glorot & Bengio 2010, Fig. 5; Nielsen, Neural Networks and Deep Learning, ch. 3"
LOSSES = ("mse+sigmoid", "bce+sigmoid", "softmax+nll")


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = (64,)                  # sigmoid hidden layer widths
    saturation: float = 0.98                        # every output starts at σ(z) = this (bias = logit)
    lr: float = 0.5                                 # the shared learning rate of the head-to-head check
    lr_grid: tuple[float, ...] = (0.1, 0.5, 2.0)    # learning rates swept for each loss (must include lr)
    max_steps: int = 3000                           # step budget per run
    batch: int = 32                                 # mini-batch size (plain SGD)
    target_acc: float = 0.9                         # training accuracy that counts as "learned"
    eval_every: int = 25                            # steps between accuracy evaluations
    min_ratio: float = 2.0                          # MSE must need ≥ this × the steps of each CE loss at lr
    every: int = 25                                 # watcher: steps between slow statistics


FULL = {"hidden": (100, 100), "lr_grid": (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0), "max_steps": 20000}


def saturated_gradients(a: float = 0.98, y: float = 0.0) -> dict[str, float]:
    """|∂L/∂z| at a = σ(z) for ½(a − y)² and for binary cross-entropy, computed by autograd.

    Example:
        >>> g = saturated_gradients(0.98, 0.0)
        >>> round(g["mse"], 4), round(g["bce"], 4)
        (0.0192, 0.98)
    """
    out = {}
    for kind in ("mse", "bce"):
        z = torch.tensor(math.log(a / (1 - a)), dtype=torch.float64, requires_grad=True)
        target = torch.tensor(y, dtype=torch.float64)
        loss = 0.5 * (torch.sigmoid(z) - target) ** 2 if kind == "mse" else \
            F.binary_cross_entropy_with_logits(z, target)
        loss.backward()
        out[kind] = abs(z.grad.item())
    return out


def _model(config: Config) -> nn.Sequential:
    layers, n = [], 64
    for h in config.hidden:
        layers += [nn.Linear(n, h), nn.Sigmoid()]
        n = h
    layers.append(nn.Linear(n, 10))
    nn.init.constant_(layers[-1].bias, math.log(config.saturation / (1 - config.saturation)))
    return nn.Sequential(*layers)


def _loss(kind: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "softmax+nll":
        return F.nll_loss(F.log_softmax(z, 1), y)
    onehot = F.one_hot(y, z.shape[1]).to(z.dtype)
    if kind == "mse+sigmoid":
        return 0.5 * (torch.sigmoid(z) - onehot).pow(2).sum(1).mean()
    return F.binary_cross_entropy_with_logits(z, onehot, reduction="none").sum(1).mean()


def _train(kind: str, lr: float, init: dict, data, config: Config, ctx: Context) -> dict:
    model = _model(config)
    model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    name = f"{kind}-lr{lr:g}"
    draw = batches(len(data.X_train), config.batch, ctx.generator(1))
    hit, curve = None, []
    with ctx.watch(model, opt, name, every=config.every):
        for step in range(1, config.max_steps + 1):
            idx = next(draw)
            loss = _loss(kind, model(data.X_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % config.eval_every == 0:
                with torch.no_grad():
                    acc = (model(data.X_train).argmax(1) == data.y_train).float().mean().item()
                curve.append((step, acc))
                if acc >= config.target_acc:
                    hit = step
                    break
    with torch.no_grad():
        pred = model(data.X_test).argmax(1)
    return {"steps": hit, "curve": curve, "pred": pred, "name": name}


def _out_delta(ctx: Context, name: str, module: str) -> float:
    """‖∂L/∂z‖ at the output layer at step 0, as the watcher recorded it."""
    return float(ctx.load(name).series("delta")[module].iloc[0])


def run(config: Config, ctx: Context) -> Result:
    """Autograd gradients at saturation, then steps-to-target per loss and learning rate."""
    from gradwatch.lab.metrics import classification_report

    if config.lr not in config.lr_grid:
        raise ValueError(f"lr={config.lr} must be one of lr_grid={config.lr_grid}; add it with --set lr_grid=...")
    grads = saturated_gradients(config.saturation, 0.0)
    data = digits()
    init = {k: v.clone() for k, v in _model(config).state_dict().items()}  # one init, shared by all runs
    runs: dict[str, dict[float, dict]] = {k: {} for k in LOSSES}
    with ctx.progress(len(LOSSES) * len(config.lr_grid), "loss × lr") as advance:
        for lr in config.lr_grid:
            for kind in LOSSES:
                runs[kind][lr] = _train(kind, lr, init, data, config, ctx)
                advance()

    out_module = str(len(_model(config)) - 1)
    delta = {k: _out_delta(ctx, runs[k][config.lr]["name"], out_module) for k in LOSSES[:2]}
    delta_ratio = delta["mse+sigmoid"] / delta["bce+sigmoid"]
    predicted_ratio = config.saturation * (1 - config.saturation)
    cap = config.max_steps + config.eval_every  # "not reached" counts as one evaluation past the budget
    steps = {k: {lr: (r["steps"] or cap) for lr, r in v.items()} for k, v in runs.items()}
    reached = {k: {lr: r["steps"] is not None for lr, r in v.items()} for k, v in runs.items()}
    at = {k: steps[k][config.lr] for k in LOSSES}
    ratios = {k: at["mse+sigmoid"] / at[k] for k in LOSSES[1:]}
    best = {k: min(steps[k].values()) for k in LOSSES}
    both_ce_reached = all(reached[k][config.lr] for k in LOSSES[1:])

    checks = [
        check(f"autograd at a={config.saturation}, y=0: |∂L/∂z| MSE = a(1−a)·a ≈ 0.019 and BCE = a ≈ 0.98",
              abs(grads["mse"] - config.saturation ** 2 * (1 - config.saturation)) < 1e-6
              and abs(grads["bce"] - config.saturation) < 1e-6, mse=grads["mse"], bce=grads["bce"]),
        check("watcher's output ‖δ‖ at step 0, MSE/BCE, within 25% of a(1−a)",
              abs(delta_ratio / predicted_ratio - 1) < 0.25, ratio=delta_ratio, predicted=predicted_ratio),
        check(f"same init, lr={config.lr:g}: MSE needs ≥ {config.min_ratio:g}× the steps of BCE and of softmax+NLL",
              both_ce_reached and min(ratios.values()) >= config.min_ratio,
              steps_mse=at["mse+sigmoid"], steps_bce=at["bce+sigmoid"], steps_softmax=at["softmax+nll"]),
        check("each loss at its best lr of the grid: MSE still needs more steps than either CE",
              best["mse+sigmoid"] > max(best["bce+sigmoid"], best["softmax+nll"]), **{f"best_{k}": v for k, v in best.items()}),
    ]
    tables = {f"{k} lr={config.lr:g}": classification_report(data.y_test, runs[k][config.lr]["pred"], labels=range(10))
              for k in LOSSES}
    figures = [_figure(config, ctx, runs, steps, cap)]
    return Result(
        measurements={"autograd_grad": grads, "out_delta_step0": delta, "out_delta_ratio": delta_ratio,
                      "predicted_ratio": predicted_ratio, "steps_at_lr": at, "ratio_mse_over": ratios,
                      "best_steps": best, "steps_grid": {k: {f"{lr:g}": s for lr, s in v.items()} for k, v in steps.items()},
                      "reached_grid": {k: {f"{lr:g}": s for lr, s in v.items()} for k, v in reached.items()}},
        checks=checks, figures=figures, tables=tables,
        notes=f"MSE = ½‖σ(z) − onehot‖² summed over classes; BCE summed over classes; a run that never reaches "
              f"the target counts as {cap} steps (a lower bound). Plain SGD, batch {config.batch}.",
    )


def _figure(config: Config, ctx: Context, runs, steps, cap) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(1, 4, figsize=(20, 4.2), layout="constrained")
    a = np.linspace(0.01, 0.99, 200)
    ax[0].plot(a, a * a * (1 - a), label="MSE: (a−y)·a(1−a)")
    ax[0].plot(a, a, label="cross-entropy: a−y")
    s = config.saturation
    ax[0].scatter([s, s], [s * s * (1 - s), s], color="k", zorder=3)
    ax[0].annotate(f"{s * s * (1 - s):.3f}", (s, s * s * (1 - s)), textcoords="offset points", xytext=(-40, 8))
    ax[0].annotate(f"{s:.2f}", (s, s), textcoords="offset points", xytext=(-35, -4))
    ax[0].set(xlabel="output a = σ(z), target y = 0", ylabel="|∂L/∂z|", title="gradient at the output unit")
    ax[0].legend()
    for kind, colour in zip(LOSSES, ("C0", "C1", "C2")):
        xs, ys = zip(*runs[kind][config.lr]["curve"])
        ax[1].plot(xs, ys, color=colour, label=kind)
        lrs = sorted(steps[kind])
        ax[2].plot(lrs, [steps[kind][lr] for lr in lrs], "o-", color=colour, label=kind)
    ax[1].axhline(config.target_acc, color="grey", ls=":")
    ax[1].set(xlabel="step", ylabel="training accuracy", title=f"same init, lr = {config.lr:g}")
    ax[1].legend()
    ax[2].axhline(cap, color="grey", ls=":", label="not reached")
    ax[2].set(xscale="log", yscale="log", xlabel="learning rate", ylabel=f"steps to {config.target_acc:.0%} train acc",
              title="steps to target over the lr grid")
    ax[2].legend()
    for kind, colour in zip(LOSSES, ("C0", "C1", "C2")):
        gn = ctx.load(runs[kind][config.lr]["name"]).steps["grad_norm"]
        ax[3].plot(gn.index, gn.to_numpy(), color=colour, lw=0.8, label=kind)
    ax[3].set(yscale="log", xlabel="step", ylabel="global ‖∂L/∂θ‖ (watcher)", title=f"gradient norm, lr = {config.lr:g}")
    ax[3].legend()
    return ctx.savefig(fig, "loss_choice")
