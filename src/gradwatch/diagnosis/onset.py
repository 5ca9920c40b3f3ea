"""Root cause first: order findings by onset and name, in each later finding that follows from
an earlier one, the root it follows from (``Finding.consequence_of``).

Mechanism: the pathologies feed one another in a few known directions. A step too large (or
exploded gradients) overwrites the weights, and the overwritten weights saturate tanh/sigmoid
units or kill ReLUs; saturated or dead units pass no gradient, so the gradient vanishes below
them; a value that keeps growing ends as Inf, then NaN. The symptom that shows last is often
the loudest — a run whose recurrence explodes at step 0 ends with a vanishing gradient — so the
report must lead with what came first. Two findings are ordered by the step where each began;
a slow statistic (δ, activations) is known only up to the interval between statistics steps, so
onsets inside the same interval tie, and a tie goes to the mechanism that produces the other
(:data:`PRECEDENCE`): a fault in the training code before anything it distorts, a pathology
present in the initial weights before anything an update does, then a step too large before
exploding gradients before saturated or dead units before vanishing gradients, and NaN last
(it ends every chain). A later finding is a consequence when a chain of reported findings
leads to it from a root along :data:`CAN_CAUSE`; it then names that root.

Example:
    >>> from gradwatch.findings import Finding
    >>> fs = [Finding("vanishing_gradients", "critical", 8, [], "δ through time vanishes"),
    ...       Finding("saturated_activations", "critical", 2, [], "tanh units saturate"),
    ...       Finding("exploding_gradients", "critical", 0, [], "δ through time grows 1e5×")]
    >>> [(f.kind, f.consequence_of) for f in order_by_onset(fs)]
    [('exploding_gradients', None), ('saturated_activations', 'exploding_gradients'), \
('vanishing_gradients', 'exploding_gradients')]
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Iterable, Sequence

from ..findings import Finding

#: faults of the training code itself, exact and produced by no setting: whatever they
#: distort comes after them
CODE_FAULTS = ("gradients_not_zeroed", "modules_without_optimizer", "disconnected_layers",
               "unsynced_gradients")

#: on a tie of onsets, the kind that produces the other comes first
PRECEDENCE = CODE_FAULTS + (
    "symmetric_weights",
    "learning_rate_too_high",
    "exploding_gradients",
    "saturated_activations",
    "dead_units",
    "vanishing_gradients",
    "learning_rate_too_low",
    # a parameter left unchanged: skipped by the code, or steps below its float's resolution
    "parameters_not_updated",
    "nonfinite",
)

#: causes that are properties of the weights before the first update (their findings are
#: present at step 0, before anything the learning rate does)
INIT_CAUSES = frozenset({"init_scale_too_large", "init_scale_too_small", "zero_init", "negative_bias",
                         "recurrent_spectral_radius", "residual_without_normalisation"})

_AFTER_A_BAD_STEP = ("exploding_gradients", "nonfinite", "saturated_activations", "dead_units",
                     "vanishing_gradients")

#: which kinds each kind can produce (by the mechanisms in the module docstring)
CAN_CAUSE: dict[str, frozenset[str]] = {
    # accumulated gradients: steps that grow with the step count
    "gradients_not_zeroed": frozenset(_AFTER_A_BAD_STEP + ("learning_rate_too_high",)),
    # no gradient reaches the layers: zero δ there, weights that never move
    "disconnected_layers": frozenset({"vanishing_gradients", "parameters_not_updated", "learning_rate_too_low"}),
    "modules_without_optimizer": frozenset({"parameters_not_updated", "learning_rate_too_low"}),
    "parameters_not_updated": frozenset({"learning_rate_too_low"}),
    # identical units: gradients confined to a rank-one subspace, or zero under zero init
    "symmetric_weights": frozenset({"vanishing_gradients", "dead_units", "saturated_activations",
                                    "learning_rate_too_low", "learning_rate_too_high"}),
    "learning_rate_too_high": frozenset(_AFTER_A_BAD_STEP),
    # an exploded gradient makes an exploded update: the update ratio leaves the band too
    "exploding_gradients": frozenset(_AFTER_A_BAD_STEP + ("learning_rate_too_high",)),
    # flat tails pass no gradient; a sigmoid that rounds to 1.0 makes log(0)
    "saturated_activations": frozenset({"vanishing_gradients", "nonfinite", "learning_rate_too_low",
                                        "parameters_not_updated"}),
    "dead_units": frozenset({"vanishing_gradients", "learning_rate_too_low"}),
    # layers without gradient take no steps; a step below half a float's spacing at the weight
    # rounds away, and the weight never changes
    "vanishing_gradients": frozenset({"learning_rate_too_low", "parameters_not_updated"}),
    "learning_rate_too_low": frozenset({"parameters_not_updated"}),
}


def precedence(f: Finding) -> tuple[int, int]:
    """The tie-break key of a finding: (tier, position in :data:`PRECEDENCE`).

    Tier 0 is a fault of the training code, tier 1 a finding with a cause in the initial
    weights (:data:`INIT_CAUSES`), tier 2 the rest.

    Example:
        >>> from gradwatch.findings import Cause, Finding
        >>> precedence(Finding("exploding_gradients", "warning", 0, [], "x",
        ...                    causes=[Cause("init_scale_too_large", "N(0, 1) weights")]))
        (1, 6)
    """
    rank = PRECEDENCE.index(f.kind) if f.kind in PRECEDENCE else len(PRECEDENCE)
    if f.kind in CODE_FAULTS:
        return 0, rank
    if any(c.id in INIT_CAUSES for c in f.causes):
        return 1, rank
    return 2, rank


def onset_bucket(step: int, stats_steps: Sequence[int]) -> int:
    """The statistics interval an onset falls in: the first statistics step at or after ``step``.

    A slow statistic first seen at statistics step t began somewhere after the previous one,
    so two onsets in the same interval cannot be told apart by time. Without statistics steps
    the onset is exact.

    Example:
        >>> onset_bucket(3, [0, 5, 10]), onset_bucket(5, [0, 5, 10]), onset_bucket(12, [0, 5, 10])
        (5, 5, 12)
    """
    i = bisect.bisect_left(stats_steps, step)
    return int(stats_steps[i]) if i < len(stats_steps) else int(step)


def can_cause(cause: str, effect: str) -> bool:
    """Whether findings of kind ``cause`` can produce findings of kind ``effect``.

    Example:
        >>> can_cause("learning_rate_too_high", "nonfinite"), can_cause("nonfinite", "dead_units")
        (True, False)
    """
    return effect in CAN_CAUSE.get(cause, frozenset())


def order_by_onset(findings: Iterable[Finding], stats_steps: Sequence[int] = ()) -> list[Finding]:
    """Findings ordered root causes first, each consequence naming its root.

    Serious findings come first, by onset (``first_step``, up to the statistics interval),
    ties by :func:`precedence`, then severity; notes (``info``) follow in the same order. A
    serious finding that no earlier serious finding explains is a root; a later one reachable
    from a root through findings that :func:`can_cause` each other gets ``consequence_of`` set
    to that root's kind (the earliest such root). Notes can be consequences, never roots of
    serious findings.

    Args:
        findings: the rules' findings, in any order.
        stats_steps: the steps where the slow statistics were measured, ascending.

    Returns:
        A new list of (copied) findings.

    Example:
        >>> from gradwatch.findings import Finding
        >>> fs = [Finding("nonfinite", "critical", 7, [], "NaN at step 7"),
        ...       Finding("learning_rate_too_high", "critical", 0, [], "steps rewrite 40% of the weights")]
        >>> [(f.kind, f.consequence_of) for f in order_by_onset(fs)]
        [('learning_rate_too_high', None), ('nonfinite', 'learning_rate_too_high')]
    """
    stats = sorted(int(s) for s in stats_steps)
    sev = {"critical": 0, "warning": 1, "info": 2}

    def key(f: Finding):
        return (onset_bucket(f.first_step, stats), precedence(f), sev.get(f.severity, 3), f.first_step)

    items = [replace(f, consequence_of=None) for f in findings]
    serious = sorted((f for f in items if f.serious), key=key)
    notes = sorted((f for f in items if not f.serious), key=key)
    explained: list[tuple[Finding, str]] = []  # (finding, the root it traces back to)
    for f in serious:
        root = next((r for g, r in explained if can_cause(g.kind, f.kind)), None)
        f.consequence_of = root
        explained.append((f, root if root is not None else f.kind))
    for f in notes:
        f.consequence_of = next((r for g, r in explained if can_cause(g.kind, f.kind)), None)
    return serious + notes


def merge_into(findings: list[Finding], marker: str = "initial_scale") -> list[Finding]:
    """Fold each finding whose ``evidence["measured"]`` is ``marker`` into a finding of the same
    kind that began at the same step, if there is one (one problem, one finding).

    The other finding keeps its summary, evidence and remedies; the folded one adds its
    sentence, the evidence keys the other lacks, its layers, causes and remedies at the end.

    Example:
        >>> from gradwatch.findings import Finding
        >>> a = Finding("exploding_gradients", "warning", 0, ["0"], "δ grows 1e5× input-ward", {"measured": "delta"})
        >>> b = Finding("exploding_gradients", "critical", 0, ["1"], "activations grow 5× per layer",
        ...             {"measured": "initial_scale", "activation_growth_per_layer": 5.0})
        >>> [(f.severity, f.layers, sorted(f.evidence)) for f in merge_into([a, b])]
        [('critical', ['0', '1'], ['activation_growth_per_layer', 'measured'])]
    """
    out: list[Finding] = []
    folded = [f for f in findings if f.evidence.get("measured") == marker]
    rest = [f for f in findings if f.evidence.get("measured") != marker]
    for f in folded:
        host = next((g for g in rest if g.kind == f.kind and g.first_step == f.first_step), None)
        if host is None:
            out.append(f)
            continue
        host.summary = f"{host.summary}; {f.summary}"
        host.evidence.update({k: v for k, v in f.evidence.items() if k not in host.evidence})
        host.layers = list(dict.fromkeys([*host.layers, *f.layers]))
        have = {c.id for c in host.causes}
        host.causes += [c for c in f.causes if c.id not in have]
        have = {r.id for r in host.remedies}
        host.remedies += [r for r in f.remedies if r.id not in have]
        if _sev_rank(f.severity) < _sev_rank(host.severity):
            host.severity = f.severity
    return rest + out


def _sev_rank(severity: str) -> int:
    """0 for critical, 1 for warning, 2 for info."""
    return {"critical": 0, "warning": 1, "info": 2}.get(severity, 3)


__all__ = ["order_by_onset", "merge_into", "precedence", "onset_bucket", "can_cause", "PRECEDENCE",
           "CAN_CAUSE", "INIT_CAUSES", "CODE_FAULTS"]
