"""Findings: what the diagnosis says, as plain dataclasses with a stable JSON form.

The JSON schema is a contract (see DESIGN.md); bump ``SCHEMA`` on any change of its meaning.

Schema 2 (this version) adds, without changing any field of schema 1:

* ``findings[].consequence_of`` — the ``kind`` of the root finding this one follows from
  (``null`` for a root cause). Findings are listed by onset, root causes first: the first
  finding with ``consequence_of: null`` is the run's root cause.
* ``summary`` — one sentence that leads with the root cause and its first remedy.
* ``restarts`` — present only for a run resumed from a checkpoint: one entry per resume,
  ``{"step", "superseded", "unrecorded"}`` (the step it started at, how many recorded steps it
  trained again — kept apart and not diagnosed — and the ``[first, last]`` steps trained but
  never recorded, or ``null``). ``steps`` counts the steps diagnosed, across the restarts.

A reader of schema 1 sees the same fields with the same meaning (extra keys aside), and
:meth:`Diagnosis.from_dict` reads schema-1 JSON too (every finding then counts as a root).

Example:
    >>> f = Finding(kind="vanishing_gradients", severity="critical", first_step=0,
    ...             layers=["0", "2"], summary="δ falls 1e-9 from output to input")
    >>> Diagnosis(steps=10, findings=[f]).verdict
    'unhealthy'
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = 2
#: the diagnosis JSON schemas this version reads
READS = (1, 2)

#: Finding kinds. Add new ones; never rename these.
KINDS = (
    "vanishing_gradients",
    "exploding_gradients",
    "nonfinite",
    "saturated_activations",
    "dead_units",
    "symmetric_weights",
    "learning_rate_too_high",
    "learning_rate_too_low",
    "unsynced_gradients",  # data-parallel ranks whose gradients differ after the all-reduce
    "gradients_not_zeroed",  # .grad still holds earlier steps' gradients when a step's backward begins
    "disconnected_layers",  # layers that run in the forward pass but never get a gradient (a cut graph)
    "parameters_not_updated",  # parameters with a gradient whose update is exactly zero, step after step
    "modules_without_optimizer",  # parameters that get gradients but that no optimizer holds
)
SEVERITIES = ("info", "warning", "critical")


@dataclass
class Trial:
    """The measured effect of a remedy tried on a copy of the model.

    Example:
        >>> Trial(metric="loss after 50 steps", before=2.30, after=0.41).improved
        True
    """

    metric: str
    before: float
    after: float
    higher_is_better: bool = False
    #: the exact remedy spec that was tried, when it differs from the id (``add_warmup:25``)
    applied: str | None = None

    @property
    def improved(self) -> bool:
        """Whether ``after`` is better than ``before`` for this metric."""
        if not (math.isfinite(self.after)):
            return False
        if not math.isfinite(self.before):
            return True
        return self.after > self.before if self.higher_is_better else self.after < self.before


@dataclass
class Cause:
    """A likely reason for a finding, read off the model or the run.

    Example:
        >>> Cause("activation_sigmoid", "19 of 20 hidden layers use nn.Sigmoid (σ′ ≤ 0.25)").id
        'activation_sigmoid'
    """

    id: str
    because: str


@dataclass
class Remedy:
    """A change to make, with a code snippet that applies it to this model.

    Example:
        >>> Remedy("clip_grad_norm", "Clip the global gradient norm at 1.0",
        ...        "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)").id
        'clip_grad_norm'
    """

    id: str
    description: str
    code: str = ""
    trial: Trial | None = None


@dataclass
class Finding:
    """One problem: its kind, how bad, when it began, where, why, and what to change.

    Example:
        >>> Finding("dead_units", "warning", 120, ["fc1"], "40% of fc1's units never fire").kind
        'dead_units'
    """

    kind: str
    severity: str
    first_step: int
    layers: list[str]
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    causes: list[Cause] = field(default_factory=list)
    remedies: list[Remedy] = field(default_factory=list)
    #: the kind of the root finding this one follows from; None when it is a root cause itself
    consequence_of: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def serious(self) -> bool:
        """True for ``warning`` and ``critical`` findings (they make a run unhealthy)."""
        return self.severity in ("warning", "critical")


@dataclass
class Diagnosis:
    """All findings of one run; ``verdict`` is ``healthy`` exactly when none is serious.

    Example:
        >>> d = Diagnosis(steps=5, findings=[])
        >>> d.verdict, Diagnosis.from_json(d.to_json()).steps
        ('healthy', 5)
    """

    steps: int
    findings: list[Finding] = field(default_factory=list)
    schema: int = SCHEMA
    #: one entry per resume of the run (step, superseded, unrecorded); empty when never resumed
    restarts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "unhealthy" if any(f.serious for f in self.findings) else "healthy"

    @property
    def root(self) -> Finding | None:
        """The root cause: the first serious finding that follows from no other (None if healthy).

        Example:
            >>> a = Finding("exploding_gradients", "critical", 0, [], "δ grows 1e6×")
            >>> b = Finding("nonfinite", "critical", 1, [], "NaN", consequence_of="exploding_gradients")
            >>> Diagnosis(steps=5, findings=[a, b]).root.kind
            'exploding_gradients'
        """
        serious = [f for f in self.findings if f.serious]
        return next((f for f in serious if f.consequence_of is None), serious[0] if serious else None)

    @property
    def summary(self) -> str:
        """One sentence that leads with the root cause and its first remedy.

        Example:
            >>> Diagnosis(steps=5).summary
            'healthy: no problems in 5 steps'
        """
        root = self.root
        if root is None:
            return f"healthy: no problems in {self.steps} steps"
        text = f"root cause: {root.kind} from step {root.first_step}: {root.summary}"
        if root.remedies:
            text += f"; first fix: {root.remedies[0].id} ({root.remedies[0].description})"
        follows = list(dict.fromkeys(f.kind for f in self.findings
                                     if f.serious and f.consequence_of is not None and f is not root))
        if follows:
            text += f"; it also causes {', '.join(follows)}"
        roots = [f for f in self.findings if f.serious and f.consequence_of is None and f is not root]
        if roots:
            text += f"; independent of it: {', '.join(dict.fromkeys(f.kind for f in roots))}"
        return text

    def kinds(self, serious_only: bool = True) -> set[str]:
        """The finding kinds present (by default only warnings and criticals)."""
        return {f.kind for f in self.findings if f.serious or not serious_only}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema": self.schema,
            "verdict": self.verdict,
            "steps": self.steps,
            "summary": self.summary,
            "findings": [_clean(asdict(f)) for f in self.findings],
        }
        if self.restarts:
            out["restarts"] = _clean(self.restarts)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Diagnosis":
        if data.get("schema") not in READS:
            raise ValueError(
                f"diagnosis schema {data.get('schema')!r} is not supported (this gradwatch reads "
                f"{', '.join(map(str, READS))}); diagnose the run again with this version"
            )
        findings = []
        for f in data.get("findings", []):
            remedies = []
            for r in f.get("remedies", []):
                t = r.get("trial")
                trial = Trial(**{k: _unnan(v) for k, v in t.items()}) if t else None
                remedies.append(Remedy(r["id"], r["description"], r.get("code", ""), trial))
            findings.append(
                Finding(
                    kind=f["kind"],
                    severity=f["severity"],
                    first_step=f["first_step"],
                    layers=list(f.get("layers", [])),
                    summary=f["summary"],
                    evidence=dict(f.get("evidence", {})),
                    causes=[Cause(c["id"], c["because"]) for c in f.get("causes", [])],
                    remedies=remedies,
                    consequence_of=f.get("consequence_of"),
                )
            )
        return cls(steps=data["steps"], findings=findings, restarts=list(data.get("restarts", [])))

    @classmethod
    def from_json(cls, text: str) -> "Diagnosis":
        return cls.from_dict(json.loads(text))


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: non-finite floats become strings ("nan", "inf", "-inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _clean(value.item())
    return value


def _unnan(value: Any) -> Any:
    return float(value) if value in ("nan", "inf", "-inf") else value
