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
    step_remedy: Any = None    # has ``before_step(optimizer)``, run before every step
    guard: bool = False


class _StepRemedies:
    """Several step remedies of one combination, in the order parse_combination gives them."""

    def __init__(self, items: list) -> None:
        self.items = items

    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        for item in self.items:
            item.before_step(optimizer)


def _combined_arm(spec: str, model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> Arm:
    """``use_he_init+increase_lr``: the model remedy's arm, with the step remedies before every
    step (the same :func:`~gradwatch.inject.parse_combination` rules as ``gradwatch run --remedy``)."""
    from .inject import split_combination

    model_remedy, items, guard = split_combination(spec)
    arm = build_arm(model_remedy or "baseline", model, opt, steps)
    arm.step_remedy = _StepRemedies(items) if items else None
    arm.guard = guard
    return arm


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

    ``remedy`` may combine one model remedy with step remedies: ``use_he_init+increase_lr``.

    Raises:
        ValueError: no trial exists for this remedy id (see :data:`TRIABLE`), or the
            combination cannot be applied together.

    Example:
        >>> # arm = build_arm("use_he_init", model, opt, steps=50); arm.model is not model
    """
    from . import remedies as R

    if "+" in remedy:
        return _combined_arm(remedy, model, opt, steps)
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
        remedies: remedy ids (see :data:`TRIABLE`), or one model remedy combined with step
            remedies (``"use_he_init+increase_lr"``, ``"add_warmup:10+reduce_lr"``).
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
    return [_attempt(r, model, optimizer, batches, loss_fn, steps, seed) for r in ["baseline", *remedies]]


def _attempt(remedy: str, model, optimizer, batches, loss_fn, steps: int, seed: int) -> TrialResult:
    try:
        arm = build_arm(remedy, model, optimizer, steps)
    except Exception as e:  # noqa: BLE001 - one remedy that does not fit must not stop the others
        nan = float("nan")
        return TrialResult(remedy, nan, nan, nan, error=f"{type(e).__name__}: {e}")
    return _run_arm(remedy, arm, batches, loss_fn, steps, seed)


def second_round(arms: Sequence, steps: int, most: int = 2) -> list[str]:
    """Combinations worth a second round, up to ``most``: the best arm of the first (its loss
    finite and below the baseline's, ``arms[0]``) together with

    1. what the diagnosis of *its* run still prescribes (script trials diagnose every arm:
       ``arm.prescribed``, ``arm.verdict``). One remedy often uncovers the next problem: He init
       tames a deep ReLU net's explosion, and then the script's rate, set tiny to survive the
       explosion, is what stops it learning (learning_rate_too_low → increase_lr);
    2. then the other first-round arms that beat the baseline, best first (greedy forward
       selection): a warmup and a lower rate each help a post-LN transformer whose rate is too
       high, and the textbook recipe is both.

    Only what can be applied together is proposed: one model remedy (re-initialisation, an
    activation swap) with step remedies (rate, warmup, clipping, guard); an architecture rewrite
    or an optimizer swap is not combined.

    And, beyond ``most``, one rescue: a model remedy whose run *diverged* (non-finite loss) together
    with the first step remedy its own run's diagnosis prescribes. A new activation or init changes
    the rate a network tolerates: ReLU with He init at a rate chosen for sigmoid layers can
    diverge, and the same swap at a lower rate is what the textbook prescribes. Without this the
    swap would be ranked as harmful on its first round alone.

    Example:
        >>> nan = float("nan")
        >>> a = [TrialResult("baseline", 9.0, nan, nan), TrialResult("use_he_init", 2.3, nan, nan),
        ...      TrialResult("clip_grad_norm", 5.0, nan, nan), TrialResult("add_batchnorm", 4.0, nan, nan)]
        >>> second_round(a, 100)
        ['use_he_init+clip_grad_norm']
    """
    from .inject import INJECTABLE, parse_combination, remedy_ids, trial_spec

    base = arms[0]
    tried = sorted((a for a in arms[1:] if math.isfinite(a.loss) and not a.error
                    and (not math.isfinite(base.loss) or a.loss < base.loss)), key=lambda a: a.loss)
    combos = []
    if tried:
        best = tried[0]
        try:
            have = {rid for rid, _ in parse_combination(best.remedy)}
        except ValueError:  # the best is not combinable (an architecture rewrite, an optimizer swap)
            have = None
        if have is not None:
            prescribed = list(getattr(best, "prescribed", [])) if getattr(best, "verdict", "") != "healthy" else []
            others = [remedy_ids(a.remedy)[0] for a in tried[1:] if "+" not in a.remedy]
            for r in [*prescribed, *others]:
                if r in have or r not in INJECTABLE:
                    continue
                spec = f"{best.remedy}+{trial_spec(r, steps)}"
                if _combinable(spec):
                    combos.append(spec)
                    have.add(r)
    return combos[:most] + _rescue(arms[1:], steps)[:1]


def _combinable(spec: str) -> bool:
    from .inject import parse_combination

    try:
        parse_combination(spec)
    except ValueError:
        return False
    return True


def _rescue(arms: Sequence, steps: int) -> list[str]:
    """Diverged model-remedy arms with the first step remedy their own run prescribes."""
    from .inject import MODEL_REMEDIES, STEP_REMEDIES, trial_spec

    out = []
    for a in arms:
        if a.error or math.isfinite(a.loss) or a.remedy not in MODEL_REMEDIES:
            continue
        step = next((r for r in getattr(a, "prescribed", []) if r in STEP_REMEDIES), None)
        if step is not None and _combinable(spec := f"{a.remedy}+{trial_spec(step, steps)}"):
            out.append(spec)
    return out


def best_per_remedy(arms: Sequence) -> dict:
    """Remedy id -> its best measured arm: its own, or a second-round combination that starts
    from it and did better (``use_he_init+increase_lr`` stands for ``use_he_init``, and says so).
    Arms that could not run (``error`` set) are left out; one that ran and diverged (NaN loss)
    stays, as the worst result.

    Example:
        >>> nan = float("nan")
        >>> r = best_per_remedy([TrialResult("use_he_init", 2.3, nan, nan),
        ...                      TrialResult("use_he_init+increase_lr", 0.2, nan, nan)])
        >>> r["use_he_init"].remedy
        'use_he_init+increase_lr'
    """
    from .inject import remedy_ids

    def worse(a) -> float:
        return math.inf if math.isnan(a.loss) else a.loss

    by_id: dict = {}
    for a in arms:
        if a.error:
            continue
        first = remedy_ids(a.remedy)[0]
        if first not in by_id or worse(a) < worse(by_id[first]):
            by_id[first] = a
    return by_id


def rank_remedies(diagnosis, model, optimizer, batches, loss_fn=None, steps: int = 50, seed: int = 0,
                  top: int = 3, combine: bool = True):
    """Trial the first ``top`` triable remedies of every serious finding; write the measured
    ``trial`` into each remedy and reorder each finding's remedies by loss after ``steps``.
    With ``combine``, a second round tries the best with the others that helped
    (:func:`second_round`); a combination that does better is written into the remedy it
    starts from, with ``trial.applied`` naming it.

    Example:
        >>> # d = gw.diagnose("runs/x"); rank_remedies(d, model, opt, batches); print(d.to_json())
    """
    wanted = []
    for f in diagnosis.findings:
        if f.serious:
            wanted += [r.id for r in f.remedies if r.id in TRIABLE][:top]
    todo = [r for r in dict.fromkeys(wanted)]
    if not todo:
        return diagnosis
    results = trial(model, optimizer, batches, todo, loss_fn=loss_fn, steps=steps, seed=seed)
    if combine:
        results += [_attempt(c, model, optimizer, batches, loss_fn or nn.functional.cross_entropy, steps, seed)
                    for c in second_round(results, steps)]
    write_ranked(diagnosis, results, f"loss after {steps} steps")
    return diagnosis


def write_ranked(diagnosis, arms: Sequence, metric: str) -> None:
    """Write measured arms (``arms[0]`` the baseline; library :class:`TrialResult` or script
    arms, anything with ``remedy``, ``loss`` and ``error``) into the remedies of ``diagnosis``
    as ``trial: {metric, before, after, applied}``, and reorder each finding's remedies: measured
    improvements first (lowest loss first), then the untried, then measured harm (least first).
    Shared by :func:`rank_remedies` and script trials.

    Example:
        >>> # write_ranked(diagnosis, [baseline, *arms], "loss after 50 steps")
    """
    from .findings import Trial

    base = arms[0]
    by_id = best_per_remedy(arms[1:])
    for f in diagnosis.findings:
        for rem in f.remedies:
            res = by_id.get(rem.id)
            if res is not None:
                rem.trial = Trial(metric=metric, before=base.loss, after=res.loss,
                                  applied=res.remedy if res.remedy != rem.id else None)

        def key(rem):
            t = rem.trial
            if t is None:
                return (1, 0.0)
            return (0, t.after) if t.improved else (2, t.after if math.isfinite(t.after) else math.inf)

        f.remedies.sort(key=key)
