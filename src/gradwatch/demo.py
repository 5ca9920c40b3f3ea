"""``gradwatch demo``: a 20-layer sigmoid network on scikit-learn's digits, watched and
diagnosed; the first remedy applied to the same network; retrained on the same batches; both
runs compared in one report.

Example:
    >>> # run_demo("gradwatch-runs/demo", steps=300)
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

DEPTH, WIDTH = 20, 64


def build_model(seed: int = 0) -> nn.Sequential:
    """The broken network: 20 sigmoid hidden layers, PyTorch's default init, no norm, no skips."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(64, WIDTH), nn.Sigmoid()]
    for _ in range(DEPTH - 1):
        layers += [nn.Linear(WIDTH, WIDTH), nn.Sigmoid()]
    layers.append(nn.Linear(WIDTH, 10))
    return nn.Sequential(*layers)


def load_data(seed: int = 0):
    """Digits (8×8, 10 classes) split 75/25, scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=seed, stratify=y)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return f(Xtr), torch.tensor(ytr), f(Xte), torch.tensor(yte)


def apply_remedy(model: nn.Module, remedy_id: str) -> nn.Module:
    """Apply a prescribed remedy to a copy of the model, exactly as its trial did."""
    from .trials import build_arm

    probe = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return build_arm(remedy_id, model, probe, steps=1).model


def batches_for_trials(data, n: int = 16, batch: int = 64, seed: int = 1):
    """Fixed training batches the remedies are tried on."""
    Xtr, ytr, _, _ = data
    gen = torch.Generator().manual_seed(seed)
    return [(Xtr[i], ytr[i]) for i in (torch.randint(0, len(Xtr), (batch,), generator=gen) for _ in range(n))]


def train(model, data, out: Path, steps: int, label: str, progress, seed: int = 0):
    """Train with SGD+momentum on fixed batches, watched; returns (run, test accuracy)."""
    from .record import load
    from .watcher import watch

    Xtr, ytr, Xte, yte = data
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    task = progress.add_task(label, total=steps)
    with watch(model, opt, out=out, every=10, overwrite=True) as w:  # the demo's own runs, made afresh
        for _ in range(steps):
            idx = torch.randint(0, len(Xtr), (64,), generator=gen)
            loss = nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            progress.advance(task)
        with torch.no_grad():
            acc = float((model(Xte).argmax(1) == yte).float().mean())
        w.set_meta(metrics={"test_accuracy": acc, "final_loss": float(loss.detach())}, label=label)
    return load(out), acc


def run_demo(out: str | Path = "gradwatch-runs/demo", steps: int = 300, console=None) -> dict:
    """Diagnose the broken network, apply the first remedy, retrain, report before/after.

    Returns a dict with both accuracies, the remedy applied and the report path.

    Example:
        >>> # result = run_demo("gradwatch-runs/demo"); result["accuracy_after"]  -> 0.938
    """
    # a 64-wide network: one thread is fastest (more threads only add synchronisation, and
    # oversubscribe a machine whose other cores are busy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(out, steps, console)
    finally:
        torch.set_num_threads(threads)


def _run_demo(out, steps, console):
    from rich.console import Console
    from rich.progress import Progress

    from .diagnosis import diagnose
    from .report.html import write_report
    from .report.terminal import print_diagnosis, print_layer_table

    console = console or Console()
    out = Path(out)
    data = load_data()
    broken = build_model()
    initial = copy.deepcopy(broken)
    console.rule("gradwatch demo: a 20-layer sigmoid network on digits")
    with Progress(console=console, transient=True) as progress:
        run_before, acc_before = train(broken, data, out / "before", steps, "training the broken network", progress)
    print_layer_table(run_before, console=console)
    console.print("trying the top remedies on copies of the network (same batches, same seed)…")
    opt = torch.optim.SGD(initial.parameters(), lr=0.05, momentum=0.9)
    diag_before = diagnose(run_before, trial=dict(model=initial, optimizer=opt, batches=batches_for_trials(data),
                                                  steps=min(steps, 100)))
    print_diagnosis(diag_before, console=console, run=run_before)
    remedy = next((r.id for f in diag_before.findings if f.serious for r in f.remedies
                   if r.trial is not None and r.trial.improved), None)
    result = {"accuracy_before": acc_before, "remedy": remedy, "report": None, "accuracy_after": None}
    if remedy is None:
        console.print("no remedy to apply: the run is healthy")
        path = write_report(run_before, diag_before, out / "report.html")
    else:
        console.rule(f"applying the first remedy: {remedy}")
        fixed = apply_remedy(initial, remedy)
        with Progress(console=console, transient=True) as progress:
            run_after, acc_after = train(fixed, data, out / "after", steps, f"retraining with {remedy}", progress)
        diag_after = diagnose(run_after)
        print_diagnosis(diag_after, console=console, run=run_after)
        result["accuracy_after"] = acc_after
        path = write_report(run_before, diag_before, out / "report.html",
                            compare=(run_after, diag_after, f"after {remedy}"))
        console.print(f"test accuracy: before {acc_before:.1%} → after {acc_after:.1%}")
    result["report"] = str(path)
    console.print(f"report: {path}")
    return result
