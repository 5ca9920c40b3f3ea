"""e06 — Activations: the same deep net with eight activations — gradient flow, dead units, accuracy.

One plain MLP (15 hidden layers of width 64 in quick mode) is trained on standardized digits with
sigmoid, tanh, ReLU, LeakyReLU, PReLU, ELU, softplus and GELU, each with the init made for it:
Xavier (Glorot & Bengio 2010) for sigmoid and tanh, He (He et al. 2015, with the leaky slope in the
gain for LeakyReLU/PReLU) for the rest. The watcher records ‖δ‖ at every layer and which units fire.
Mechanisms checked: σ′ ≤ 1/4 makes the sigmoid net's δ vanish geometrically where the ReLU family
keeps it of order one; tanh′(0) = 1 keeps tanh far above sigmoid; a ReLU unit that never fires gets
no gradient at all, so only ReLU has units cut off from learning, while ELU/GELU (negative outputs,
mean activations nearer zero — Clevert et al. 2016) have fewer units that never fire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "activations"
CLAIM = ("In the same deep net, sigmoid's back-propagated signal vanishes by orders of magnitude more than "
         "the ReLU family's and it learns least; only ReLU has units that never fire and get no gradient.")
SOURCE = ("Glorot & Bengio 2010; Nair & Hinton 2010 (ReLU); Maas et al. 2013 (LeakyReLU); He et al. 2015 (PReLU); "
          "Clevert et al. 2016 (ELU); Hendrycks & Gimpel 2016 (GELU); Lu et al. 2019 (dying ReLU)")

#: name -> (module factory, init, negative slope used in He's gain)
ACTIVATIONS = {
    "sigmoid": (nn.Sigmoid, "xavier", 0.0),
    "tanh": (nn.Tanh, "xavier", 0.0),
    "relu": (nn.ReLU, "he", 0.0),
    "leaky_relu": (lambda: nn.LeakyReLU(0.01), "he", 0.01),
    "prelu": (lambda: nn.PReLU(init=0.25), "he", 0.25),
    "elu": (nn.ELU, "he", 0.0),
    "softplus": (nn.Softplus, "he", 0.0),
    "gelu": (nn.GELU, "he", 0.0),
}
RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu", "gelu")


@dataclass(frozen=True)
class Config:
    activations: tuple[str, ...] = tuple(ACTIVATIONS)   # which activations (names in ACTIVATIONS)
    depth: int = 15                                     # hidden layers
    width: int = 64                                     # hidden width
    steps: int = 400                                    # SGD steps per net
    batch: int = 64                                     # mini-batch size
    lr: float = 0.01                                    # SGD learning rate, the same for all
    momentum: float = 0.9                               # SGD momentum
    every: int = 20                                     # watcher: δ and unit statistics every `every` steps
    min_orders: float = 2.0                             # criterion: δ-ratio gaps of ≥ this many decades


FULL = {"depth": 20, "width": 128, "steps": 3000, "every": 50}


def make_net(activation: str, depth: int, width: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """``depth`` × (Linear, activation) and a linear head; Xavier or He init by activation, biases 0,
    through :func:`gradwatch.remedies.init.apply` (every Linear, the head included).

    Example:
        >>> net = make_net("prelu", 2, 8)
        >>> type(net[1]).__name__, len(net)
        ('PReLU', 5)
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    factory, init, slope = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    n = inputs
    for _ in range(depth):
        layers += [nn.Linear(n, width), factory()]
        n = width
    layers.append(nn.Linear(n, classes))
    net = nn.Sequential(*layers)
    from gradwatch.remedies.init import apply

    if init == "xavier":
        apply(net, "xavier_normal", gain=1.0, bias=0.0)
    else:
        apply(net, "he_normal", a=slope, nonlinearity="leaky_relu", bias=0.0)
    return net


