"""Repair benchmark: for every pathological case of the detection suite, the loss after the same
number of steps before and after the best remedy the trials found (remedies injected into the
unmodified script by ``gradwatch run --trial``), whether that was the rules' own first choice,
and, for cases that end in NaN, whether ``--guard`` makes the run finish with a finite loss.

    python benchmarks/repair.py                       # every pathological case (slow: re-runs)
    python benchmarks/repair.py --cases vanishing,lr_high --trial-steps 100
    python benchmarks/repair.py --cases dead_relu --update --json repair-results.json   # re-run a few

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


def guarded_end(run_dir: Path) -> dict:
    """The last recorded loss of a guarded run, whether it is finite, and how many steps had
    a non-finite value (the guard skips those; the run goes on)."""
    from gradwatch.record import load

    steps = load(run_dir).steps
    lo = steps["loss"].to_numpy(dtype=float)
    last = float(lo[-1]) if len(lo) else float("nan")
    return {"guard_final_loss": last, "guard_finite": math.isfinite(last), "guard_steps": int(len(lo)),
            "guard_nonfinite_steps": int((steps["nonfinite"] != "").sum())}


def repair_case(case, out: Path, trial_steps: int) -> dict:
    t0 = time.perf_counter()
    base_dir = out / case.name / "baseline"
    gradwatch("run", "--trial", "--trial-steps", str(trial_steps), "--out", str(base_dir),
              "--json", str(base_dir) + ".json", case.path)
    row = {"case": case.name, "expect": case.expect, "trial_steps": trial_steps}
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
    row["script_steps"] = ranked.get("steps")
    if tried:
        best = min(tried, key=lambda r: r["trial"]["after"] if isinstance(r["trial"]["after"], float) else math.inf)
        row.update(before=tried[0]["trial"]["before"], best=best["id"], after=best["trial"]["after"],
                   rule_first=first_serious["remedies"][0]["id"] if first_serious and first_serious["remedies"] else None)
        row["trial_first_choice"] = row["rule_first"] == best["id"]
        row["improved"] = _better(row["after"], row["before"])
        try:  # what the diagnosis of the best remedy's run still finds of the expected pathology
            arm = json.loads((base_dir / "trials" / f"{best['id']}.json").read_text())
            row["still_found"] = sorted({f["kind"] for f in arm["findings"] if f["severity"] != "info"}
                                        & set(case.expect or []))
        except (OSError, ValueError, KeyError):
            row["still_found"] = None
    if "nonfinite" in (case.expect or []):
        g = out / case.name / "guarded"
        proc = gradwatch("run", "--guard", "--out", str(g), "--json", str(g) + ".json", case.path)
        row["guard_exit"] = proc.returncode
        try:
            row.update(guarded_end(g))
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["guard_final_loss"], row["guard_finite"] = f"error: {e}", False
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
    ap.add_argument("--update", action="store_true",
                    help="re-run only --cases and replace their rows in an existing --json; print them all")
    a = ap.parse_args()
    cases = [c for c in find_cases([HERE / "detection" / "cases"], a.cases) if c.expect]
    rows = []
    console = Console(width=220)
    for i, case in enumerate(cases, 1):
        console.print(f"[{i}/{len(cases)}] {case.name}", highlight=False)
        rows.append(repair_case(case, Path(a.out), a.trial_steps))
    if a.update and Path(a.json).exists():
        new = {r["case"]: r for r in rows}
        old = json.loads(Path(a.json).read_text())
        rows = [new.pop(r["case"], r) for r in old] + list(new.values())
    t = Table(title=f"repair: loss after {a.trial_steps} steps (or the script's own length if shorter), "
                    "script unchanged vs best injected remedy")
    for c in ("case", "before", "best remedy (trial)", "after", "improved", "expected kind still found",
              "rules' first choice", "= trial's best", "guard: last loss (non-finite steps skipped)", "s"):
        t.add_column(c, overflow="fold")
    for r in rows:
        f = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v if v is not None else "-")  # noqa: E731
        still = r.get("still_found")
        guard = "-" if "guard_final_loss" not in r else (
            f"{f(r['guard_final_loss'])} ({r.get('guard_nonfinite_steps', '?')}/{r.get('guard_steps', '?')}, "
            f"exit {r.get('guard_exit')})")
        t.add_row(r["case"], f(r.get("before")), str(r.get("best", r.get("error", "-"))), f(r.get("after")),
                  "yes" if r.get("improved") else "no", "-" if still is None else (", ".join(still) or "none"),
                  str(r.get("rule_first") or "-"), "yes" if r.get("trial_first_choice") else "no",
                  guard, f"{r.get('seconds', 0):.0f}")
    console.print(t)
    repaired = sum(bool(r.get("improved")) for r in rows)
    console.print(f"loss lower after the best remedy: {repaired}/{len(rows)}")
    gone = sum(r.get("improved") and r.get("still_found") == [] for r in rows)
    console.print(f"... and the expected pathology no longer found in the remedied run: {gone}/{len(rows)}")
    first = sum(bool(r.get("trial_first_choice")) for r in rows if "best" in r)
    console.print(f"trial's best = rules' first choice: {first}/{sum('best' in r for r in rows)}")
    guarded = [r for r in rows if "guard_final_loss" in r]
    ok = sum(bool(r.get("guard_finite")) for r in guarded)
    console.print(f"NaN cases whose run ends on a finite loss under --guard: {ok}/{len(guarded)}")
    Path(a.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
