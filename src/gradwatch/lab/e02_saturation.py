"""e02 — Saturation: with standard init the top sigmoid layer is driven to 0; tanh and softsign are not.

Glorot & Bengio (2010, Fig. 2) trained a 4-hidden-layer sigmoid net from the "standard" init
W ~ U[−1/√n, 1/√n], b = 0, with SGD on mini-batches of 10, and followed the mean and standard
deviation of each hidden layer's activations on 300 fixed test inputs: the top hidden layer is
pushed to 0 early (the softmax first learns from its biases and silences h), while the lower
layers stay around 0.5 or above. Tanh and softsign, symmetric around 0, do not collapse that way.
Here: the same three nets (width 256, the same init and data order) on digits; the activation
statistics on 300 fixed test inputs are taken every `measure_every` steps, and the watcher
records training (δ, activation statistics on the training batches, saturation fractions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import digits

NAME = "saturation"
CLAIM = ("With standard init U[±1/√n], a 4-hidden-layer sigmoid net's top hidden layer is driven to 0 "
         "early in training while the lower layers stay near 0.5 or above; tanh and softsign stay "
         "symmetric around 0.")
SOURCE = "Glorot & Bengio 2010, Fig. 2 (sigmoid), Figs. 3–4 (tanh, softsign), Table 1"
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softsign": nn.Softsign}


@dataclass(frozen=True)
class Config:
    hidden: int = 4                      # hidden layers (G&B Fig. 2: 4)
    width: int = 256                     # hidden width (G&B: 1000)
    epochs: int = 20                     # passes over the digits training set (135 steps each)
    batch: int = 10                      # mini-batch size (G&B: 10)
    lr: float = 0.1                      # SGD learning rate, the same for all three nets
    fixed_inputs: int = 300              # test inputs the activation statistics are taken on (G&B: 300)
    measure_every: int = 27              # steps between activation measurements (5 per epoch)
    every: int = 50                      # watcher: slow statistics every `every` steps
    top_max: float = 0.1                 # criterion: sigmoid top-layer mean falls to ≤ this ("towards 0")
    lower_min: float = 0.4               # criterion: sigmoid lower layers' mean stays ≥ this throughout
    symmetric_max: float = 0.1           # criterion: tanh/softsign |mean| ≤ this (a tenth of the half-range)


FULL = {"width": 1000, "epochs": 150, "every": 200, "measure_every": 135}


def make_net(activation: str, hidden: int, width: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """MLP with G&B's standard init: W ~ U[−1/√n_in, 1/√n_in], b = 0; activations at odd indices.

    Example:
        >>> net = make_net("tanh", 2, 8)
        >>> float(net[0].weight.detach().abs().max()) <= 1 / 8, float(net[0].bias.detach().abs().max())
        (True, 0.0)
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    n = inputs
    for _ in range(hidden):
        layers += [nn.Linear(n, width), ACTIVATIONS[activation]()]
        n = width
    layers.append(nn.Linear(n, classes))
    for m in layers:
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


