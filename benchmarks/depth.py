"""Depth, the moonshot: plain networks — no normalisation, no residual path — on digits, with
gradwatch choosing the initialisation (``init="critical"``: orthogonal at χ₁ = 1 for tanh) and the
learning rate (from the depth and the measured update ratio: :func:`gradwatch.calibrate_lr`
aims each layer's step at ``1e-2 / depth`` of its weights, so the function as a whole moves
about the same amount per step at every depth), next to He and Xavier init.

    python benchmarks/depth.py                     # depths 10, 100, 1000
    python benchmarks/depth.py --depths 10,100,1000,3000 --steps 400

Prints test accuracy, steps and seconds per depth and init (a rich table) and writes
``depth-results.json``.
"""

from __future__ import annotations

import argparse
import json
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
    layers: list[nn.Module] = [nn.Linear(64, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train_one(depth, width, init, steps, target_acc, seed, d):
    import gradwatch as gw

    Xtr, ytr, Xte, yte = d
    torch.manual_seed(seed)
    model = plain_tanh(depth, width)
    gw.init.apply(model, {"critical": "critical", "he": "he_normal", "xavier": "xavier_normal"}[init])
    gen = torch.Generator().manual_seed(seed)
    batches = [(Xtr[i], ytr[i]) for i in (torch.randint(0, len(Xtr), (128,), generator=gen) for _ in range(4))]
    make = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)  # noqa: E731
    t0 = time.perf_counter()
    try:
        lr = gw.calibrate_lr(model, make, batches, target=1e-2 / depth, steps=2, rounds=3)
    except ValueError:
        lr = float("nan")
    opt = make(model.parameters(), lr if lr == lr else 1e-3)
    reached, acc = None, 0.0
    for s in range(steps):
        idx = torch.randint(0, len(Xtr), (128,), generator=gen)
        loss = nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (s + 1) % 25 == 0 or s == steps - 1:
            with torch.no_grad():
                acc = float((model(Xte).argmax(1) == yte).float().mean())
            if reached is None and acc >= target_acc:
                reached = s + 1
    return {"depth": depth, "init": init, "lr": lr, "test_accuracy": acc, "steps_to_target": reached,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="10,100,1000")
    ap.add_argument("--inits", default="critical,he,xavier")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--target", type=float, default=0.95, help="accuracy whose first step is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="depth-results.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = data(a.seed)
    rows = []
    jobs = [(int(x), i) for x in a.depths.split(",") for i in a.inits.split(",")]
    with Progress() as progress:
        task = progress.add_task("training", total=len(jobs))
        for depth, init in jobs:
            progress.update(task, description=f"depth {depth}, {init} init")
            rows.append(train_one(depth, a.width, init, a.steps, a.target, a.seed, d))
            progress.advance(task)
    t = Table(title=f"plain tanh MLP, width {a.width}, digits, {a.steps} SGD steps, lr calibrated to 1e-2/depth")
    for c in ("depth", "init", "lr", "test accuracy", f"steps to {a.target:.0%}", "seconds"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(str(r["depth"]), r["init"], f"{r['lr']:.3g}", f"{r['test_accuracy']:.1%}",
                  str(r["steps_to_target"] or "-"), f"{r['seconds']:.0f}")
    Console().print(t)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
