"""Findings: what the diagnosis says, as plain dataclasses with a stable JSON form.

The JSON schema is a contract (see DESIGN.md); bump ``SCHEMA`` on any breaking change.

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

SCHEMA = 1

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

    @property
    def verdict(self) -> str:
        return "unhealthy" if any(f.serious for f in self.findings) else "healthy"

    def kinds(self, serious_only: bool = True) -> set[str]:
        """The finding kinds present (by default only warnings and criticals)."""
        return {f.kind for f in self.findings if f.serious or not serious_only}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "verdict": self.verdict,
            "steps": self.steps,
            "findings": [_clean(asdict(f)) for f in self.findings],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Diagnosis":
        if data.get("schema") != SCHEMA:
            raise ValueError(
                f"diagnosis schema {data.get('schema')!r} is not supported (this gradwatch reads {SCHEMA})"
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
                )
            )
        return cls(steps=data["steps"], findings=findings)

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
