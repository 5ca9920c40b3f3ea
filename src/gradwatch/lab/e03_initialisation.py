"""e03 — Initialisation: He init trains a 30-layer ReLU net where Xavier stalls; zero and N(0, 1) fail.

Plain MLPs (width 128 in quick mode, 256 in full; ReLU and tanh) at depths 10, 22, 30, 50 are
initialised seven ways — zero, small random N(0, 0.01²), N(0, 1), Xavier (Glorot & Bengio 2010),
He (He et al. 2015), orthogonal (Saxe et al. 2014, gain √2 for ReLU, 5/3 for tanh) and LSUV
(Mishkin & Matas 2016), all through ``gradwatch.remedies.init.apply`` — and trained with SGD +
momentum on standardized digits, every run recorded by the watcher. Xavier's variance is half of
He's per ReLU layer, so the forward signal shrinks like 2^(−L/2) and a 30-layer net's output
carries no information: the loss stays at ln 10. Zero init makes every unit of a layer identical
for ever (the watcher's identical_frac), and N(0, 1) multiplies the signal by ≈√(n/2) per layer
until it overflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "initialisation"
CLAIM = ("He init trains a 30-layer plain ReLU net where Xavier init stalls near ln 10; zero init never "
         "breaks the symmetry between units, N(0, 1) explodes and N(0, 0.01²) vanishes.")
SOURCE = "He et al. 2015, Figs. 2–3; Glorot & Bengio 2010; Saxe et al. 2014; Mishkin & Matas 2016 (LSUV)"
INITS = ("zero", "small", "normal", "xavier", "he", "orthogonal", "lsuv")
LN10 = math.log(10)


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (10, 22, 30, 50)       # hidden layers (must include 30 for ReLU)
    tanh_depths: tuple[int, ...] = (30,)             # depths also run with tanh (empty: ReLU only)
    inits: tuple[str, ...] = INITS                   # init policies (names in INITS; must include he, xavier)
    width: int = 128                                 # hidden width (He et al.'s check: 256, see FULL)
    steps: int = 300                                 # SGD steps per run (a non-finite loss ends a run)
    batch: int = 32                                  # mini-batch size
    lr: float = 0.003                                # SGD learning rate, one for all runs
    momentum: float = 0.9                            # SGD momentum
    every: int = 25                                  # watcher: slow statistics every `every` steps
    lsuv_tol: float = 0.1                            # LSUV: |Var − 1| tolerance per layer (Mishkin & Matas)
    lsuv_iters: int = 10                             # LSUV: at most this many rescalings per layer
    explode_factor: float = 100.0                    # criterion: N(0,1) step-0 ‖g‖ ≥ this × He's (or non-finite)


FULL = {"width": 256, "steps": 3000, "tanh_depths": (10, 22, 30, 50), "every": 100}


def make_net(activation: str, depth: int, width: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """``depth`` hidden ``Linear + activation`` pairs and a linear head (hidden Linear i at index 2i).

    Example:
        >>> len(make_net("relu", 3, 8))
        7
    """
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}.get(activation)
    if act is None:
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    layers: list[nn.Module] = []
    n = inputs
    for _ in range(depth):
        layers += [nn.Linear(n, width), act()]
        n = width
    layers.append(nn.Linear(n, classes))
    return nn.Sequential(*layers)


#: lab name -> (gradwatch.remedies.init policy, its options); orthogonal's gain is set per activation
POLICIES = {
    "zero": ("zeros", {}),
    "small": ("normal", {"scale": 0.01}),
    "normal": ("normal", {"scale": 1.0}),
    "xavier": ("xavier_normal", {"gain": 1.0}),       # Var = 2/(n_in + n_out): 1/n for square layers
    "he": ("he_normal", {"nonlinearity": "relu"}),    # Var = 2/n_in
    "orthogonal": ("orthogonal", {}),
    "lsuv": ("lsuv", {}),
}


def init_(net: nn.Sequential, policy: str, activation: str, x: torch.Tensor, config: Config,
          generator: torch.Generator | None = None) -> str:
    """Apply one init ``policy`` (a name in ``INITS``) to every Linear of ``net`` with biases 0,
    through :func:`gradwatch.remedies.init.apply`; returns the rule used for the first layer.

    ``orthogonal`` uses ``calculate_gain(activation)`` (√2 for ReLU, 5/3 for tanh); ``lsuv``
    rescales on the batch ``x`` to unit output variance (``config.lsuv_tol``, ``config.lsuv_iters``).

    Example:
        >>> net = make_net("relu", 2, 8); init_(net, "zero", "relu", torch.randn(4, 64), Config())
        'zeros_'
        >>> float(net[0].weight.detach().abs().sum())
        0.0
    """
    from gradwatch.remedies.init import apply

    if policy not in POLICIES:
        raise ValueError(f"unknown init {policy!r}; choose from {', '.join(INITS)}")
    name, options = POLICIES[policy]
    options = dict(options)
    if policy == "orthogonal":
        options["gain"] = nn.init.calculate_gain(activation)
    if policy == "lsuv":
        options.update(data=x, tol=config.lsuv_tol, max_iter=config.lsuv_iters)
    report = apply(net, name, bias=0.0, generator=generator, **options)
    return report.rule_of("0.weight")


def _train(activation: str, depth: int, policy: str, config: Config, data, ctx: Context) -> dict:
    net = make_net(activation, depth, config.width)
    probe = data.X_train[torch.randperm(len(data.X_train), generator=ctx.generator(2))[:256]]
    rule = init_(net, policy, activation, probe, config, generator=ctx.generator(3))
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    draw = batches(len(data.X_train), config.batch, ctx.generator(1))
    name = f"{activation}-{depth}-{policy}"
    losses = []
    with ctx.watch(net, opt, name, every=config.every):
        for _ in range(config.steps):
            idx = next(draw)
            loss = F.cross_entropy(net(data.X_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                break
    with torch.no_grad():
        final = F.cross_entropy(net(data.X_train), data.y_train).item()
        pred = net(data.X_test).argmax(1)
    run = ctx.load(name)
    hidden_w = [f"{2 * i}.weight" for i in range(depth)]
    ident = run.series("identical_frac")[hidden_w].astype(float)
    grad0 = float(run.steps["grad_norm"].iloc[0])
    return {"name": name, "rule": rule, "losses": losses, "final_loss": final, "pred": pred, "grad_norm_0": grad0,
            "diverged": not math.isfinite(final) or not all(math.isfinite(v) for v in losses),
            "identical_frac_final": float(ident.iloc[-1].min()) if len(ident) else float("nan")}


def run(config: Config, ctx: Context) -> Result:
    """Train every (activation, depth, init) and judge He vs Xavier, zero, N(0, 1), N(0, 0.01²)."""
    from gradwatch.lab.metrics import classification_report

    bad = [p for p in config.inits if p not in INITS]
    if bad or not {"he", "xavier"} <= set(config.inits) or 30 not in config.depths:
        raise ValueError(f"inits must be names in {INITS} including he and xavier (got {config.inits}), "
                         f"and depths must include 30 (got {config.depths})")
    data = digits(standardize=True)
    grid = [("relu", d) for d in config.depths] + [("tanh", d) for d in config.tanh_depths]
    runs: dict[tuple[str, int, str], dict] = {}
    with ctx.progress(len(grid) * len(config.inits), "activation × depth × init") as advance:
        for act, depth in grid:
            for policy in config.inits:
                runs[act, depth, policy] = _train(act, depth, policy, config, data, ctx)
                advance()

    def loss(act, depth, policy):
        return runs[act, depth, policy]["final_loss"]

    he30, xa30 = loss("relu", 30, "he"), loss("relu", 30, "xavier")
    checks = [
        check("ReLU, 30 layers: He init trains — final training loss ≤ ½ ln 10", he30 <= LN10 / 2,
              he_loss=he30, half_ln10=LN10 / 2),
        check("ReLU, 30 layers: Xavier init stalls — final training loss ≥ 0.95 ln 10", xa30 >= 0.95 * LN10,
              xavier_loss=xa30, ln10=LN10),
    ]
    if 22 in config.depths:
        he22, xa22 = loss("relu", 22, "he"), loss("relu", 22, "xavier")
        checks.append(check("ReLU, 22 layers: He init is ahead of Xavier (He et al. Fig. 2: both converge, He "
                            "earlier) — He's final loss < Xavier's", he22 < xa22, he_loss=he22, xavier_loss=xa22))
    if "zero" in config.inits:
        zeros = [runs[a, d, "zero"] for a, d in grid]
        ident = min(r["identical_frac_final"] for r in zeros)
        zl = min(r["final_loss"] for r in zeros)
        checks.append(check("zero init never breaks symmetry: every hidden weight matrix has all units identical "
                            "at the end (watcher identical_frac = 1) and the loss stays ≥ 0.95 ln 10, every run",
                            ident >= 1.0 and zl >= 0.95 * LN10, min_identical_frac=ident, min_loss=zl))
    if "normal" in config.inits:
        factors = {f"{a}-{d}": runs[a, d, "normal"]["grad_norm_0"] / runs[a, d, "he"]["grad_norm_0"] for a, d in grid}
        exploded = [runs[a, d, "normal"]["diverged"] or not math.isfinite(factors[f"{a}-{d}"])
                    or factors[f"{a}-{d}"] >= config.explode_factor for a, d in grid]
        finite = [f for f in factors.values() if math.isfinite(f)]
        checks.append(check(f"N(0, 1) explodes: every run diverges (non-finite loss) or its step-0 gradient norm is "
                            f"≥ {config.explode_factor:g}× He's at the same depth",
                            all(exploded), runs_exploded=f"{sum(exploded)}/{len(grid)}",
                            diverged=sum(runs[a, d, "normal"]["diverged"] for a, d in grid),
                            min_finite_factor=min(finite) if finite else float("nan")))
    if "small" in config.inits:
        sl = min(runs[a, d, "small"]["final_loss"] for a, d in grid)
        checks.append(check("N(0, 0.01²) vanishes: the loss stays ≥ 0.95 ln 10 at every depth (both activations)",
                            sl >= 0.95 * LN10, min_loss=sl))
    tables = {runs[a, 30, p]["name"]: classification_report(data.y_test, runs[a, 30, p]["pred"], labels=range(10))
              for a, d in grid if d == 30 for p in config.inits}
    table = {a: {str(d): {p: runs[a, d, p]["final_loss"] for p in config.inits}
                 for aa, d in grid if aa == a} for a in ("relu", "tanh") if any(aa == a for aa, _ in grid)}
    figures = [_figure(config, ctx, runs, grid, table)]
    result = Result(
        measurements={
            "final_loss": table,
            "grad_norm_step0": {a: {str(d): {p: runs[a, d, p]["grad_norm_0"] for p in config.inits}
                                    for aa, d in grid if aa == a} for a in table},
            "identical_frac_final": {a: {str(d): {p: runs[a, d, p]["identical_frac_final"] for p in config.inits}
                                         for aa, d in grid if aa == a} for a in table},
            "diverged": [runs[k]["name"] for k in runs if runs[k]["diverged"]],
            "accuracy_depth30": {k: t["accuracy"] for k, t in tables.items()},
            "init_rule_first_layer": {f"{a}-{p}": runs[a, d, p]["rule"] for a, d in grid if d == 30 for p in config.inits},
        },
        checks=checks, figures=figures, tables=tables,
        notes=(f"Final loss = cross-entropy on the whole training set after {config.steps} steps of SGD "
               f"(lr {config.lr:g}, momentum {config.momentum:g}, batch {config.batch}); null = non-finite "
               "(diverged or overflowed). Biases 0 for every policy. Inits by gradwatch.remedies.init.apply (zeros, normal 0.01 / 1, xavier_normal, "
               "he_normal, orthogonal with calculate_gain, lsuv: orthonormal then per-layer rescaling to unit "
               "output variance on 256 training inputs, Mishkin & Matas 2016). An MLP on digits stands in for He et "
               "al.'s ImageNet conv nets."),
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


def _figure(config: Config, ctx: Context, runs: dict, grid, table) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    acts = list(table)
    fig, axes = plt.subplots(2, len(acts), figsize=(8 * len(acts), 9.5), squeeze=False)
    for j, act in enumerate(acts):
        ax = axes[0, j]
        top = 30.0
        for k, p in enumerate(config.inits):
            if (act, 30, p) not in runs:
                continue
            ls = np.array(runs[act, 30, p]["losses"], dtype=float)
            ok = np.isfinite(ls) & (ls < top)
            xs = np.arange(len(ls))
            if ok.all() and len(ls) >= 10:
                ax.plot(xs[9:], np.convolve(ls, np.ones(10) / 10, mode="valid"), color=f"C{k}", label=p)
            else:
                ax.plot(xs, np.where(ok, ls, np.nan), color=f"C{k}", label=p)
                first = int(np.argmin(ok))
                ax.plot([first], [top], "x", color=f"C{k}", ms=10, mew=2)
                ax.annotate(f"{p}: loss {ls[first]:.2g} at step {first}", (first, top), xytext=(8, -14),
                            textcoords="offset points", color=f"C{k}", fontsize=8)
        ax.axhline(LN10, color="grey", ls=":", label="ln 10")
        ax.set(yscale="log", ylim=(None, top * 1.5), xlabel="step",
               ylabel=f"training loss (10-step mean; × = non-finite or > {top:g})",
               title=f"{act}, 30 layers" if (act, 30) in grid else f"{act}: no 30-layer run")
        ax.legend(fontsize=8, ncol=2)
        depths = sorted(int(d) for d in table[act])
        mat = np.array([[table[act][str(d)][p] for p in config.inits] for d in depths], dtype=float)
        ax = axes[1, j]
        ax.imshow(np.where(np.isfinite(mat), np.minimum(mat, 2 * LN10), 2 * LN10), cmap="RdYlGn_r",
                  vmin=0, vmax=LN10 * 1.2, aspect="auto")
        for r, d in enumerate(depths):
            for c, p in enumerate(config.inits):
                v = mat[r, c]
                ax.text(c, r, f"{v:.2f}" if np.isfinite(v) else "diverged", ha="center", va="center", fontsize=9)
        ax.set(xticks=range(len(config.inits)), xticklabels=config.inits, yticks=range(len(depths)),
               yticklabels=depths, xlabel="init", ylabel="depth (hidden layers)",
               title=f"{act}: final training loss (ln 10 = {LN10:.2f})")
    return ctx.savefig(fig, "initialisation")
