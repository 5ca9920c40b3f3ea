"""e05 — Edge of chaos: a random tanh net trains only to depth ≈ 6ξ_c, which diverges at χ₁ = 1.

Mean-field theory (Poole et al. 2016; Schoenholz et al. 2017) for W ~ N(0, σ_w²/n), b ~ N(0, σ_b²):
the pre-activation variance settles at q* = σ_w² E[tanh(√q* z)²] + σ_b²; χ₁ = σ_w² E[tanh′(√q* z)²]
separates the ordered phase (χ₁ < 1: correlations → 1, gradients vanish) from the chaotic one
(χ₁ > 1: correlations → c* < 1, gradients explode). Input correlations relax over the depth
ξ_c = −1/ln χ_c, χ_c = σ_w² E[tanh′(u₁) tanh′(u₂)] at the correlation fixed point c* (= χ₁ in the
ordered phase, where c* = 1); Schoenholz et al. find nets trainable up to L ≈ 6ξ_c. Gaussian
expectations here are Gauss–Hermite sums (numpy's ``hermegauss``). A grid of σ_w² × depth tanh
MLPs is trained on digits with the same SGD budget; the watcher records δ at every layer at init,
whose per-layer growth mean-field theory predicts to be √χ₁.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "edge-of-chaos"
CLAIM = ("A random tanh network is trainable only up to depth ≈ 6ξ_c, the mean-field correlation depth, "
         "which diverges at the order-to-chaos transition χ₁ = 1; gradients grow by √χ₁ per layer.")
SOURCE = "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, Figs. 5–6 (Poole et al. 2016 for q*, χ₁)"


@dataclass(frozen=True)
class Config:
    sigma_w2: tuple[float, ...] = (0.5, 1.0, 1.5, 1.75, 2.0, 3.0, 4.0, 5.0)  # weight variances σ_w² (× 1/n)
    depths: tuple[int, ...] = (6, 12, 24, 48)        # hidden tanh layers
    sigma_b2: float = 0.05                           # bias variance σ_b² (Schoenholz et al.: 0.05)
    width: int = 64                                  # hidden width (mean field: wide; the paper: 300)
    steps: int = 300                                 # SGD steps per net
    batch: int = 64                                  # mini-batch size
    lr: float = 1e-3                                 # SGD learning rate (the paper's SGD runs: 1e-3)
    momentum: float = 0.9                            # SGD momentum
    every: int = 100                                 # watcher: δ every `every` steps (step 0 = init)
    trainable_acc: float = 0.5                       # a net "trains" when its training accuracy ≥ this
    inside_min: float = 0.9                          # criterion: ≥ this fraction of trained nets has L ≤ 6ξ_c
    agree_min: float = 0.8                           # criterion: "L ≤ 6ξ_c" predicts trainability on ≥ this
    growth_tol: float = 0.1                          # criterion: measured δ growth per layer within ±this of √χ₁


FULL = {"sigma_w2": (0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0),
        "depths": (6, 12, 24, 48, 96, 160), "width": 300, "steps": 3000, "every": 500}


def _gauss(n: int = 80):
    import numpy as np

    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / math.sqrt(2 * math.pi)  # E[f(z)] = Σ w f(z), z ~ N(0, 1)


def q_star(sigma_w2: float, sigma_b2: float, iters: int = 1000) -> float:
    """Fixed point of the variance map q ← σ_w² E[tanh(√q z)²] + σ_b² (Poole et al. 2016).

    Example:
        >>> round(q_star(1.0, 0.05), 3)
        0.194
    """
    import numpy as np

    z, w = _gauss()
    q = 1.0
    for _ in range(iters):
        q, old = sigma_w2 * float(np.sum(w * np.tanh(math.sqrt(q) * z) ** 2)) + sigma_b2, q
        if abs(q - old) < 1e-13:
            break
    return q


def chi1(sigma_w2: float, sigma_b2: float, q: float | None = None) -> float:
    """χ₁ = σ_w² E[tanh′(√q* z)²]: the factor a perturbation (or ‖δ‖²) gains per layer.

    Example:
        >>> round(chi1(1.0, 0.05), 3)
        0.759
    """
    import numpy as np

    z, w = _gauss()
    q = q_star(sigma_w2, sigma_b2) if q is None else q
    d = 1.0 - np.tanh(math.sqrt(q) * z) ** 2
    return sigma_w2 * float(np.sum(w * d ** 2))


def mean_field(sigma_w2: float, sigma_b2: float) -> dict[str, float]:
    """q*, χ₁, the correlation fixed point c*, χ_c and ξ_c = −1/ln χ_c for a tanh net.

    In the ordered phase (χ₁ < 1) c* = 1 and χ_c = χ₁. In the chaotic phase c* < 1 is the root of
    c = (σ_w² E[tanh(u₁) tanh(u₂)] + σ_b²)/q* with u₁ = √q* z₁, u₂ = √q* (c z₁ + √(1 − c²) z₂),
    found by bisection on [0, 1) (the map is above c at 0 and below it just under 1), and
    χ_c = σ_w² E[tanh′(u₁) tanh′(u₂)] there (Schoenholz et al. 2017, eq. 9).

    Example:
        >>> mf = mean_field(1.76, 0.05)
        >>> round(mf["chi1"], 2), mf["xi_c"] > 100
        (1.0, True)
    """
    import numpy as np

    z, w = _gauss()
    q = q_star(sigma_w2, sigma_b2)
    x1 = chi1(sigma_w2, sigma_b2, q)
    c, chi_c = 1.0, x1
    if x1 > 1.0:
        z1, z2 = np.meshgrid(z, z, indexing="ij")
        ww = np.outer(w, w)

        def pair(c: float):
            u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
            return u1, u2

        def gap(c: float) -> float:
            u1, u2 = pair(c)
            return (sigma_w2 * float(np.sum(ww * np.tanh(u1) * np.tanh(u2))) + sigma_b2) / q - c

        lo, hi = 0.0, 1.0 - 1e-6
        for _ in range(40):  # to ~1e-12
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
        c = (lo + hi) / 2
        u1, u2 = pair(c)
        chi_c = sigma_w2 * float(np.sum(ww * (1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2)))
    xi = -1.0 / math.log(chi_c) if 0 < chi_c < 1 else math.inf
    return {"q_star": q, "chi1": x1, "c_star": c, "chi_c": chi_c, "xi_c": xi}


def critical_sigma_w2(sigma_b2: float) -> float:
    """σ_w² at which χ₁ = 1 (bisection; tanh, σ_b² = 0.05 → ≈ 1.76).

    Example:
        >>> round(critical_sigma_w2(0.05), 2)
        1.76
    """
    lo, hi = 0.5, 4.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chi1(mid, sigma_b2) < 1 else (lo, mid)
    return (lo + hi) / 2


def make_net(sigma_w2: float, sigma_b2: float, depth: int, width: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """``depth`` tanh layers and a linear readout, every Linear W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²).

    Example:
        >>> net = make_net(1.0, 0.05, 3, 16)
        >>> len(net), type(net[1]).__name__
        (7, 'Tanh')
    """
    layers: list[nn.Module] = []
    n = inputs
    for _ in range(depth):
        layers += [nn.Linear(n, width), nn.Tanh()]
        n = width
    layers.append(nn.Linear(n, classes))
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, math.sqrt(sigma_w2 / m.in_features))
            nn.init.normal_(m.bias, 0.0, math.sqrt(sigma_b2))
    return nn.Sequential(*layers)


def _train(s2: float, depth: int, config: Config, data, ctx: Context) -> dict:
    net = make_net(s2, config.sigma_b2, depth, config.width)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    draw = batches(len(data.X_train), config.batch, ctx.generator(1))
    name = f"sw2-{s2:g}-depth-{depth}"
    with ctx.watch(net, opt, name, every=config.every, precision="float32"):
        for _ in range(config.steps):
            idx = next(draw)
            loss = F.cross_entropy(net(data.X_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        train_acc = (net(data.X_train).argmax(1) == data.y_train).float().mean().item()
        pred = net(data.X_test).argmax(1)
    delta0 = ctx.load(name).series("delta").iloc[0]
    first, last = float(delta0["0"]), float(delta0[str(2 * (depth - 1))])
    growth = (first / last) ** (1.0 / (depth - 1)) if depth > 1 and first > 0 and last > 0 else float("nan")
    return {"name": name, "train_acc": train_acc, "pred": pred, "growth": growth}


def run(config: Config, ctx: Context) -> Result:
    """Mean-field depth scales per σ_w², then train the grid and compare."""
    from gradwatch.lab.metrics import classification_report

    data = digits(standardize=True)
    mf = {s2: mean_field(s2, config.sigma_b2) for s2 in config.sigma_w2}
    crit = critical_sigma_w2(config.sigma_b2)
    runs: dict[tuple[float, int], dict] = {}
    # Deep nets in the ordered phase shrink δ (and deep activations) past float32's normal range;
    # denormal arithmetic is ~10x slower on the CPU (depth 160, width 300: 0.83 s/step vs 0.09 s).
    # Below ~1e-38 a value carries no training signal, so it is flushed to zero for this run.
    torch.set_flush_denormal(True)
    try:
        with ctx.progress(len(config.sigma_w2) * len(config.depths), "σ_w² × depth") as advance:
            for s2 in config.sigma_w2:
                for depth in config.depths:
                    runs[s2, depth] = _train(s2, depth, config, data, ctx)
                    advance()
    finally:
        torch.set_flush_denormal(False)

    trains = {k: r["train_acc"] >= config.trainable_acc for k, r in runs.items()}
    inside = {(s2, d): d <= 6 * mf[s2]["xi_c"] for s2, d in runs}
    n_trained = sum(trains.values())
    trained_inside = sum(trains[k] and inside[k] for k in runs)
    frac_inside = trained_inside / n_trained if n_trained else float("nan")
    agree = sum(trains[k] == inside[k] for k in runs) / len(runs)
    deepest = {s2: max([d for d in config.depths if trains[s2, d]], default=0) for s2 in config.sigma_w2}
    near = min(config.sigma_w2, key=lambda s2: abs(math.log(mf[s2]["chi1"])))
    ends = (min(config.sigma_w2), max(config.sigma_w2))
    dmax = max(config.depths)
    growth_err = {f"{s2:g}": runs[s2, dmax]["growth"] / math.sqrt(mf[s2]["chi1"]) - 1 for s2 in config.sigma_w2}
    worst = max(growth_err.values(), key=abs)
    checks = [
        check(f"trained nets (training accuracy ≥ {config.trainable_acc:g}) lie within the envelope: "
              f"≥ {config.inside_min:.0%} of them have L ≤ 6ξ_c", n_trained > 0 and frac_inside >= config.inside_min,
              trained=n_trained, trained_inside=trained_inside, fraction=frac_inside),
        check(f"'L ≤ 6ξ_c' predicts trainable / not trainable on ≥ {config.agree_min:.0%} of the "
              f"{len(runs)} grid cells", agree >= config.agree_min, agreement=agree),
        check(f"trainable depth peaks near χ₁ = 1: the grid σ_w² closest to criticality (σ_w² = {near:g}, "
              f"χ₁ = {mf[near]['chi1']:.3f}) trains the deepest net of the grid, and both ends of the grid train "
              "strictly shallower ones", deepest[near] == max(deepest.values())
              and all(deepest[e] < deepest[near] for e in ends),
              deepest_near=deepest[near], deepest_low=deepest[ends[0]], deepest_high=deepest[ends[1]]),
        check(f"watcher at init, depth {dmax}: δ grows by √χ₁ per layer (mean-field backprop) within "
              f"±{config.growth_tol:.0%} for every σ_w²", all(abs(e) <= config.growth_tol for e in growth_err.values()),
              worst_relative_error=worst),
    ]
    tables = {runs[s2, d]["name"]: classification_report(data.y_test, runs[s2, d]["pred"], labels=range(10))
              for s2 in (min(config.sigma_w2), near, max(config.sigma_w2)) for d in (dmax,)}
    figures = [_figure(config, ctx, runs, mf, crit)]
    result = Result(
        measurements={
            "critical_sigma_w2": crit,
            "mean_field": {f"{s2:g}": mf[s2] | {"six_xi_c": 6 * mf[s2]["xi_c"]} for s2 in config.sigma_w2},
            "train_acc": {f"{s2:g}": {str(d): runs[s2, d]["train_acc"] for d in config.depths} for s2 in config.sigma_w2},
            "deepest_trained": {f"{s2:g}": deepest[s2] for s2 in config.sigma_w2},
            "fraction_trained_inside": frac_inside, "agreement": agree,
            "delta_growth_per_layer": {f"{s2:g}": runs[s2, dmax]["growth"] for s2 in config.sigma_w2},
            "sqrt_chi1": {f"{s2:g}": math.sqrt(mf[s2]["chi1"]) for s2 in config.sigma_w2},
            "growth_relative_error": growth_err,
        },
        checks=checks, figures=figures, tables=tables,
        notes=(f"ξ_c = −1/ln χ_c, with χ_c = χ₁ only in the ordered phase; in the chaotic phase χ_c is taken at the "
               f"correlation fixed point c* < 1 (Schoenholz et al. eq. 9) — −1/ln χ₁ is undefined there. Width "
               f"{config.width} (the paper: wide nets), {config.steps} SGD steps (lr {config.lr:g}, momentum "
               f"{config.momentum:g}, batch {config.batch}) on standardized digits; a net 'trains' when its training "
               f"accuracy reaches {config.trainable_acc:g}. δ growth = (‖δ_first‖/‖δ_last‖)^(1/(L−1)) over hidden "
               "pre-activations at step 0. Metric tables: the deepest nets at both ends of the grid and nearest χ₁ = 1."),
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


def _figure(config: Config, ctx: Context, runs: dict, mf: dict, crit: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    s = sorted(config.sigma_w2)
    d = sorted(config.depths)
    acc = np.array([[runs[x, y]["train_acc"] for x in s] for y in d])
    edges_x = np.concatenate([[s[0] - (s[1] - s[0]) / 2], (np.array(s[1:]) + s[:-1]) / 2, [s[-1] + (s[-1] - s[-2]) / 2]]) \
        if len(s) > 1 else np.array([s[0] - 0.25, s[0] + 0.25])
    ld = np.log(d)
    edges_y = np.exp(np.concatenate([[ld[0] - (ld[1] - ld[0]) / 2], (ld[1:] + ld[:-1]) / 2,
                                     [ld[-1] + (ld[-1] - ld[-2]) / 2]])) if len(d) > 1 else np.array([d[0] / 1.4, d[0] * 1.4])
    fig, ax = plt.subplots(1, 2, figsize=(15, 5))
    mesh = ax[0].pcolormesh(edges_x, edges_y, acc, cmap="viridis", vmin=0.1, vmax=1.0)
    fig.colorbar(mesh, ax=ax[0], label=f"training accuracy after {config.steps} steps")
    fine = np.linspace(max(edges_x[0], 0.05), edges_x[-1], 60)
    theory = [mean_field(float(x), config.sigma_b2) for x in fine]
    six_xi = np.array([6 * t["xi_c"] for t in theory])
    ax[0].plot(fine, np.minimum(six_xi, edges_y[-1] * 10), "w--", lw=2, label="6ξ_c (mean field)")
    ax[0].axvline(crit, color="r", ls=":", label=f"χ₁ = 1 (σ_w² = {crit:.2f})")
    for (x, y), r in runs.items():
        ax[0].text(x, y, f"{r['train_acc']:.2f}".lstrip("0"), ha="center", va="center", fontsize=7,
                   color="k" if r["train_acc"] > 0.6 else "w")
    ax[0].set(yscale="log", ylim=(edges_y[0], edges_y[-1]), yticks=d, yticklabels=[str(v) for v in d],
              xlabel="σ_w²", ylabel="depth L (hidden layers)",
              title=f"trainability, tanh, σ_b² = {config.sigma_b2:g}")
    ax[0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax[0].legend(loc="lower right", fontsize=8)
    dmax = max(d)
    ax[1].plot(fine, np.sqrt([t["chi1"] for t in theory]), "k-", label="√χ₁ (mean field)")
    ax[1].plot(s, [runs[x, dmax]["growth"] for x in s], "o", color="C1",
               label=f"watcher: (‖δ₁‖/‖δ_L‖)^(1/(L−1)), L = {dmax}")
    ax[1].axhline(1, color="grey", lw=0.6)
    ax[1].axvline(crit, color="r", ls=":")
    ax[1].set(xlabel="σ_w²", ylabel="δ growth per layer towards the input (at init)",
              title="gradients: vanishing (ordered) vs exploding (chaotic)")
    ax[1].legend(fontsize=8)
    return ctx.savefig(fig, "edge_of_chaos")
