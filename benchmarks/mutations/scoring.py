"""Scoring: each run's label against its diagnosis, the effect of a fault against its base's seed spread.

Only findings of severity warning or critical count (``info`` changes no verdict). Per run
with a fault that had a measurable effect:

* detected — at least one kind of the label's ``expect`` was found; the first one found
  counts a TP for that kind; otherwise one FN for the label's first kind;
* FP — each kind found that is neither expected nor ``also_ok``;
* root cause right — the first serious finding of the diagnosis (findings are ordered root
  cause first) is one of ``expect``.

On a healthy run every serious finding is an FP and the run a false alarm. A faulty run
whose held-out loss and score are both no worse than the base's seed-to-seed spread allows
is ``no measurable effect``: listed, not scored.

Example:
    >>> lo, hi = wilson(9, 10)
    >>> round(lo, 2), round(hi, 2)
    (0.6, 0.98)
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict

SERIOUS = ("warning", "critical")

#: the spread of a base's healthy seeds is widened to at least these floors before 3 σ is
#: taken: with 4 seeds σ itself is uncertain by ~40 %, and two identical seeds would make
#: any difference "measurable"
LOSS_FLOOR_REL, SCORE_FLOOR = 0.02, 0.01


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion k/n (Wilson 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def serious(row: dict) -> list[str]:
    """The serious finding kinds of a run, in the diagnosis' order, each once."""
    seen: list[str] = []
    for f in row.get("findings") or []:
        if f["severity"] in SERIOUS and f["kind"] not in seen:
            seen.append(f["kind"])
    return seen


def base_spread(rows: list[dict]) -> dict[str, dict]:
    """Per base: mean and band half-width (3 σ, floored) of the healthy seeds' held-out loss and score."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["fault"] is None and r.get("eval"):
            by[r["base"]].append(r["eval"])
    out = {}
    for base, evs in by.items():
        losses = [e["loss"] for e in evs if e.get("loss") is not None]
        scores = [e["score"] for e in evs if e.get("score") is not None]
        if len(losses) < 2:
            continue
        ml, ms = statistics.mean(losses), statistics.mean(scores)
        out[base] = {"loss": ml, "loss_band": 3 * max(statistics.stdev(losses), LOSS_FLOOR_REL * abs(ml)),
                     "score": ms, "score_band": 3 * max(statistics.stdev(scores), SCORE_FLOOR), "seeds": len(losses)}
    return out


def measurable(row: dict, spread: dict) -> bool:
    """Whether a faulty run is measurably worse than its base: a non-finite loss, a crash, no
    evaluation, a held-out loss above the base's band or a score below it. A fault that leaves
    the run inside the band — or makes it better (a deeper net that fits the set more closely)
    — left no pathology to find."""
    s = spread.get(row["base"])
    ev = row.get("eval")
    if row.get("nonfinite_loss") or row.get("status") not in (0, None) or not ev:
        return True
    if ev.get("loss") is None or ev.get("score") is None or s is None:
        return True
    return ev["loss"] - s["loss"] > s["loss_band"] or s["score"] - ev["score"] > s["score_band"]


def classify(rows: list[dict]) -> list[dict]:
    """Add ``outcome`` (and ``found``, ``detected``, ``root_ok``, ``fp``) to every applicable run."""
    spread = base_spread(rows)
    for r in rows:
        found = serious(r)
        r["found"] = found
        if r.get("error"):
            r["outcome"] = "error"
            continue
        if r["fault"] is None:
            r["fp"] = found
            r["outcome"] = "false alarm" if found else "quiet"
            continue
        lab = r["label"]
        r["fp"] = [k for k in found if k not in lab["expect"] and k not in lab["also_ok"]]
        r["detected"] = any(k in lab["expect"] for k in found)
        r["root_ok"] = bool(found) and found[0] in lab["expect"]
        if not measurable(r, spread):
            r["outcome"] = "no measurable effect"
        else:
            r["outcome"] = "caught" if r["detected"] else "missed"
    return rows


def summarise(rows: list[dict]) -> dict:
    """The score: per-kind TP/FN/FP with precision and recall (95 % Wilson), detection recall,
    root-cause accuracy, false alarms on healthy runs, no-effect counts, seconds per run, the peer."""
    per = defaultdict(Counter)
    scored = [r for r in rows if r.get("outcome") in ("caught", "missed")]
    healthy = [r for r in rows if r["fault"] is None and r.get("outcome") in ("quiet", "false alarm")]
    for r in scored:
        hit = next((k for k in r["found"] if k in r["label"]["expect"]), None)
        if hit:
            per[hit]["tp"] += 1
        else:
            per[r["label"]["expect"][0]]["fn"] += 1
    for r in scored + healthy:
        for k in r["fp"]:
            per[k]["fp"] += 1
    kinds = {}
    for k in sorted(per):
        c = per[k]
        tp, fn, fp = c["tp"], c["fn"], c["fp"]
        kinds[k] = {"tp": tp, "fn": fn, "fp": fp,
                    "precision": tp / (tp + fp) if tp + fp else None, "precision_ci": wilson(tp, tp + fp),
                    "recall": tp / (tp + fn) if tp + fn else None, "recall_ci": wilson(tp, tp + fn)}
    det = sum(r["detected"] for r in scored)
    root = sum(r["root_ok"] for r in scored)
    alarms = [r for r in healthy if r["outcome"] == "false alarm"]
    noeffect = [r for r in rows if r.get("outcome") == "no measurable effect"]
    secs = [r["seconds"] for r in rows if r.get("seconds")]
    peer_scored = [r for r in scored if r.get("spike_step") is not None]
    summary = {
        "runs": len(rows), "scored": len(scored), "healthy_runs": len(healthy),
        "no_measurable_effect": len(noeffect),
        "no_measurable_effect_flagged": sum(bool(r["found"]) for r in noeffect),
        "errors": [f"{r['base']}/{r['fault']}/{r['seed']}: {r['error']}" for r in rows if r.get("outcome") == "error"],
        "per_kind": kinds,
        "recall": det / len(scored) if scored else None, "recall_ci": wilson(det, len(scored)),
        "root_cause_accuracy": root / len(scored) if scored else None, "root_cause_ci": wilson(root, len(scored)),
        "healthy_false_alarms": len(alarms), "healthy_false_alarm_rate": len(alarms) / len(healthy) if healthy else None,
        "healthy_false_alarm_ci": wilson(len(alarms), len(healthy)),
        "seconds_per_run": statistics.mean(secs) if secs else None,
        "seconds_per_run_median": statistics.median(secs) if secs else None,
        "peer_spike_detection": {
            "faulty_flagged": len(peer_scored), "faulty": len(scored),
            "healthy_flagged": sum(r.get("spike_step") is not None for r in healthy), "healthy": len(healthy)},
    }
    by_fault = defaultdict(Counter)
    for r in rows:
        if r["fault"] is not None and r.get("outcome"):
            by_fault[r["fault"]][r["outcome"]] += 1
            if r.get("outcome") in ("caught", "missed"):
                by_fault[r["fault"]]["root_ok"] += r["root_ok"]
                by_fault[r["fault"]]["spike"] += r.get("spike_step") is not None
    summary["per_fault"] = {f: dict(c) for f, c in sorted(by_fault.items())}
    return summary
