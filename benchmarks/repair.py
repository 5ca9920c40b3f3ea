"""Repair benchmark: for every pathological case of the detection suite, the loss after the same
number of steps before and after the best remedy the trials found (remedies injected into the
unmodified script by ``gradwatch run --trial``), whether that was the rules' own first choice,
and, for cases that end in NaN, whether ``--guard`` makes the run finish with a finite loss.

    python benchmarks/repair.py                       # every pathological case (slow: re-runs)
    python benchmarks/repair.py --cases vanishing,lr_high --trial-steps 100

Prints a rich table and writes repair-results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "detection"))

from scoring import find_cases  # noqa: E402


def gradwatch(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradwatch.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def final_loss(run_dir: Path) -> float:
    from gradwatch.record import load
    from gradwatch.script_trials import end_loss

    return end_loss(load(run_dir))


def repair_case(case, out: Path, trial_steps: int) -> dict:
    t0 = time.perf_counter()
    base_dir = out / case.name / "baseline"
    gradwatch("run", "--trial", "--trial-steps", str(trial_steps), "--out", str(base_dir),
              "--json", str(base_dir) + ".json", case.path)
    row = {"case": case.name, "expect": case.expect}
    try:
        ranked = json.loads(Path(str(base_dir) + ".json").read_text())
    except (OSError, ValueError):
        row["error"] = "no diagnosis"
        return row
    gradwatch("diagnose", str(base_dir), "--json", str(base_dir) + ".prior.json")
    prior = json.loads(Path(str(base_dir) + ".prior.json").read_text())
    first_serious = next((f for f in prior["findings"] if f["severity"] != "info"), None)
    tried = [r for f in ranked["findings"] for r in f["remedies"] if r.get("trial")]
    row["found"] = sorted({f["kind"] for f in ranked["findings"] if f["severity"] != "info"})
    if tried:
        best = min(tried, key=lambda r: r["trial"]["after"] if isinstance(r["trial"]["after"], float) else math.inf)
        row.update(before=tried[0]["trial"]["before"], best=best["id"], after=best["trial"]["after"],
                   rule_first=first_serious["remedies"][0]["id"] if first_serious and first_serious["remedies"] else None)
        row["trial_first_choice"] = row["rule_first"] == best["id"]
        row["improved"] = _better(row["after"], row["before"])
    if "nonfinite" in (case.expect or []):
        g = out / case.name / "guarded"
        gradwatch("run", "--guard", "--out", str(g), "--json", str(g) + ".json", case.path)
        try:
            row["guard_final_loss"] = final_loss(g)
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["guard_final_loss"] = f"error: {e}"
    row["seconds"] = time.perf_counter() - t0
    return row


def _better(after, before) -> bool:
    a = after if isinstance(after, float) else math.inf
    b = before if isinstance(before, float) else math.inf
    return math.isfinite(a) and a < b


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=None, help="comma-separated name patterns")
    ap.add_argument("--trial-steps", type=int, default=150)
    ap.add_argument("--out", default="gradwatch-runs/repair")
    ap.add_argument("--json", default="repair-results.json")
    a = ap.parse_args()
    cases = [c for c in find_cases([HERE / "detection" / "cases"], a.cases) if c.expect]
    rows = []
    console = Console()
    for i, case in enumerate(cases, 1):
        console.print(f"[{i}/{len(cases)}] {case.name}", highlight=False)
        rows.append(repair_case(case, Path(a.out), a.trial_steps))
    t = Table(title=f"repair: loss after {a.trial_steps} steps, script unchanged vs best injected remedy")
    for c in ("case", "before", "best remedy", "after", "improved", "rules' first = trial's best", "guard: final loss",
              "s"):
        t.add_column(c)
    for r in rows:
        f = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v if v is not None else "-")  # noqa: E731
        t.add_row(r["case"], f(r.get("before")), str(r.get("best", r.get("error", "-"))), f(r.get("after")),
                  "yes" if r.get("improved") else "no", "yes" if r.get("trial_first_choice") else "no",
                  f(r.get("guard_final_loss")), f"{r.get('seconds', 0):.0f}")
    console.print(t)
    repaired = sum(bool(r.get("improved")) for r in rows)
    console.print(f"repaired (loss lower after the best remedy): {repaired}/{len(rows)}")
    guarded = [r for r in rows if "guard_final_loss" in r]
    ok = sum(isinstance(r["guard_final_loss"], float) and math.isfinite(r["guard_final_loss"]) for r in guarded)
    console.print(f"NaN runs finishing finite under --guard: {ok}/{len(guarded)}")
    Path(a.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
