"""Scoring for the detection benchmark: read a case's expectations, compare a diagnosis with them.

A case header says what a correct diagnosis contains::

    # expect: vanishing_gradients            (or: # expect: healthy)
    # also-ok: saturated_activations         (optional: legitimate side effects)

Per finding kind, only ``warning``/``critical`` findings count:

* TP — an expected kind found,
* FN — an expected kind not found (or only as ``info``; a run with no diagnosis misses all),
* FP — a found kind that is neither expected nor listed in ``also-ok``.

Example:
    >>> case = Case("c", "c.py", ["vanishing_gradients"], ["saturated_activations"])
    >>> score(case, {"findings": [{"kind": "vanishing_gradients", "severity": "critical"},
    ...                           {"kind": "dead_units", "severity": "warning"}]})[1:]
    (['vanishing_gradients'], [], ['dead_units'], 'false alarm')
"""

from __future__ import annotations

import fnmatch
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SERIOUS = ("warning", "critical")
HEADER_RE = re.compile(r"^#\s*(expect|also-ok)\s*:\s*(.*)$")


@dataclass
class Case:
    """One training script and what a correct diagnosis of it contains."""

    name: str
    path: str
    expect: list[str] | None  # None: unlabelled (not scored); []: healthy
    also_ok: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What gradwatch said about one case, and how that scores."""

    case: Case
    seconds: float
    script_rc: int | None
    verdict: str | None = None  # gradwatch's "healthy"/"unhealthy"
    found: dict[str, str] = field(default_factory=dict)  # kind -> highest severity
    tp: list[str] = field(default_factory=list)
    fn: list[str] = field(default_factory=list)
    fp: list[str] = field(default_factory=list)
    outcome: str = "error"
    error: str = ""


def parse_case(path: Path) -> Case:
    """Read the ``# expect:`` / ``# also-ok:`` lines from the first 60 lines of a script."""
    expect, also = None, []
    with open(path, encoding="utf-8") as fh:
        for _, line in zip(range(60), fh):
            m = HEADER_RE.match(line.strip())
            if not m:
                continue
            kinds = [k.strip() for k in m.group(2).split(",") if k.strip()]
            if m.group(1) == "expect":
                expect = [] if kinds == ["healthy"] else kinds
            else:
                also = kinds
    return Case(path.stem, str(path), expect, also)


def matches(name: str, pattern: str | None) -> bool:
    """Whether a case name matches any comma-separated glob (a glob-free part matches as a substring)."""
    if not pattern:
        return True
    for part in filter(None, (p.strip() for p in pattern.split(","))):
        if fnmatch.fnmatch(name, part) if any(c in part for c in "*?[") else part in name:
            return True
    return False


def find_cases(dirs: list[Path], pattern: str | None) -> list[Case]:
    """All ``*.py`` scripts in ``dirs`` whose stem matches ``pattern`` (see :func:`matches`)."""
    cases = []
    for d in dirs:
        if not d.is_dir():
            sys.exit(f"error: {d} is not a directory; pass --dir a folder of training scripts")
        cases += [parse_case(p) for p in sorted(d.glob("*.py")) if matches(p.stem, pattern)]
    return cases


def score(case: Case, diagnosis: dict) -> tuple[dict[str, str], list[str], list[str], list[str], str]:
    """Compare a diagnosis with the case's expectation: (found, tp, fn, fp, outcome)."""
    rank = {"info": 0, "warning": 1, "critical": 2}
    found: dict[str, str] = {}
    for f in diagnosis.get("findings", []):
        kind, sev = f.get("kind"), f.get("severity", "info")
        if kind not in found or rank.get(sev, 0) > rank.get(found[kind], 0):
            found[kind] = sev
    serious = {k for k, s in found.items() if s in SERIOUS}
    if case.expect is None:
        return found, [], [], sorted(serious), "unlabelled"
    expect, ok = set(case.expect), set(case.expect) | set(case.also_ok)
    tp, fn, fp = sorted(expect & serious), sorted(expect - serious), sorted(serious - ok)
    if not case.expect:
        outcome = "false alarm" if fp else "OK"
    elif fn and fp:
        outcome = "miss+false alarm"
    else:
        outcome = "miss" if fn else ("false alarm" if fp else "OK")
    return found, tp, fn, fp, outcome


def kind_table(results: list[Result]) -> dict[str, dict[str, int]]:
    """Per finding kind: TP, FN, FP counts over the scored (labelled, diagnosed) cases."""
    counts: dict[str, dict[str, int]] = {}
    for r in results:
        for attr in ("tp", "fn", "fp"):
            for k in getattr(r, attr):
                counts.setdefault(k, {"tp": 0, "fn": 0, "fp": 0})[attr] += 1
    for r in results:  # a case that crashed before diagnosis misses every expected kind
        if r.outcome == "error" and r.case.expect:
            for k in r.case.expect:
                counts.setdefault(k, {"tp": 0, "fn": 0, "fp": 0})["fn"] += 1
    return dict(sorted(counts.items()))


def summary(results: list[Result]) -> dict:
    """Overall precision/recall and the healthy false-alarm count."""
    kinds = kind_table(results)
    tp = sum(c["tp"] for c in kinds.values())
    fn = sum(c["fn"] for c in kinds.values())
    fp = sum(c["fp"] for c in kinds.values())
    healthy = [r for r in results if r.case.expect == []]
    alarmed = [r.case.name for r in healthy if r.fp]
    return {
        "cases": len(results),
        "ok": sum(r.outcome == "OK" for r in results),
        "errors": [r.case.name for r in results if r.outcome == "error"],
        "tp": tp, "fn": fn, "fp": fp,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "healthy_runs": len(healthy),
        "healthy_with_serious_finding": alarmed,
        "per_kind": kinds,
    }