def zero_gradient_units(net: nn.Sequential, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of hidden units whose incoming weights get exactly zero gradient on all of ``X``.

    Such a unit cannot learn: for ReLU, a unit that is negative on every input (Lu et al. 2019).

    Example:
        >>> net = make_net("relu", 2, 4)
        >>> with torch.no_grad(): _ = net[2].bias.fill_(-100.0)   # layer 2 never fires
        >>> zero_gradient_units(net, torch.randn(16, 64), torch.zeros(16, dtype=torch.long))
        1.0
    """
    net.zero_grad()
    F.cross_entropy(net(X), y).backward()
    hidden = [m for m in list(net)[:-1] if isinstance(m, nn.Linear)]
    dead = sum(int((m.weight.grad.abs().sum(1) == 0).sum()) for m in hidden)
    net.zero_grad()
    return dead / sum(m.out_features for m in hidden)


def _train(activation: str, config: Config, data, ctx: Context) -> dict:
    net = make_net(activation, config.depth, config.width)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    draw = batches(len(data.X_train), config.batch, ctx.generator(1))
    losses = []
    with ctx.watch(net, opt, activation, every=config.every, precision="float32"):
        for _ in range(config.steps):
            idx = next(draw)
            loss = F.cross_entropy(net(data.X_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    with torch.no_grad():
        pred = net(data.X_test).argmax(1)
    zero_grad = zero_gradient_units(net, data.X_train, data.y_train)
    run = ctx.load(activation)
    lin = [str(2 * i) for i in range(config.depth)]
    acts = [str(2 * i + 1) for i in range(config.depth)]
    delta = run.series("delta")[lin].astype(float)
    ratio = (delta[lin[0]] / delta[lin[-1]]).to_numpy()
    dead = run.series("act_dead")
    dead = dead[acts].astype(float).iloc[-1] if len(dead) and dead[acts].notna().any().any() else None
    finite = [r for r in ratio if math.isfinite(r) and r > 0]
    return {
        "pred": pred, "losses": losses, "zero_grad_units": zero_grad,
        "delta_profile_init": (delta.iloc[0] / delta.iloc[0][lin[-1]]).to_list(),
        "ratio_init": float(ratio[0]),
        "ratio_median": float(sorted(finite)[len(finite) // 2]) if finite else float("nan"),
        "act_dead": None if dead is None else float(dead.mean()),
    }


def run(config: Config, ctx: Context) -> Result:
    """Train the net with each activation and compare gradient flow, dead units and accuracy."""
    from gradwatch.lab.metrics import classification_report

    bad = [a for a in config.activations if a not in ACTIVATIONS]
    need = {"sigmoid", "tanh", "relu", "elu", "gelu"}
    if bad or not need <= set(config.activations):
        raise ValueError(f"activations must be names in {tuple(ACTIVATIONS)} including {sorted(need)}; got {config.activations}")
    if config.depth < 2:
        raise ValueError(f"depth={config.depth}: the δ ratio needs at least 2 hidden layers")
    data = digits(standardize=True)
    runs = {}
    with ctx.progress(len(config.activations), "activations") as advance:
        for act in config.activations:
            runs[act] = _train(act, config, data, ctx)
            advance()

    tables = {a: classification_report(data.y_test, r["pred"], labels=range(10)) for a, r in runs.items()}
    acc = {a: t["accuracy"] for a, t in tables.items()}
    ratio = {a: r["ratio_init"] for a, r in runs.items()}
    family = [a for a in RELU_FAMILY if a in runs]
    weakest = min(family, key=lambda a: ratio[a])
    gap_family = math.log10(ratio[weakest] / ratio["sigmoid"])
    gap_tanh = math.log10(ratio["tanh"] / ratio["sigmoid"])
    zg = {a: runs[a]["zero_grad_units"] for a in runs}
    others = [a for a in ("leaky_relu", "elu", "gelu") if a in runs]
    dead = {a: runs[a]["act_dead"] for a in runs if runs[a]["act_dead"] is not None}
    checks = [
        check(f"‖δ_first‖/‖δ_last‖ at init: sigmoid's is ≥ {config.min_orders:g} decades below every ReLU-family "
              f"activation's ({', '.join(family)})", gap_family >= config.min_orders,
              sigmoid=ratio["sigmoid"], weakest_family=weakest, weakest_ratio=ratio[weakest], decades=gap_family),
        check(f"‖δ_first‖/‖δ_last‖ at init: tanh's (tanh′(0) = 1) is ≥ {config.min_orders:g} decades above "
              "sigmoid's (σ′ ≤ 1/4)", gap_tanh >= config.min_orders, tanh=ratio["tanh"], decades=gap_tanh),
        check(f"ReLU has the most dead units among ReLU/{'/'.join(others)}: its fraction of hidden units with exactly "
              "zero gradient on the whole training set after training is > 0 and above each of theirs",
              zg["relu"] > 0 and all(zg["relu"] > zg[a] for a in others),
              relu=zg["relu"], **{a: zg[a] for a in others}),
        check("units that never fire (watcher act_dead, end of training): ReLU ≥ ELU and ReLU ≥ GELU "
              "(negative outputs keep mean activations nearer 0)",
              dead["relu"] >= dead["elu"] and dead["relu"] >= dead["gelu"],
              relu=dead["relu"], elu=dead["elu"], gelu=dead["gelu"], leaky_relu=dead.get("leaky_relu")),
        check("sigmoid has the lowest test accuracy of all activations",
              all(acc["sigmoid"] < acc[a] for a in acc if a != "sigmoid"),
              sigmoid=acc["sigmoid"], lowest_other=min(v for a, v in acc.items() if a != "sigmoid")),
    ]
    figures = [_figure(config, ctx, runs, acc)]
    return Result(
        measurements={
            "delta_ratio_init": ratio, "delta_ratio_median": {a: r["ratio_median"] for a, r in runs.items()},
            "delta_profile_init": {a: r["delta_profile_init"] for a, r in runs.items()},
            "act_dead_final": dead, "zero_gradient_units": zg, "accuracy": acc,
            "final_train_loss": {a: sum(r["losses"][-20:]) / len(r["losses"][-20:]) for a, r in runs.items()},
        },
        checks=checks, figures=figures, tables=tables,
        notes=(f"{config.depth} hidden layers × {config.width}, SGD lr {config.lr:g} momentum {config.momentum:g}, "
               f"batch {config.batch}, {config.steps} steps, standardized digits. δ ratio = ‖∂L/∂z‖ at the first hidden "
               "pre-activation over the last, from the watcher at step 0 (median over training also reported). "
               "act_dead = fraction of units that never output > 0 over the watcher's window (5 statistics steps); "
               "for LeakyReLU/PReLU/ELU/GELU such units still get gradient, so 'dead' in the gradient sense is "
               "measured separately: hidden units whose incoming-weight gradient row is exactly zero on all 1347 "
               "training inputs after training. Inits by gradwatch.remedies.init.apply. Softplus "
               "(softplus′ = σ ∈ (0, 1)) also attenuates δ; no check on it."),
    )


def _figure(config: Config, ctx: Context, runs: dict, acc: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(1, 3, figsize=(18, 4.8))
    layers = np.arange(1, config.depth + 1)
    for k, (a, r) in enumerate(runs.items()):
        ax[0].plot(layers, r["delta_profile_init"], "o-", ms=3, color=f"C{k}", label=a)
    ax[0].set(yscale="log", xlabel="hidden layer (1 = nearest the input)", ylabel="‖δ_l‖ / ‖δ_last‖ at init (watcher)",
              title="back-propagated signal per layer")
    ax[0].legend(fontsize=8, ncol=2)
    fam = [a for a in runs if runs[a]["act_dead"] is not None]
    x = np.arange(len(fam))
    ax[1].bar(x - 0.2, [100 * runs[a]["act_dead"] for a in fam], 0.4, label="never fire (watcher act_dead)")
    ax[1].bar(x + 0.2, [100 * runs[a]["zero_grad_units"] for a in fam], 0.4, label="zero gradient on all inputs")
    ax[1].set(xticks=x, xticklabels=fam, ylabel="% of hidden units", title="dead units after training")
    ax[1].legend(fontsize=8)
    names = list(runs)
    ax[2].bar(range(len(names)), [acc[a] for a in names], color=[f"C{k}" for k in range(len(names))])
    for i, a in enumerate(names):
        ax[2].text(i, acc[a] + 0.01, f"{acc[a]:.2f}", ha="center", fontsize=8)
    ax[2].set(xticks=range(len(names)), ylim=(0, 1.08), ylabel="test accuracy",
              title=f"after {config.steps} SGD steps, depth {config.depth}")
    ax[2].set_xticklabels(names, rotation=30)
    return ctx.savefig(fig, "activations")
