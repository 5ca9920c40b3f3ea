"""Depth, the moonshot: plain networks — no normalisation, no residual path — on digits, with
gradwatch choosing the initialisation (``init="critical"``: orthogonal at χ₁ = 1 for tanh, with a
fixed point q* chosen from the depth, ``--qstar auto``) and the learning rate, next to He and Xavier
init (same everything else).

The rate is not tuned per depth. :class:`gradwatch.calibrate.UpdateRatioController` measures,
every 10 steps, how far one step moves the network's outputs on a fixed probe batch (RMS change
of the logits, relative once they exceed 1) and rescales the rate to keep that at one target
(``--step 0.05``) at every depth; the first 10 steps are measured one by one so the starting
rate does not matter as long as it is low (``--lr0 1e-6``: from above, the first Adam steps at 1e-4
moved a 10,000-layer net so far that it never learned; from below the controller catches up in a
few steps at every depth). Adam, because a critically initialised deep tanh net has small activations
in its deep layers (q* ≈ 0.004–0.04; q_ℓ ≈ 1/2ℓ with σ_b = 0) and SGD gives those layers — the
read-out included — small steps.

    python benchmarks/depth.py                                   # depths 10, 100, 1000
    python benchmarks/depth.py --depths 3000 --inits critical --budget 600
    python benchmarks/depth.py --depths 3000 --inits critical --qstar none --lr0 1e-4   # as before

``--qstar`` moves the critical init off σ_b = 0 (where the tanh signal variance decays as 1/(2ℓ))
to a non-zero fixed point q* at χ₁ = 1 (``gw.init.apply(model, "critical", q_star=...)``);
``auto`` picks the largest q* whose predicted Jacobian spread, depth·(μ₂/μ₁² − 1), is at most 1
(Pennington et al. 2017), q* ≈ 1/√(8·depth): see :func:`q_star_for`.

Each run stops at ``--stop-at`` test accuracy (checked every 25 steps), at ``--max-steps`` or at
its wall-clock budget (He and Xavier get ``--baseline-budget``, 60 s: at depth ≥ 100 they are at or near chance).
Threads default to 1: on a shared 2-core machine two OpenMP threads that spin-wait for each
other were 25× slower per step than one. Prints the table and merges its rows into ``--out``
(a row replaces the one with the same depth, init, q* rule and ``--lr0``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time

import torch
from torch import nn


def data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=seed, stratify=y)
    Xtr, Xte = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(Xte, dtype=torch.float32)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-3  # standardise: the mean-field analysis assumes q ≈ 1
    return (Xtr - mu) / sd, torch.tensor(ytr), (Xte - mu) / sd, torch.tensor(yte)


def plain_tanh(depth: int, width: int) -> nn.Sequential:
    """``depth`` Linear layers (the last one the read-out), tanh between them, nothing else."""
    layers: list[nn.Module] = [nn.Linear(64, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


@functools.lru_cache(maxsize=1)
def _hermite():
    import numpy as np

    z, w = np.polynomial.hermite_e.hermegauss(201)
    return z, w / w.sum()


def spread_per_layer(q: float) -> float:
    """μ₂/μ₁² − 1 for tanh at variance q, μ_k = E[φ′(√q z)^{2k}]: what one orthogonal layer at χ₁ = 1
    adds to the variance of the squared singular values of the input–output Jacobian (Pennington,
    Schoenholz & Ganguli 2017: σ²_JJᵀ = L·(μ₂/μ₁² − 1 − s₁), s₁ = 0 for orthogonal weights)."""
    import numpy as np

    z, w = _hermite()
    d = (1.0 - np.tanh(math.sqrt(q) * z) ** 2) ** 2
    m1, m2 = float((d * w).sum()), float((d * d * w).sum())
    return m2 / m1 ** 2 - 1.0


def q_star_for(depth: int, rule: str) -> float | None:
    """The fixed point q* for ``--qstar``: ``none`` (σ_b = 0, no fixed point above 0), a number,
    ``C/L`` (q* = C/depth), or ``auto``: the q* at which the predicted spread depth·(μ₂/μ₁² − 1)
    of the Jacobian's squared singular values is 1, i.e. their standard deviation equals their mean
    (χ₁ = 1 keeps the mean at 1). For tanh μ₂/μ₁² − 1 = 8q*² + O(q*³), so q* ≈ 1/√(8·depth)."""
    if rule == "none":
        return None
    if rule.endswith("/L"):
        return float(rule[:-2]) / depth
    if rule != "auto":
        return float(rule)
    lo, hi = 1e-9, 10.0
    for _ in range(100):  # the spread grows with q*: bisect in log q
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if depth * spread_per_layer(mid) < 1.0 else (lo, mid)
    return math.sqrt(lo * hi)


@torch.no_grad()
def spectrum(depth: int, rule: str, a, d) -> dict:
    """The Jacobian of the last hidden pre-activation with respect to the first, at initialisation,
    for one training image (float64): mean and relative variance (var/mean²) of its squared
    singular values, next to the free-probability prediction: relative variances of free factors add,
    so Σ_ℓ (μ₂/μ₁² − 1) along the measured variances q_ℓ (Pennington et al. 2017; L·(μ₂/μ₁² − 1) once
    q_ℓ = q*), the std of the last pre-activation, and the share of the read-out's input (64 images)
    that differs between images, Σ‖x_i − x̄‖² / Σ‖x_i‖² (near 0: every image looks alike to it)."""
    import gradwatch as gw

    torch.manual_seed(a.seed)
    model = plain_tanh(depth, a.width)
    q_star = q_star_for(depth, rule)
    gw.init.apply(model, "critical", **({"q_star": q_star} if q_star is not None else {}))
    lin = [m for m in model if isinstance(m, nn.Linear)]
    h = lin[0].weight.double() @ d[0][0].double() + lin[0].bias.double()
    jac, pred = torch.eye(a.width, dtype=torch.float64), 0.0
    for m in lin[1:-1]:
        w = m.weight.double()
        jac = (w * (1.0 - torch.tanh(h) ** 2)) @ jac
        pred += spread_per_layer(float(h.pow(2).mean()))
        h = w @ torch.tanh(h) + m.bias.double()
    s2 = torch.linalg.svdvals(jac) ** 2
    x = model[:-1](d[0][:64])  # the read-out's inputs for 64 images: how much of them differs between images
    spread_frac = float((x - x.mean(0)).pow(2).sum() / x.pow(2).sum())
    return {"depth": depth, "qstar": rule, "q_star": q_star, "mean": float(s2.mean()),
            "between_inputs": spread_frac,
            "rel_var": float(s2.var() / s2.mean() ** 2), "predicted_rel_var": pred,
            "last_preact_std": float(h.std())}


def train_one(depth, init, a, d) -> dict:
    import gradwatch as gw
    from gradwatch.calibrate import UpdateRatioController

    Xtr, ytr, Xte, yte = d
    torch.manual_seed(a.seed)
    model = plain_tanh(depth, a.width)
    q_star = q_star_for(depth, a.qstar) if init == "critical" else None
    kw = {"q_star": q_star} if q_star is not None else {}
    gw.init.apply(model, {"critical": "critical", "he": "he_normal", "xavier": "xavier_normal"}[init], **kw)
    with torch.no_grad():  # the read-out's input, at initialisation: std of the last pre-activation
        pre_std = float(model[:-2](Xtr[:256]).std())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr0)
    ctl = UpdateRatioController(opt, a.step, every=10, settle=10, probe=(model, Xtr[:256]))
    gen = torch.Generator().manual_seed(a.seed)
    budget = a.baseline_budget if init != "critical" else a.budget
    row = {"depth": depth, "init": init, "qstar": a.qstar if init == "critical" else "none", "q_star": q_star,
           "last_preact_std_init": round(pre_std, 5), "lr0": a.lr0, "width": a.width, "batch": a.batch, "budget_s": budget,
           "reached": {}, "curve": []}
    t0 = time.perf_counter()
    s, acc, loss = 0, 0.0, float("nan")
    while s < a.max_steps and time.perf_counter() - t0 < budget:
        idx = torch.randint(0, len(Xtr), (a.batch,), generator=gen)
        loss_t = nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss_t.backward()
        ctl.step()
        s += 1
        loss = float(loss_t.detach())
        if s % 25 == 0:
            with torch.no_grad():
                acc = float((model(Xte).argmax(1) == yte).float().mean())
            el = time.perf_counter() - t0
            row["curve"].append((s, round(acc, 4), round(loss, 4), round(ctl.lr, 8), round(el, 1)))
            for level in (0.9, 0.95):
                if acc >= level and str(level) not in row["reached"]:
                    row["reached"][str(level)] = {"step": s, "seconds": round(el, 1)}
            if acc >= a.stop_at or not math.isfinite(loss):
                break
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc = float((model(Xte).argmax(1) == yte).float().mean())
    row.update(test_accuracy=acc, final_loss=loss, steps=s, seconds=seconds, s_per_step=seconds / max(s, 1),
               lr_final=ctl.lr, step_ratio_last=ctl.history[-1][1] if ctl.history else None)
    return row


def save(path: str, row: dict) -> None:
    """Merge ``row`` into the JSON list at ``path``: it replaces the row with the same depth, init,
    q* rule and starting rate (older rows count as ``none`` and 1e-4); every other row is kept."""
    try:
        with open(path) as f:
            rows = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        rows = []
    key = lambda r: (r["depth"], r["init"], r.get("qstar", "none"), r.get("lr0", 1e-4))  # noqa: E731
    rows = [r for r in rows if key(r) != key(row)] + [row]
    rows.sort(key=lambda r: (r["depth"], r["init"] != "critical", r["init"], r.get("qstar", "none")))
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="10,100,1000")
    ap.add_argument("--inits", default="critical,he,xavier")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--step", type=float, default=0.05, help="output change per step the controller keeps")
    ap.add_argument("--lr0", type=float, default=1e-6,
                    help="starting rate; the controller raises it ≤ 4× per step over the first 10 steps. Start "
                         "low: at 10,000 layers the first Adam steps at 1e-4 wrecked the net before it came down")
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--budget", type=float, default=300.0, help="wall-clock seconds per run")
    ap.add_argument("--baseline-budget", type=float, default=60.0, help="wall-clock seconds per He/Xavier run")
    ap.add_argument("--stop-at", type=float, default=0.95, help="stop once test accuracy reaches this")
    ap.add_argument("--qstar", default="auto",
                    help="critical init's fixed point q*: none (σ_b = 0), auto (depth·(μ₂/μ₁²−1) = 1, "
                         "q* ≈ 1/√(8·depth)), C/L, or a number")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="depth-results.json")
    ap.add_argument("--spectrum", default=None, metavar="RULES",
                    help="only print the Jacobian spectrum at initialisation for these --qstar rules "
                         "(e.g. none,1/L,auto) at each depth, and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = data(a.seed)
    console = Console(width=160)
    if a.spectrum:
        for depth in (int(x) for x in a.depths.split(",")):
            for rule in a.spectrum.split(","):
                r = spectrum(depth, rule, a, d)
                console.print(f"depth {depth:>5} q*={rule:>5} ({r['q_star'] or 0:.3g}): squared singular values "
                              f"mean {r['mean']:.3g}, var/mean² {r['rel_var']:.3g} (predicted "
                              f"{r['predicted_rel_var']:.3g}); last pre-activation std {r['last_preact_std']:.3g}; "
                              f"between-image share of the read-out input {r['between_inputs']:.3g}",
                              highlight=False)
        return
    rows = []
    for depth in (int(x) for x in a.depths.split(",")):
        for init in a.inits.split(","):
            r = train_one(depth, init, a, d)
            rows.append(r)
            console.print(f"depth {depth:>5} {init:>8} q*={r['qstar']}: acc {r['test_accuracy']:.1%} after "
                          f"{r['steps']} steps, {r['seconds']:.0f} s ({r['s_per_step']:.3f} s/step), "
                          f"reached {r['reached']}", highlight=False)
            save(a.out, r)
    t = Table(title=f"plain tanh MLP, width {a.width}, digits, Adam, batch {a.batch}; rate kept at "
                    f"{a.step:g} output change per step by the controller; {a.threads} thread(s), shared CPU")
    for c in ("depth", "init", "q* rule", "q*", "test acc", "steps", "seconds", "s/step", "90% at step (s)",
              "95% at step (s)", "final lr"):
        t.add_column(c, justify="right")
    for r in rows:
        at = lambda k: (f"{r['reached'][k]['step']} ({r['reached'][k]['seconds']:.0f})"  # noqa: E731
                        if k in r["reached"] else "-")
        t.add_row(str(r["depth"]), r["init"], r["qstar"], f"{r['q_star']:.2g}" if r["q_star"] else "-",
                  f"{r['test_accuracy']:.1%}", str(r["steps"]), f"{r['seconds']:.0f}",
                  f"{r['s_per_step']:.3f}", at("0.9"), at("0.95"), f"{r['lr_final']:.2g}")
    console.print(t)


if __name__ == "__main__":
    main()
