"""e12 — Clipping methods at a learning rate that diverges unclipped.

Gradient descent is stable along a direction of curvature λ only if lr·λ < 2, so the experiment
first measures λ_max, the top eigenvalue of the loss Hessian of a deep ReLU MLP at init (power
iteration on Hessian-vector products), then trains unclipped with plain SGD at lr = k · 2/λ_max
for k = 2, 4, 8, … and keeps the first k at which the run diverges (a non-finite loss, or a
final loss at or above the start). The same run, from the same weights on the same batches,
is repeated with clipping by value, by global norm (Pascanu et al. 2013), AutoClip (Seetharaman
et al. 2020, p = 10) and adaptive gradient clipping (Brock et al. 2021, unit-wise, final layer
excluded), all from ``gradwatch.remedies.clip``. The norm threshold is derived, not tuned: the
initial gradient norm g₀ divided by k, i.e. the step length a stable learning rate (2/λ_max)
would take; the value threshold spreads it evenly over the P weights (g₀/(k√P)). A few other
thresholds are run as a sensitivity sweep (reported, not judged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "clipping-methods"
CLAIM = ("At a learning rate where unclipped SGD diverges, clipping by norm, AutoClip and adaptive "
         "gradient clipping keep training finite and reduce the loss.")
SOURCE = ("Pascanu, Mikolov & Bengio 2013, §3.2; Seetharaman et al. 2020 (AutoClip); "
          "Brock, De, Smith & Simonyan 2021 (NFNets), §4")

METHODS = ("none", "value", "norm", "autoclip", "agc")


@dataclass(frozen=True)
class Config:
    depth: int = 6                          # hidden ReLU layers (He-initialised)
    width: int = 64                         # hidden width
    lr_factors: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # k tried in order: lr = k · 2/λ_max
    steps: int = 300                        # SGD steps per method
    batch: int = 64                         # mini-batch size
    hessian_samples: int = 512              # training samples for λ_max
    power_iters: int = 30                   # power-iteration steps for λ_max
    autoclip_percentile: float = 10.0       # AutoClip's p (Seetharaman et al.: 10)
    agc_lambda: float = 0.01                # AGC's λ (Brock et al.'s value for their main models)
    norm_sweep: tuple[float, ...] = (0.5, 1.0, 10.0)         # extra norm thresholds, × g₀ (Pascanu: 0.5–10× the mean norm)
    agc_sweep: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16)  # extra AGC λ values (the paper's range 0.01–0.16)
    every: int = 25                         # watcher: slow statistics every `every` steps


FULL = {"steps": 2000}


def make_mlp(depth: int, width: int, inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """A ReLU MLP with He-normal weights and zero biases (so nothing vanishes at init).

    Example:
        >>> len(make_mlp(2, 8))
        5
    """
    layers: list[nn.Module] = []
    n = inputs
    for _ in range(depth):
        layers += [nn.Linear(n, width), nn.ReLU()]
        n = width
    layers.append(nn.Linear(n, classes))
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def top_hessian_eigenvalue(model: nn.Module, X: torch.Tensor, y: torch.Tensor, iters: int,
                           generator: torch.Generator) -> float:
    """λ_max of the cross-entropy loss Hessian at the current weights, by power iteration.

    Example:
        >>> model = nn.Linear(3, 2, bias=False)
        >>> lam = top_hessian_eigenvalue(model, torch.randn(50, 3), torch.randint(0, 2, (50,)), 20,
        ...                              torch.Generator().manual_seed(0))
        >>> lam > 0
        True
    """
    params = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(model(X), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, generator=generator) for p in params]
    lam = 0.0
    for _ in range(iters):
        norm = math.sqrt(sum(float((a * a).sum()) for a in v))
        v = [a / norm for a in v]
        hv = torch.autograd.grad(grads, params, v, retain_graph=True)
        lam = sum(float((a * b).sum()) for a, b in zip(hv, v))
        v = [h.detach() for h in hv]
    return lam


def _transform(method: str, value: float):
    from gradwatch.remedies import clip

    if method == "value":
        return clip.clip_by_value(value)
    if method == "norm":
        return clip.clip_by_global_norm(value)
    if method == "autoclip":
        return clip.autoclip(value)
    if method == "agc":
        return clip.adaptive_grad_clip(value)
    return None


def run(config: Config, ctx: Context) -> Result:
    import numpy as np

    from gradwatch.lab.metrics import classification_report
    from gradwatch.remedies.clip import attach

    data = digits()
    F = nn.functional
    init = make_mlp(config.depth, config.width, classes=data.classes)
    state = {key: v.clone() for key, v in init.state_dict().items()}
    n_params = sum(p.numel() for p in init.parameters())
    lam = top_hessian_eigenvalue(init, data.X_train[: config.hessian_samples], data.y_train[: config.hessian_samples],
                                 config.power_iters, ctx.generator(2))
    first = next(batches(len(data.X_train), config.batch, ctx.generator(1)))
    init.zero_grad()
    F.cross_entropy(init(data.X_train[first]), data.y_train[first]).backward()
    g0 = float(torch.nn.utils.get_total_norm([p.grad for p in init.parameters()]))
    with torch.no_grad():
        start = float(F.cross_entropy(init(data.X_train), data.y_train))

    def train(name: str, lr: float, method: str = "none", value: float = 0.0) -> dict:
        model = make_mlp(config.depth, config.width, classes=data.classes)
        model.load_state_dict(state)                                        # every run starts from the same weights
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        order = batches(len(data.X_train), config.batch, ctx.generator(1))  # and sees the same batches
        run_name = name.replace("×", "x").replace(" λ=", "-")
        with ctx.watch(model, opt, run_name, every=config.every):
            transform = _transform(method, value)
            handle = attach(opt, transform, model) if transform else None  # after the watcher: it sees raw grads
            for _ in range(config.steps):
                idx = next(order)
                loss = F.cross_entropy(model(data.X_train[idx]), data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if not torch.isfinite(loss):
                    break
            if handle:
                handle.remove()
        with torch.no_grad():
            whole = float(F.cross_entropy(model(data.X_train), data.y_train))
            pred = model(data.X_test).argmax(1)
        steps = ctx.load(run_name).steps
        gn, losses = steps["grad_norm"].to_numpy(), steps["loss"].to_numpy()
        tail = losses[-max(1, config.steps // 10):]  # a run that hit a non-finite loss ends with it
        final = float(np.mean(tail)) if len(losses) == config.steps else float("nan")
        return {"final": final, "whole": whole, "pred": pred, "loss": losses, "gn": gn,
                "max_gn": float(np.nanmax(gn[np.isfinite(gn)])) if np.isfinite(gn).any() else float("nan")}

    search: dict = {}
    k, unclipped = None, None
    with ctx.progress(len(config.lr_factors), "unclipped: looking for a diverging lr") as advance:
        for factor in config.lr_factors:
            out = train(f"none-k{factor:g}", factor * 2.0 / lam)
            search[f"{factor:g}"] = out["final"]
            advance()
            if not math.isfinite(out["final"]) or out["final"] >= start:
                k, unclipped = factor, out
                break
    k = k if k is not None else config.lr_factors[-1]  # none diverged: judge the largest (the check fails)
    unclipped = unclipped or out
    lr = k * 2.0 / lam
    c_norm = g0 / k
    runs = [("value", "value", c_norm / math.sqrt(n_params)), ("norm", "norm", c_norm),
            ("autoclip", "autoclip", config.autoclip_percentile), ("agc", "agc", config.agc_lambda)]
    runs += [(f"norm×{f:g}g0", "norm", f * g0) for f in config.norm_sweep]
    runs += [(f"agc λ={a:g}", "agc", a) for a in config.agc_sweep]

    m: dict = {"lambda_max": lam, "lr_factor": k, "lr": lr, "stable_lr": 2.0 / lam, "g0": g0, "start_loss": start,
               "unclipped_search": search, "thresholds": {"none": 0.0, **{name: value for name, _, value in runs}},
               "final_loss": {}, "final_loss_whole_set": {}, "finite": {}, "max_grad_norm": {}, "accuracy": {}}
    tables, curves = {}, {}

    def record(name: str, out: dict) -> None:
        m["final_loss"][name] = out["final"]
        m["final_loss_whole_set"][name] = out["whole"]
        m["finite"][name] = bool(math.isfinite(out["final"]))
        m["max_grad_norm"][name] = out["max_gn"]
        tables[name] = classification_report(data.y_test, out["pred"], labels=range(data.classes))
        m["accuracy"][name] = tables[name]["accuracy"]
        curves[name] = (out["loss"], out["gn"])

    record("none", unclipped)
    with ctx.progress(len(runs), "clipping methods") as advance:
        for name, method, value in runs:
            record(name, train(name, lr, method, value))
            advance()
    _figure(ctx, config, m, curves)
    return Result(measurements=m, checks=_checks(m), tables=tables,
                  notes=(f"λ_max from {config.power_iters} power iterations on {config.hessian_samples} training samples; "
                         "unclipped_search = final loss of the unclipped run at each k tried (runs none-k…); "
                         "clipping from gradwatch.remedies.clip (clip_by_value, clip_by_global_norm, autoclip, "
                         "adaptive_grad_clip with the final layer excluded), attached after the watcher so the "
                         "recorded grad_norm is the raw, unclipped norm. A run stops at its first non-finite loss "
                         "(final loss NaN). final_loss = mean mini-batch loss over the last 10% of steps (robust to "
                         "one late spike); final_loss_whole_set = the whole training set's loss at the end; "
                         "start_loss = the whole set's at init. Sweep runs (norm×…, agc λ=…) are reported only."))


def _checks(m: dict) -> list:
    final, start = m["final_loss"], m["start_loss"]
    checks = [check("unclipped SGD diverges at some lr = k · 2/λ_max, k in the tried list: non-finite or loss ≥ start",
                    not math.isfinite(final["none"]) or final["none"] >= start,
                    k=m["lr_factor"], final_loss=final["none"], start_loss=start, lr=m["lr"],
                    lambda_max=m["lambda_max"])]
    for name in ("norm", "autoclip", "agc"):
        checks.append(check(f"{name}: finishes finite with loss below the start",
                            math.isfinite(final[name]) and final[name] < start,
                            final_loss=final[name], start_loss=start, threshold=m["thresholds"][name]))
    return checks


def _figure(ctx: Context, config: Config, m: dict, curves: dict) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    main = [n for n in METHODS if n in curves]
    for name in main:
        loss, gn = curves[name]
        ax[0].plot(np.where(np.isfinite(loss), loss, np.nan), lw=0.8, label=name)
        ax[1].plot(np.where(np.isfinite(gn), gn, np.nan), lw=0.8, label=name)
    ax[0].axhline(m["start_loss"], color="grey", ls=":", lw=1)
    ax[0].set(xlabel="step", ylabel="training loss (batch)", yscale="log",
              title=f"SGD at lr = {m['lr_factor']:g}·2/λ_max = {m['lr']:.3g}")
    ax[1].set(xlabel="step", ylabel="raw gradient norm", yscale="log", title="gradient norm before clipping")
    names = list(m["final_loss"])
    finite = [math.isfinite(m["final_loss"][n]) for n in names]
    vals = [m["final_loss"][n] if ok else m["start_loss"] for n, ok in zip(names, finite)]
    colors = ["C3" if not ok or v >= m["start_loss"] else "C2" for ok, v in zip(finite, vals)]
    ax[2].barh(range(len(names)), vals, color=colors, hatch=[("" if ok else "//") for ok in finite])
    for i, (n, ok) in enumerate(zip(names, finite)):
        text = f"acc {m['accuracy'][n]:.2f}" + ("" if ok else ", non-finite")
        ax[2].text(1.01, i, text, va="center", fontsize=7, transform=ax[2].get_yaxis_transform())
    ax[2].set_yticks(range(len(names)), names, fontsize=8)
    ax[2].axvline(m["start_loss"], color="grey", ls=":", lw=1)
    ax[2].set(xlabel="final training loss, last 10% of steps (hatched: non-finite)", xscale="log",
              title="final loss (dotted: at init) and test accuracy")
    ax[0].set_ylim(top=1e4)
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=8)
    ctx.savefig(fig, "clipping_methods")