@torch.no_grad()
def layer_stats(net: nn.Sequential, x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of every activation module's output on inputs ``x``.

    Example:
        >>> m, s = layer_stats(make_net("sigmoid", 2, 8), torch.zeros(3, 64))
        >>> len(m), round(m[0], 2), round(s[0], 2)   # zero input, zero bias: σ(0) = 0.5 everywhere
        (2, 0.5, 0.0)
    """
    means, stds = [], []
    h = x
    for m in net:
        h = m(h)
        if type(m) in ACTIVATIONS.values():
            means.append(h.mean().item())
            stds.append(h.std().item())
    return means, stds


def _train(activation: str, init: dict, config: Config, data, fixed, ctx: Context, advance) -> dict:
    net = make_net(activation, config.hidden, config.width)
    net.load_state_dict(init)     # the same initial weights for every activation
    opt = torch.optim.SGD(net.parameters(), lr=config.lr)
    order = ctx.generator(1)      # the same data order too
    n = len(data.X_train)
    per_epoch = n // config.batch
    steps, means, stds = [0], *[[v] for v in layer_stats(net, fixed)]
    step = 0
    with ctx.watch(net, opt, activation, every=config.every):
        for _ in range(config.epochs):
            perm = torch.randperm(n, generator=order)
            for i in range(per_epoch):
                idx = perm[i * config.batch:(i + 1) * config.batch]
                loss = F.cross_entropy(net(data.X_train[idx]), data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step % config.measure_every == 0:
                    m, s = layer_stats(net, fixed)
                    steps.append(step), means.append(m), stds.append(s)
            advance()
    with torch.no_grad():
        pred = net(data.X_test).argmax(1)
    run = ctx.load(activation)
    acts = [str(2 * i + 1) for i in range(config.hidden)]
    watched = run.series("act_mean")[acts].astype(float)
    sat = run.series("act_sat")[acts].astype(float) if activation != "softsign" else None
    return {"steps": steps, "epochs": [s / per_epoch for s in steps], "means": means, "stds": stds, "pred": pred,
            "watcher_act_mean_final": watched.iloc[-1].to_list(),
            "watcher_act_sat_final": None if sat is None else sat.iloc[-1].to_list()}


def run(config: Config, ctx: Context) -> Result:
    """Train the three nets from the same init and data order; judge the activation trajectories."""
    from gradwatch.lab.metrics import classification_report

    if config.hidden < 2:
        raise ValueError(f"hidden={config.hidden}: needs at least 2 hidden layers (a top and a lower one)")
    data = digits()
    fixed = data.X_test[:config.fixed_inputs]
    init = make_net("sigmoid", config.hidden, config.width).state_dict()
    runs = {}
    with ctx.progress(len(ACTIVATIONS) * config.epochs, "epochs (sigmoid, tanh, softsign)") as advance:
        for act in ACTIVATIONS:
            runs[act] = _train(act, init, config, data, fixed, ctx, advance)

    sig = runs["sigmoid"]
    top = [m[-1] for m in sig["means"]]
    top_min = min(top)
    top_min_epoch = sig["epochs"][top.index(top_min)]
    reached = next((e for e, v in zip(sig["epochs"], top) if v <= config.top_max), None)
    lower_min = min(v for m in sig["means"] for v in m[:-1])
    asym = {a: max(abs(v) for m in runs[a]["means"] for v in m) for a in ("tanh", "softsign")}
    tables = {a: classification_report(data.y_test, r["pred"], labels=range(10)) for a, r in runs.items()}
    acc = {a: t["accuracy"] for a, t in tables.items()}
    for a in runs:
        runs[a]["accuracy"] = acc[a]
    checks = [
        check(f"sigmoid: the top hidden layer's mean activation falls from ≈0.5 to ≤ {config.top_max:g} within "
              f"{config.epochs} epochs", reached is not None, top_start=top[0], top_min=top_min,
              epoch_reached=reached if reached is not None else float("nan")),
        check(f"sigmoid: every lower hidden layer's mean activation stays ≥ {config.lower_min:g} throughout",
              lower_min >= config.lower_min, lower_min=lower_min),
        check(f"tanh and softsign: every layer's |mean activation| ≤ {config.symmetric_max:g} throughout "
              "(symmetric around 0, no collapse)", max(asym.values()) <= config.symmetric_max,
              tanh=asym["tanh"], softsign=asym["softsign"]),
        check("sigmoid's test accuracy is below tanh's and softsign's (G&B Table 1)",
              acc["sigmoid"] < min(acc["tanh"], acc["softsign"]), **acc),
    ]
    figures = [_figure(config, ctx, runs)]
    result = Result(
        measurements={
            "sigmoid_top_mean_start": top[0], "sigmoid_top_mean_min": top_min, "sigmoid_top_min_epoch": top_min_epoch,
            "sigmoid_top_reached_epoch": reached, "sigmoid_lower_min": lower_min,
            "final_mean": {a: r["means"][-1] for a, r in runs.items()},
            "final_std": {a: r["stds"][-1] for a, r in runs.items()},
            "max_abs_mean": asym, "accuracy": acc,
            "watcher_act_mean_final": {a: r["watcher_act_mean_final"] for a, r in runs.items()},
            "watcher_act_sat_final": {a: runs[a]["watcher_act_sat_final"] for a in ("sigmoid", "tanh")},
            "trajectory": {a: {"epoch": r["epochs"], "mean": r["means"], "std": r["stds"]} for a, r in runs.items()},
        },
        checks=checks, figures=figures, tables=tables,
        notes=(f"Digits (8×8, pixels in [0, 1]) instead of Shapeset/MNIST, width {config.width} instead of 1000, "
               f"one lr ({config.lr:g}) for all three nets, same init draw and data order. One epoch here is "
               f"{len(data.X_train) // config.batch} updates (G&B's x-axis unit was 20k updates). Statistics on the first "
               f"{config.fixed_inputs} test inputs; the watcher's act_mean (training batches) is reported for comparison."),
    )
    for c in result.checks:
        c.measured = _finite_or_none(c.measured)
    result.measurements = _finite_or_none(result.measurements)
    return result


def _finite_or_none(v):
    """Non-finite floats → None, recursively (JSON has no NaN/inf; None reads "diverged/overflowed")."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_or_none(x) for x in v]
    return v


def _figure(config: Config, ctx: Context, runs: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), sharex=True)
    for ax, (act, r) in zip(axes, runs.items()):
        ep, mean, std = np.array(r["epochs"]), np.array(r["means"]), np.array(r["stds"])
        for j in range(mean.shape[1]):
            ax.plot(ep, mean[:, j], label=f"layer {j + 1}", color=f"C{j}")
            ax.fill_between(ep, mean[:, j] - std[:, j], mean[:, j] + std[:, j], color=f"C{j}", alpha=0.15)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set(title=f"{act} — test accuracy {r['accuracy']:.2f}", xlabel="epochs",
               ylabel=f"activation mean ± std ({config.fixed_inputs} fixed inputs)")
        ax.legend(fontsize=8)
    axes[0].axhline(config.top_max, color="C3", ls=":", lw=0.8)
    return ctx.savefig(fig, "activations_over_training")
