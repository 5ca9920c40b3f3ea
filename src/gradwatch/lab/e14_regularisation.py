"""e14 — Regularisation against weight growth: weight decay bounds the weights, dropout alone does not.

A 3-hidden-layer ReLU MLP is trained long on digits with SGD + momentum at a high-ish learning
rate, four ways from the same init on the same batches: unregularised, with L2 weight decay,
with dropout (p = 0.5 after every hidden layer, Srivastava et al. 2014), and with both. The
watcher records every parameter's weight norm and the gradient norm. Mechanism: one SGD step
changes ‖w‖² by −2·lr·⟨w, g⟩ + lr²‖g‖². Unregularised, the loss goes to ~0 and so does g, and
the weights stop growing; dropout's noise keeps ‖g‖ up, so the lr²‖g‖² term keeps adding to
‖w‖² (Srivastava et al. pair dropout with a max-norm constraint "without the possibility of
weights blowing up", §5.1); weight decay adds −2·lr·λ‖w‖², which balances it at a finite norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "regularisation"
CLAIM = ("Weight decay keeps the weight norm of a long, high-learning-rate run bounded and below the "
         "unregularised run's; dropout alone does not bound it (its gradient noise keeps the weights "
         "growing), and dropout with weight decay is bounded again.")
SOURCE = ("Krogh & Hertz 1992 (weight decay); Srivastava et al. 2014, Dropout, §5.1 (max-norm with dropout); "
          "van Laarhoven 2017 (L2 equilibrium)")

VARIANTS = ("none", "l2", "dropout", "dropout+l2")


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = (128, 128, 128)   # hidden ReLU layer widths
    steps: int = 3000                           # SGD steps (long: the loss reaches ~0 unregularised)
    batch: int = 64                             # mini-batch size
    lr: float = 0.1                             # SGD learning rate (high-ish with momentum 0.9)
    momentum: float = 0.9                       # SGD momentum
    weight_decay: float = 5e-4                  # L2 coefficient λ of the "l2" runs
    dropout: float = 0.5                        # dropout probability of the "dropout" runs
    every: int = 50                             # watcher: weight norms every `every` steps


FULL = {"steps": 20000}


def make_mlp(hidden: tuple[int, ...], dropout: float, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """Linear → ReLU (→ Dropout) per hidden layer, then a linear head.

    Example:
        >>> [type(m).__name__ for m in make_mlp((8,), 0.5)]
        ['Linear', 'ReLU', 'Dropout', 'Linear']
    """
    layers: list[nn.Module] = []
    n = inputs
    for h in hidden:
        layers += [nn.Linear(n, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        n = h
    layers.append(nn.Linear(n, classes))
    return nn.Sequential(*layers)


def total_norm(run) -> "object":
    """‖W‖ over all parameters at each watched step: √(Σ per-parameter weight_norm²), a Series.

    Example:
        >>> # total_norm(ctx.load("l2")).iloc[-1]   # the final weight norm of the "l2" run
    """
    w = run.series("weight_norm")
    return (w ** 2).sum(axis=1) ** 0.5


def run(config: Config, ctx: Context) -> Result:
    import numpy as np

    from gradwatch.lab.metrics import classification_report

    data = digits()
    F = nn.functional
    init = make_mlp(config.hidden, 0.0, classes=data.classes)
    m: dict = {"weight_norm_init": None, "weight_norm_mid": {}, "weight_norm_final": {}, "growth_second_half": {},
               "grad_norm_final": {}, "grad_norm_max": {}, "final_loss": {}, "accuracy": {}}
    tables, curves = {}, {}
    with ctx.progress(len(VARIANTS), "regularisers") as advance:
        for name in VARIANTS:
            drop = config.dropout if "dropout" in name else 0.0
            wd = config.weight_decay if "l2" in name else 0.0
            model = make_mlp(config.hidden, drop, classes=data.classes)
            with torch.no_grad():  # same weights, matched in order (dropout layers have none)
                for p, p0 in zip(model.parameters(), init.parameters(), strict=True):
                    p.copy_(p0)
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=wd)
            order = batches(len(data.X_train), config.batch, ctx.generator(1))  # same batches
            model.train()
            with ctx.watch(model, opt, name, every=config.every):
                for _ in range(config.steps):
                    idx = next(order)
                    loss = F.cross_entropy(model(data.X_train[idx]), data.y_train[idx])  # masks: global RNG
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            model.eval()
            with torch.no_grad():
                pred = model(data.X_test).argmax(1)
                m["final_loss"][name] = float(F.cross_entropy(model(data.X_train), data.y_train))
            run = ctx.load(name)
            wn = total_norm(run)
            steps = wn.index.to_numpy()
            mid = int(np.argmin(np.abs(steps - config.steps / 2)))
            m["weight_norm_init"] = float(wn.iloc[0])
            m["weight_norm_mid"][name] = float(wn.iloc[mid])
            m["weight_norm_final"][name] = float(wn.iloc[-1])
            m["growth_second_half"][name] = float(wn.iloc[-1] / wn.iloc[mid])
            gn = run.steps["grad_norm"].to_numpy()
            m["grad_norm_final"][name] = float(np.median(gn[-max(1, len(gn) // 10):]))
            m["grad_norm_max"][name] = float(np.nanmax(gn))
            tables[name] = classification_report(data.y_test, pred, labels=range(data.classes))
            m["accuracy"][name] = tables[name]["accuracy"]
            curves[name] = (steps, wn.to_numpy(), run.steps.index.to_numpy(), gn)
            advance()
    _figure(ctx, config, m, curves)
    return Result(measurements=m, checks=_checks(m), tables=tables,
                  notes=("‖W‖ = √(Σ‖w‖²) over every parameter (weights and biases) from the watcher's weight_norm; "
                         "growth_second_half = ‖W‖(end)/‖W‖(mid); grad_norm_final = median global gradient norm over "
                         "the last 10% of steps; weight decay through torch.optim.SGD(weight_decay=λ) (coupled L2); "
                         "dropout is inverted (scaled at train time), evaluated in eval mode; final_loss on the whole "
                         "training set in eval mode."))


def _checks(m: dict) -> list:
    w, g = m["weight_norm_final"], m["growth_second_half"]
    return [
        check("weight decay: final ‖W‖ below the unregularised run's", w["l2"] < w["none"],
              l2=w["l2"], none=w["none"]),
        check("weight decay: ‖W‖ stops growing (end ≤ midpoint)", g["l2"] <= 1.0, growth_second_half=g["l2"]),
        check("dropout alone does not bound the weights: ‖W‖ still grows over the second half (end > midpoint)",
              g["dropout"] > 1.0, growth_second_half=g["dropout"], grad_norm_final=m["grad_norm_final"]["dropout"]),
        check("dropout + weight decay: final ‖W‖ below dropout alone's and not growing (end ≤ midpoint)",
              w["dropout+l2"] < w["dropout"] and g["dropout+l2"] <= 1.0,
              dropout_l2=w["dropout+l2"], dropout=w["dropout"], growth_second_half=g["dropout+l2"]),
    ]


def _figure(ctx: Context, config: Config, m: dict, curves: dict) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, (steps, wn, gsteps, gn) in curves.items():
        ax[0].plot(steps, wn, label=f"{name} (test acc {m['accuracy'][name]:.3f})")
        window = max(1, len(gn) // 60)
        smooth = np.convolve(gn, np.ones(window) / window, mode="valid")
        ax[1].plot(gsteps[: len(smooth)], smooth, lw=0.9, label=name)
    ax[0].set(xlabel="step", ylabel="‖W‖ (all parameters)", title="weight norm")
    ax[1].set(xlabel="step", ylabel="global gradient norm (running mean)", yscale="log", title="gradient norm")
    names = list(m["growth_second_half"])
    ax[2].bar(names, [m["growth_second_half"][n] for n in names], color=["C0", "C1", "C2", "C3"][: len(names)])
    ax[2].axhline(1.0, color="grey", ls=":")
    ax[2].set(ylabel="‖W‖(end) / ‖W‖(mid)", title="growth over the second half")
    for a in ax[:2]:
        a.legend(fontsize=8)
    fig.suptitle(f"SGD lr {config.lr:g}, momentum {config.momentum:g}, λ = {config.weight_decay:g}, "
                 f"dropout p = {config.dropout:g}", fontsize=10)
    ctx.savefig(fig, "regularisation")
