"""Diagnosis: rules read a recorded run and return findings (one rule per file), listed root
cause first (see :mod:`gradwatch.diagnosis.onset`).

Example:
    >>> # d = gw.diagnose("runs/exp1"); d.verdict, [f.kind for f in d.findings]
"""

from __future__ import annotations

import os
from typing import Callable

from ..findings import Diagnosis, Finding
from ..record import Run, load
from . import dead_units, exploding, learning_rate, nonfinite, saturation, scale, symmetry, vanishing
from . import disconnected, not_updated, unsynced, zero_grad
from .onset import merge_into, order_by_onset
from .context import Context

Rule = Callable[[Context], list[Finding]]

#: the rules by name; their findings are reported by onset, root causes first (see ``onset``)
RULES: dict[str, Rule] = {
    "nonfinite": nonfinite.check,
    "exploding_gradients": exploding.check,
    "vanishing_gradients": vanishing.check,
    "symmetric_weights": symmetry.check,
    "dead_units": dead_units.check,
    "saturated_activations": saturation.check,
    "learning_rate_too_high": learning_rate.check_high,
    "learning_rate_too_low": learning_rate.check_low,
    "unsynced_gradients": unsynced.check,
    "gradients_not_zeroed": zero_grad.check,
    "disconnected_layers": disconnected.check,
    "parameters_not_updated": not_updated.check,  # also modules_without_optimizer
    "initial_scale": scale.check,
}


def diagnose(run: Run | str | os.PathLike, rules: dict[str, Rule] | None = None,
             trial: dict | None = None) -> Diagnosis:
    """Diagnose a recorded run.

    Args:
        run: a :class:`~gradwatch.record.Run` or its directory.
        rules: rules to apply (default :data:`RULES`); each maps a Context to findings.
        trial: ``dict(model=..., optimizer=..., batches=[(x, y), ...], loss_fn=..., steps=50)``
            to try the top remedies of each finding on copies of the model and rank them by
            measured effect (see :func:`gradwatch.trials.rank_remedies`).

    Returns:
        A :class:`~gradwatch.findings.Diagnosis`; ``verdict`` is ``healthy`` exactly when no
        finding is a warning or critical. Its findings are ordered by onset, root causes first;
        a finding that follows from an earlier one names its root in ``consequence_of``.

    Example:
        >>> # d = diagnose("runs/exp1"); print(d.to_json())
    """
    if not isinstance(run, Run):
        if not isinstance(run, (str, os.PathLike)):
            raise TypeError(f"diagnose expects a run directory or gw.load(...) result, got {type(run).__name__}; "
                            "pass the out= directory of a watched run")
        run = load(run)
    ctx = Context(run)
    findings: list[Finding] = []
    if ctx.n_steps:
        for name, rule in (rules or RULES).items():
            findings.extend(rule(ctx))
    stats = ctx.steps.index[ctx.steps["stats"]] if ctx.n_steps and "stats" in ctx.steps else []
    findings = order_by_onset(merge_into(findings), [int(s) for s in stats])
    restarts = [{"step": int(r.step), "superseded": int(r.superseded), "unrecorded": r.unrecorded}
                for r in run.restarts.itertuples()]
    diagnosis = Diagnosis(steps=ctx.n_steps, findings=findings, restarts=restarts)
    if trial is not None and diagnosis.verdict == "unhealthy":
        from ..trials import rank_remedies

        rank_remedies(diagnosis, **trial)
    return diagnosis


__all__ = ["diagnose", "RULES", "Context"]
