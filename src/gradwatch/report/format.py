"""Plain-text formatting shared by the terminal and HTML renderers: numbers, layer lists,
evidence values, trials and the metrics a run reports about itself.

Nothing here computes a diagnosis; it only turns recorded values into short strings.

Example:
    >>> fmt(1.3e-12), fmt(0.000123456), fmt(float("nan")), fmt(12345.0)
    ('1.3e-12', '0.000123', 'NaN', '1.23e+04')
    >>> truncate_layers([str(i) for i in range(20)], keep=3)
    '0, 1, 2 … (17 more)'
"""

from __future__ import annotations

import math
from typing import Any

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def fmt(x: Any, digits: int = 3) -> str:
    """A number in at most ``digits`` significant digits (Python's ``g`` format).

    Non-finite values read ``NaN``, ``inf``, ``-inf``; booleans, ints and strings pass through.

    Example:
        >>> fmt(0.5), fmt(3), fmt(True), fmt(float("-inf")), fmt("nan")
        ('0.5', '3', 'True', '-inf', 'NaN')
    """
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, str):
        # the JSON form of a diagnosis spells non-finite numbers as strings
        return {"nan": "NaN", "inf": "inf", "-inf": "-inf"}.get(x, x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        x = x.item()
    if isinstance(x, int):
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def fmt_value(v: Any, max_items: int = 6) -> str:
    """An evidence value: a number, a short list of numbers, a dict, or text.

    Example:
        >>> fmt_value([1e-9, 2e-9, 0.5]), fmt_value({"0": 0.25})
        ('1e-09, 2e-09, 0.5', '0: 0.25')
    """
    if isinstance(v, dict):
        items = [f"{k}: {fmt(x) if not isinstance(x, (list, dict)) else fmt_value(x)}"
                 for k, x in list(v.items())[:max_items]]
        more = len(v) - max_items
        return ", ".join(items) + (f" … ({more} more)" if more > 0 else "")
    if isinstance(v, (list, tuple)):
        items = [fmt(x) if not isinstance(x, (list, dict)) else fmt_value(x) for x in v[:max_items]]
        more = len(v) - max_items
        return ", ".join(items) + (f" … ({more} more)" if more > 0 else "")
    return fmt(v)


def truncate_layers(layers: list[str], keep: int = 3) -> str:
    """Show the first ``keep`` layer names and how many more there are.

    The root module (name ``""``) reads ``(model)``.

    Example:
        >>> truncate_layers(["0", "2", "4", "6", "8"]), truncate_layers([""])
        ('0, 2, 4 … (2 more)', '(model)')
    """
    names = [layer_label(x) for x in layers]
    if len(names) <= keep + 1:  # "… (1 more)" is no shorter than the name itself
        return ", ".join(names)
    return ", ".join(names[:keep]) + f" … ({len(names) - keep} more)"


def layer_label(name: str) -> str:
    """A module or parameter name for display; the root module is ``(model)``.

    Example:
        >>> layer_label(""), layer_label("0.weight")
        ('(model)', '0.weight')
    """
    return name if name else "(model)"


def short(text: str, width: int = 32) -> str:
    """Shorten a long name in the middle, keeping both ends readable.

    Example:
        >>> short("encoder.layers.11.self_attn.out_proj.weight", 24)
        'encoder.lay…_proj.weight'
    """
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def fmt_trial(trial: Any) -> str:
    """``metric: before → after`` with a tick or cross for whether it improved, and what was
    applied when it was more than the remedy itself (a combination, a warmup length).

    Example:
        >>> from gradwatch.findings import Trial
        >>> fmt_trial(Trial("loss after 50 steps", 2.3, 0.41))
        'loss after 50 steps: 2.3 → 0.41 ✓'
        >>> fmt_trial(Trial("loss after 50 steps", 2.3, 0.41, applied="use_he_init+increase_lr"))
        'loss after 50 steps: 2.3 → 0.41 ✓ (as use_he_init+increase_lr)'
    """
    mark = "✓" if getattr(trial, "improved", False) else "✗"
    applied = getattr(trial, "applied", None)
    return f"{trial.metric}: {fmt(trial.before)} → {fmt(trial.after)} {mark}" + (f" (as {applied})" if applied else "")


def sorted_findings(findings: list[Any]) -> list[Any]:
    """Findings root cause first: each root (in the diagnosis's onset order) followed by the
    findings that follow from it (``consequence_of`` names its kind); serious ones before notes.

    A finding whose ``consequence_of`` names no root present stands as a root of its own.

    Example:
        >>> from gradwatch.findings import Finding
        >>> fs = [Finding("learning_rate_too_high", "critical", 0, [], "x"),
        ...       Finding("dead_units", "warning", 3, [], "y"),
        ...       Finding("nonfinite", "critical", 9, [], "z", consequence_of="learning_rate_too_high"),
        ...       Finding("learning_rate_too_low", "info", 0, [], "w")]
        >>> [f.kind for f in sorted_findings(fs)]
        ['learning_rate_too_high', 'nonfinite', 'dead_units', 'learning_rate_too_low']
    """
    out: list[Any] = []
    for serious in (True, False):
        group = [f for f in findings if bool(getattr(f, "serious", True)) == serious]
        kinds = {f.kind for f in group if getattr(f, "consequence_of", None) is None}
        placed: set[int] = set()
        for f in group:
            if id(f) in placed or getattr(f, "consequence_of", None) in kinds:
                continue
            out.append(f)
            placed.add(id(f))
            for g in group:
                if id(g) not in placed and getattr(g, "consequence_of", None) == f.kind:
                    out.append(g)
                    placed.add(id(g))
    return out


def root_lines(diagnosis: Any) -> list[tuple[str, str]]:
    """The lead of a report: (label, text) pairs naming the root cause, its first remedy, what
    follows from it and any independent problem. Empty for a healthy diagnosis.

    Example:
        >>> from gradwatch.findings import Diagnosis, Finding, Remedy
        >>> root = Finding("exploding_gradients", "critical", 0, [], "δ grows 1e6× input-ward",
        ...                remedies=[Remedy("use_he_init", "Re-initialise with He init")])
        >>> nan = Finding("nonfinite", "critical", 1, [], "NaN", consequence_of="exploding_gradients")
        >>> for label, text in root_lines(Diagnosis(steps=9, findings=[root, nan])):
        ...     print(f"{label}: {text}")
        root cause: exploding_gradients from step 0 — δ grows 1e6× input-ward
        first fix: use_he_init — Re-initialise with He init
        it leads to: nonfinite (step 1)
    """
    root = getattr(diagnosis, "root", None)
    if root is None:
        return []
    lines = [("root cause", f"{root.kind} from step {root.first_step} — {root.summary}")]
    if root.remedies:
        lines.append(("first fix", f"{root.remedies[0].id} — {root.remedies[0].description}"))
    serious = [f for f in diagnosis.findings if f.serious and f is not root]
    follows = [f for f in serious if f.consequence_of == root.kind]
    if follows:
        lines.append(("it leads to", ", ".join(f"{f.kind} (step {f.first_step})" for f in follows)))
    others = [f for f in serious if f.consequence_of is None]
    if others:
        lines.append(("independent of it", ", ".join(f"{f.kind} (step {f.first_step})" for f in others)))
    return lines


def run_metrics(run: Any) -> dict[str, Any]:
    """The evaluation metrics a run reports about itself (e.g. test accuracy).

    Read from ``run.meta["metrics"]`` when present, else from the last event of kind
    ``metrics`` (its detail dict), else the last value of each scalar given to
    ``Watcher.log`` (named ``"<name> (last logged)"``). Empty when the run recorded none.

    Example:
        >>> from types import SimpleNamespace
        >>> run_metrics(SimpleNamespace(meta={"metrics": {"test_acc": 0.91}})), run_metrics(SimpleNamespace())
        ({'test_acc': 0.91}, {})
    """
    meta = getattr(run, "meta", {}) or {}
    m = meta.get("metrics")
    if isinstance(m, dict) and m:
        return dict(m)
    try:
        ev = run.events
        rows = ev[ev["kind"] == "metrics"]
    except Exception:  # noqa: BLE001 - a run without an events table has no metrics
        return {}
    if len(rows):
        detail = rows.iloc[-1]["detail"]
        if isinstance(detail, dict):
            return dict(detail)
    return _last_logged(run)


def _last_logged(run: Any) -> dict[str, Any]:
    """The last finite value of each scalar given to ``Watcher.log`` (the steps' ``extra``)."""
    try:
        extra = run.steps["extra"]
    except Exception:  # noqa: BLE001 - older stores have no extra scalars
        return {}
    out: dict[str, Any] = {}
    for d in extra:
        for k, v in (d or {}).items() if isinstance(d, dict) else ():
            if isinstance(v, (int, float)) and math.isfinite(v):
                out[f"{k} (last logged)"] = v
    return out


def count_by_severity(findings: list[Any]) -> str:
    """``1 critical, 2 warnings`` (serious findings only; empty when none).

    Example:
        >>> from gradwatch.findings import Finding
        >>> count_by_severity([Finding("dead_units", "warning", 0, [], "x")] * 2)
        '2 warnings'
    """
    parts = []
    for sev in ("critical", "warning"):
        n = sum(1 for f in findings if f.severity == sev)
        if n:
            parts.append(f"{n} {sev}" + ("s" if n > 1 and sev == "warning" else ""))
    return ", ".join(parts)


def remedy_code(remedy: Any) -> str:
    """The remedy's code, and, when its trial measured it together with other remedies, how to
    apply the whole combination (the number is what the trial measured, not the remedy alone).

    Example:
        >>> from gradwatch.findings import Remedy, Trial
        >>> r = Remedy("use_he_init", "…", "gw.init.apply(model, 'auto')",
        ...            Trial("loss after 80 steps", 9.0, 0.7, applied="use_he_init+increase_lr"))
        >>> print(remedy_code(r))
        gw.init.apply(model, 'auto')
        # measured together with increase_lr; on a script: gradwatch run --remedy use_he_init+increase_lr train.py
    """
    from ..inject import remedy_ids

    code = (getattr(remedy, "code", "") or "").strip()
    applied = getattr(getattr(remedy, "trial", None), "applied", None)
    if applied and "+" in applied:
        others = [p for p, rid in zip(applied.split("+"), remedy_ids(applied)) if rid != remedy.id]
        note = (f"# measured together with {' and '.join(others)}; on a script: "
                f"gradwatch run --remedy {applied} train.py")
        code = f"{code}\n{note}" if code else note
    return code
