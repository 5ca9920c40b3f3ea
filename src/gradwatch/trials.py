"""Trials: a prescription nobody tried is a guess, so gradwatch tries it.

``trial(model, optimizer, batches, ...)`` copies the model and the optimizer's settings, applies
each remedy to its own copy, trains every copy K steps on the same batches with the same seed,
and measures what changed against the untouched copy: the loss after K steps, the gradient flow
(δ at the first layer over δ at the last, in decades) and the median update/weight ratio.
The user's model and optimizer are never modified.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.Sigmoid(), nn.Linear(16, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> batches = [(torch.randn(32, 4), torch.randint(0, 2, (32,))) for _ in range(4)]
    >>> res = trial(model, opt, batches, remedies=["use_he_init"], steps=8)
    >>> [r.remedy for r in res]
    ['baseline', 'use_he_init']
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

LossFn = Callable[[Any, Any], torch.Tensor]


@dataclass
class Arm:
    """One copy's training recipe: model, optimizer factory, per-step extras.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
        >>> arm = build_arm("use_relu_with_he_init", model, torch.optim.SGD(model.parameters(), lr=0.1), steps=10)
        >>> type(arm.model[1]).__name__, type(model[1]).__name__   # a copy; the model is untouched
        ('ReLU', 'Sigmoid')
    """

    model: nn.Module
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    step_remedy: Any = None    # a :class:`gradwatch.inject.StepRemedy`, run before every step
    guard: bool = False


@dataclass
class TrialResult:
    """What K steps of one remedy measured (``baseline`` is the untouched copy).

    Example:
        >>> # base, he = gw.trial(model, opt, batches, ["use_he_init"], steps=50)
        >>> # he.loss < base.loss, he.flow_decades   -> (True, -0.3)
    """

    remedy: str
    loss: float                # mean loss over the last steps
    flow_decades: float        # log10(δ first layer / δ last layer); 0 is perfect flow
    update_ratio: float        # median ‖Δw‖/‖w‖ over layers and measured steps
    losses: list[float] = field(default_factory=list)
    error: str | None = None   # set when the remedy could not be applied to this model


def _optimizer_factory(opt: torch.optim.Optimizer, cls=None, **override):
    cls = cls or type(opt)
    hyper = {k: v for k, v in opt.defaults.items() if k not in ("params",)}
    hyper.update(override)
    if "lr" in hyper and not override.get("lr"):
        hyper["lr"] = float(opt.param_groups[0]["lr"])
    if cls is not type(opt):
        hyper = {k: v for k, v in hyper.items() if k in ("lr", "weight_decay")}
    return lambda params: cls(params, **hyper)


def build_arm(remedy: str, model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> Arm:
    """A remedy applied to a copy of the model: the copy, its optimizer factory and loop extras.

    Raises:
        ValueError: no trial exists for this remedy id (see :data:`TRIABLE`).

    Example:
        >>> # arm = build_arm("use_he_init", model, opt, steps=50); arm.model is not model
    """
    from . import remedies as R
    from .inject import MODEL_REMEDIES, StepRemedy, apply_to_model, parse_remedy, trial_spec

    m = copy.deepcopy(model)
    make = _optimizer_factory(opt)
    if remedy in MODEL_REMEDIES:  # the same code as an injected script run, on the copy
        apply_to_model(remedy, m)
    elif remedy == "add_batchnorm":
        m = R.architecture.insert_norm(m, norm="batch") or m
    elif remedy == "add_residual":
        m = R.architecture.add_residual(m) or m
    elif remedy in ("use_lstm", "use_gru"):
        m = R.architecture.rnn_to_lstm(m, cell="lstm" if remedy == "use_lstm" else "gru") or m
    elif remedy == "use_pre_ln":
        R.architecture.use_pre_ln(m)
    elif remedy == "use_adam":
        make = _optimizer_factory(opt, cls=torch.optim.Adam, lr=1e-3)
    elif remedy == "weight_decay":
        make = _optimizer_factory(opt, weight_decay=1e-4)
    elif remedy in ("reduce_lr", "increase_lr", "clip_grad_norm", "add_warmup"):
        # the same step remedy as an injected script run: one rule for the rate, the clip, the warmup
        return Arm(m, make, step_remedy=StepRemedy(remedy, **parse_remedy(trial_spec(remedy, steps))[1]))
    elif remedy == "guard":
        return Arm(m, make, guard=True)
    elif remedy != "baseline":
        raise ValueError(f"no trial exists for remedy {remedy!r}")
    return Arm(m, make)


TRIABLE = ("use_relu_with_he_init", "use_he_init", "break_symmetry", "critical_init", "orthogonal_init",
           "irnn_init", "fixup_init", "add_batchnorm", "add_residual", "use_lstm", "use_gru", "use_pre_ln", "use_leaky_relu",
           "zero_bias_init", "reduce_lr", "increase_lr", "use_adam", "weight_decay", "clip_grad_norm",
           "add_warmup", "guard")


def _run_arm(name: str, arm: Arm, batches: Sequence, loss_fn: LossFn, steps: int, seed: int) -> TrialResult:
    from .diagnosis.context import Context
    from .diagnosis.flow import across_layers
    from .record import load
    from .watcher import watch

    torch.manual_seed(seed)
    model = arm.model
    model.train()
    opt = arm.make_optimizer(model.parameters())
    losses: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gradwatch-trial-") as out:
        with watch(model, opt, out=out, every=max(1, steps // 5), stats_budget=None, guard=arm.guard):
            for i in range(steps):
                x, y = batches[i % len(batches)]
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                if arm.step_remedy is not None:
                    arm.step_remedy.before_step(opt)
                opt.step()
                losses.append(float(loss.detach()))
        ctx = Context(load(out))
        span = across_layers(ctx)
        ratio = ctx.update_ratio()
    # judged by how the copy ends: a guarded arm that skipped a NaN batch still ends finite
    tail = losses[-max(1, steps // 10):]
    good = [v for v in tail if math.isfinite(v)]
    final = float(sum(good) / len(good)) if good and 2 * len(good) > len(tail) else float("nan")
    med_ratio = float(ratio.stack().median()) if not ratio.empty else float("nan")
    return TrialResult(name, final, span.log10_ratio if span else float("nan"), med_ratio, losses)


def trial(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Sequence, remedies: Sequence[str],
          loss_fn: LossFn | None = None, steps: int = 50, seed: int = 0) -> list[TrialResult]:
    """Try each remedy on its own copy for ``steps`` steps, beside an untouched copy.

    Args:
        model: the user's model (left untouched).
        optimizer: its optimizer; each copy gets a fresh one of the same class and settings.
        batches: a sequence of ``(input, target)`` pairs, replayed in order (cycled).
        remedies: remedy ids (see :data:`TRIABLE`).
        loss_fn: ``loss_fn(output, target)``; default cross-entropy.
        steps: training steps per copy.
        seed: the same seed for every copy.

    Returns:
        ``[baseline, *remedies]`` as :class:`TrialResult`, in the order given; a remedy that
        cannot be applied to this model has ``error`` set and NaN measurements.

    Example:
        >>> # res = gw.trial(model, opt, batches, ["use_he_init", "add_batchnorm"], steps=50)
    """
    if not batches:
        raise ValueError("trial needs at least one (input, target) batch to train on")
    loss_fn = loss_fn or nn.functional.cross_entropy
    results = [_run_arm("baseline", build_arm("baseline", model, optimizer, steps), batches, loss_fn, steps, seed)]
    for r in remedies:
        try:
            arm = build_arm(r, model, optimizer, steps)
        except Exception as e:  # noqa: BLE001 - one remedy that does not fit must not stop the others
            nan = float("nan")
            results.append(TrialResult(r, nan, nan, nan, error=f"{type(e).__name__}: {e}"))
            continue
        results.append(_run_arm(r, arm, batches, loss_fn, steps, seed))
    return results


def rank_remedies(diagnosis, model, optimizer, batches, loss_fn=None, steps: int = 50, seed: int = 0,
                  top: int = 3):
    """Trial the first ``top`` triable remedies of every serious finding; write the measured
    ``trial`` into each remedy and reorder each finding's remedies by loss after ``steps``.

    Example:
        >>> # d = gw.diagnose("runs/x"); rank_remedies(d, model, opt, batches); print(d.to_json())
    """
    from .findings import Trial

    cache: dict[str, TrialResult] = {}
    wanted = []
    for f in diagnosis.findings:
        if f.serious:
            wanted += [r.id for r in f.remedies if r.id in TRIABLE][:top]
    todo = [r for r in dict.fromkeys(wanted)]
    if not todo:
        return diagnosis
    results = trial(model, optimizer, batches, todo, loss_fn=loss_fn, steps=steps, seed=seed)
    base = results[0]
    for r in results[1:]:
        cache[r.remedy] = r
    metric = f"loss after {steps} steps"
    for f in diagnosis.findings:
        for rem in f.remedies:
            res = cache.get(rem.id)
            if res is not None and res.error is None:
                rem.trial = Trial(metric=metric, before=base.loss, after=res.loss)

        def key(rem):  # measured improvements first, then untried, then measured harm
            t = rem.trial
            if t is None:
                return (1, 0.0)
            return (0, t.after) if t.improved else (2, t.after if math.isfinite(t.after) else math.inf)

        f.remedies.sort(key=key)
    return diagnosis
