"""e01 — Sigmoid attenuation: σ′ ≤ 1/4, so each sigmoid layer shrinks the back-propagated signal.

Back-propagation through a sigmoid layer multiplies δ = ∂L/∂z by σ′(z) ≤ 1/4 and by Wᵀ, so with
weights of order 1/√n the signal shrinks by roughly a quarter per layer. Sigmoid MLPs of width 30
with 1, 2, 3, 4 and 20 hidden layers (Nielsen's init: weights N(0, 1/n_in), biases N(0, 1)) are
trained on digits with SGD, batch 10; the watcher records ‖δ‖ at every hidden layer's
pre-activation (the Linear output) every few steps and the bias-gradient norm ‖∂L/∂b‖ — Nielsen's
"speed of learning" — every step. Measured: the consecutive ratios ‖δ_l‖/‖δ_{l+1}‖ over training,
the bound ¼‖W_{l+1}‖₂ they must respect at init, and how much slower the first hidden layer
learns than the last.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "sigmoid-attenuation"
CLAIM = ("Since σ′ ≤ 1/4, back-propagation through each sigmoid layer shrinks ‖δ‖ to about a quarter "
         "or less, so in a 4-hidden-layer net the first hidden layer learns far (≥ 10×) slower than the last.")
SOURCE = "Nielsen, Neural Networks and Deep Learning, ch. 5 (speeds of learning per layer)"


@dataclass(frozen=True)
class Config:
    hidden_layers: tuple[int, ...] = (1, 2, 3, 4, 20)  # numbers of hidden layers, one net each (must include 4)
    width: int = 30                                     # hidden width (Nielsen: 30)
    steps: int = 600                                    # SGD steps per net (batch 10: ~4.5 epochs of digits)
    batch: int = 10                                     # mini-batch size (Nielsen: 10)
    lr: float = 0.1                                     # SGD learning rate (Nielsen: 0.1)
    every: int = 10                                     # watcher: δ every `every` steps
    max_ratio: float = 0.3                              # criterion: median consecutive δ ratio ≤ this
    min_slowdown: float = 10.0                          # criterion: last/first hidden speed ≥ this (4 layers)


FULL = {"steps": 6000, "every": 20}


def make_net(hidden: int, width: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """Sigmoid MLP ``Linear, Sigmoid, ..., Linear`` with Nielsen's init (W ~ N(0, 1/n_in), b ~ N(0, 1)).

    Hidden layer ``l`` (1-based) is the Linear named ``str(2 * (l - 1))``; the output layer is
    ``str(2 * hidden)``.

    Example:
        >>> net = make_net(2, 8)
        >>> [type(m).__name__ for m in net]
        ['Linear', 'Sigmoid', 'Linear', 'Sigmoid', 'Linear']
    """
    if hidden < 1:
        raise ValueError(f"hidden must be at least 1 hidden layer, got {hidden}")
    layers: list[nn.Module] = []
    n = inputs
    for _ in range(hidden):
        layers += [nn.Linear(n, width), nn.Sigmoid()]
        n = width
    layers.append(nn.Linear(n, classes))
    with torch.no_grad():
        for m in layers:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 1.0 / math.sqrt(m.in_features))
                m.bias.normal_(0.0, 1.0)
    return nn.Sequential(*layers)


def _train(hidden: int, config: Config, data, ctx: Context) -> dict:
    net = make_net(hidden, config.width)
    names = [str(2 * i) for i in range(hidden)]  # hidden Linear outputs, first to last
    bound = [0.25 * torch.linalg.matrix_norm(net[2 * (i + 1)].weight, ord=2).item() for i in range(hidden)]
    opt = torch.optim.SGD(net.parameters(), lr=config.lr)
    draw = batches(len(data.X_train), config.batch, ctx.generator(1))
    name = f"hidden-{hidden}"
    with ctx.watch(net, opt, name, every=config.every, precision="float32"):
        for _ in range(config.steps):
            idx = next(draw)
            loss = F.cross_entropy(net(data.X_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net(data.X_test).argmax(1)
    run = ctx.load(name)
    delta = run.series("delta")[names].astype(float)
    ratios = (delta.iloc[:, :-1].to_numpy() / delta.iloc[:, 1:].to_numpy())  # steps × (hidden − 1)
    speed = run.series("grad_norm")[[f"{n}.bias" for n in names]].astype(float)
    wgrad = run.series("grad_norm")[[f"{n}.weight" for n in names]].astype(float)
    return {
        "name": name, "pred": pred, "steps": delta.index.to_list(),
        "delta_init": delta.iloc[0].to_list(),
        "delta_geomean": [_geomean(delta[c]) for c in names],
        "ratios_median": [statistics.median(ratios[:, j]) for j in range(hidden - 1)],
        "ratios_init": ratios[0].tolist(),
        "bound_init": bound[:-1],  # ¼‖W_{l+1}‖₂ for l = 1..hidden−1
        "speed": speed, "speed_median": speed.median().to_list(), "wgrad_median": wgrad.median().to_list(),
    }


def _geomean(values) -> float:
    """Geometric mean of the positive finite values (0.0 when there are none: δ underflowed)."""
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    return math.exp(statistics.fmean(logs)) if logs else 0.0


def run(config: Config, ctx: Context) -> Result:
    """Train each sigmoid net, read δ and bias-gradient norms off the watcher, judge the claim."""
    from gradwatch.lab.metrics import classification_report

    if 4 not in config.hidden_layers:
        raise ValueError(f"hidden_layers={config.hidden_layers} must include 4 (the slowdown check); "
                         "add it with --set hidden_layers=1,2,3,4,20")
    data = digits()
    nets: dict[int, dict] = {}
    with ctx.progress(len(config.hidden_layers), "sigmoid nets") as advance:
        for hidden in config.hidden_layers:
            nets[hidden] = _train(hidden, config, data, ctx)
            advance()

    pooled = [r for h in config.hidden_layers for r in nets[h]["ratios_median"]]
    median_ratio = statistics.median(pooled) if pooled else float("nan")
    within = [(r, b) for h in config.hidden_layers for r, b in zip(nets[h]["ratios_init"], nets[h]["bound_init"])]
    worst_margin = max((r / b for r, b in within), default=float("nan"))
    four = nets[4]
    slowdown = four["speed_median"][-1] / four["speed_median"][0]
    slowdown_w = four["wgrad_median"][-1] / four["wgrad_median"][0]
    deepest = max(config.hidden_layers)
    total = nets[deepest]["delta_geomean"][0] / nets[deepest]["delta_geomean"][-1]
    tables = {nets[h]["name"]: classification_report(data.y_test, nets[h]["pred"], labels=range(10))
              for h in config.hidden_layers}
    checks = [
        check(f"median consecutive ratio ‖δ_l‖/‖δ_l+1‖ over training (all nets, {len(pooled)} layer pairs) "
              f"≤ {config.max_ratio:g}", median_ratio <= config.max_ratio, median_ratio=median_ratio,
              min_ratio=min(pooled, default=float("nan")), max_ratio=max(pooled, default=float("nan"))),
        check("at init every consecutive ratio ≤ ¼‖W_l+1‖₂ (the σ′ ≤ 1/4 bound)", worst_margin <= 1.0,
              worst_ratio_over_bound=worst_margin, pairs=len(within)),
        check(f"4 hidden layers: the last hidden layer learns ≥ {config.min_slowdown:g}× faster than the first "
              "(median ‖∂L/∂b‖, Nielsen's speed)", slowdown >= config.min_slowdown,
              slowdown=slowdown, speed_first=four["speed_median"][0], speed_last=four["speed_median"][-1]),
    ]
    if deepest > 4:
        expect = config.max_ratio ** (deepest - 1)
        checks.append(check(f"{deepest} hidden layers: the attenuation compounds, ‖δ_1‖/‖δ_{deepest}‖ "
                            f"≤ {config.max_ratio:g}^{deepest - 1} = {expect:.2g}", total <= expect,
                            ratio=total, threshold=expect))
    figures = [_figure(config, ctx, nets)]
    return Result(
        measurements={
            "median_consecutive_ratio": median_ratio,
            "ratios_median": {str(h): nets[h]["ratios_median"] for h in config.hidden_layers},
            "ratios_init": {str(h): nets[h]["ratios_init"] for h in config.hidden_layers},
            "bound_init": {str(h): nets[h]["bound_init"] for h in config.hidden_layers},
            "delta_geomean": {str(h): nets[h]["delta_geomean"] for h in config.hidden_layers},
            "delta_init": {str(h): nets[h]["delta_init"] for h in config.hidden_layers},
            "speed_median_4": four["speed_median"], "wgrad_median_4": four["wgrad_median"],
            "slowdown_bias_4": slowdown, "slowdown_weight_4": slowdown_w,
            f"delta_first_over_last_{deepest}": total,
            "accuracy": {str(h): tables[nets[h]["name"]]["accuracy"] for h in config.hidden_layers},
        },
        checks=checks, figures=figures, tables=tables,
        notes=(f"‖δ‖ is the watcher's ‖∂L/∂z‖ at each hidden Linear output (a {config.batch}×{config.width} "
               "matrix per step); ratios are taken per recorded step, then the median over training. Speed = "
               "‖∂L/∂b‖ per hidden layer (Nielsen's measure), median over all steps. Softmax + cross-entropy "
               "output (Nielsen: sigmoid outputs + cross-entropy); digits 8×8 instead of MNIST."),
    )


def _figure(config: Config, ctx: Context, nets: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(17, 4.5))
    for h, r in nets.items():
        xs = list(range(1, h + 1))
        ax[0].plot(xs, r["delta_geomean"], "o-", ms=3, label=f"{h} hidden")
    deep = nets[max(nets)]["delta_geomean"]
    xs = list(range(1, len(deep) + 1))
    ax[0].plot(xs, [deep[-1] * 0.25 ** (len(deep) - x) for x in xs], "k:", label="×¼ per layer")
    ax[0].set(yscale="log", xlabel="hidden layer l (1 = nearest the input)", ylabel="‖δ_l‖ (geometric mean over training)",
              title="back-propagated signal per layer")
    ax[0].legend(fontsize=8)
    speed = nets[4]["speed"]
    for j, col in enumerate(speed.columns):
        s = speed[col].rolling(20, min_periods=1).median()
        ax[1].plot(s.index, s.to_numpy(), label=f"hidden layer {j + 1}")
    ax[1].set(yscale="log", xlabel="step", ylabel="‖∂L/∂b_l‖ (rolling median)", title="speed of learning, 4 hidden layers")
    ax[1].legend(fontsize=8)
    pooled = [r for h in nets for r in nets[h]["ratios_median"]]
    ax[2].hist(pooled, bins=20, color="C0")
    ax[2].axvline(0.25, color="k", ls=":", label="σ′ max = ¼")
    ax[2].axvline(config.max_ratio, color="C3", ls="--", label=f"criterion {config.max_ratio:g} (median)")
    ax[2].set(xlabel="‖δ_l‖/‖δ_l+1‖ (median over training)", ylabel="layer pairs", title="consecutive ratios, all nets")
    ax[2].legend(fontsize=8)
    return ctx.savefig(fig, "sigmoid_attenuation")
