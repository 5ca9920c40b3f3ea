"""Repair benchmark: for every pathological case of the detection suite, the loss after the same
number of steps before and after the best remedy the trials found (remedies injected into the
unmodified script by ``gradwatch run --trial``), whether that was the rules' own first choice,
for cases that end in NaN, whether ``--guard`` makes the run finish with a finite loss, and
whether the case, run in full with that best remedy, reaches the metric of its healthy twin.

The twin (``benchmarks/repair_twins/<case>.py``) is the same script with the pathology removed by
hand: same data, architecture and depth, batch size, number of steps and loss. Every case and twin
ends with one line ``eval NAME=VALUE`` (an accuracy or an R², computed under ``torch.no_grad()``
after training). Per case this benchmark runs the twin (its N steps), the case unchanged and the
case with the best remedy injected (``gradwatch run --remedy ID case.py``: the whole script, the
same N steps; the steps the watcher recorded are checked against it). *Reached*: remedied metric
>= twin metric - ``--tol``. The issue allows a remedied case 1.5x its twin's steps: a case not there
at N runs again, remedied, with its training loop stretched to 1.5N (:func:`stretched`); both
results are kept (``reached_at_n``, ``stretched_*``).

    python benchmarks/repair.py                       # every pathological case (slow: re-runs)
    python benchmarks/repair.py --cases vanishing,lr_high --trial-steps 100
    python benchmarks/repair.py --cases dead_relu --update --json repair-results.json   # re-run a few
    python benchmarks/repair.py --trials-from repair-results.json   # reuse each case's earlier trial

Prints a rich table and writes repair-results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "detection"))

from scoring import find_cases  # noqa: E402

#: metric tolerance for "reached", absolute, on accuracy / R² (both in [0, 1] for a useful model).
#: Why 0.02: it is about the run-to-run spread of the twins themselves (measured: see the README's
#: "## Repair"), and 2% of the training digits is 36 images; a smaller tolerance would call the
#: seed's noise a failure, a larger one would hide real shortfalls.
TOL = 0.02
EVAL_RE = re.compile(r"^eval (\w+)=(\S+)\s*$", re.M)


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


def eval_line(text: str) -> tuple[str | None, float | None]:
    """The last ``eval NAME=VALUE`` line a script printed: (name, value); (None, None) if none."""
    found = EVAL_RE.findall(text)
    if not found:
        return None, None
    name, value = found[-1]
    try:
        return name, float(value)
    except ValueError:
        return name, float("nan")


def run_metric(cmd: list[str], timeout: float = 1800) -> dict:
    """Run a script (plain or under ``gradwatch run``) and read its eval line and exit status."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    name, value = eval_line(proc.stdout)
    return {"metric": name, "value": value, "exit": proc.returncode, "seconds": time.perf_counter() - t}


SEED_RE = re.compile(r"torch\.manual_seed\(\d+\)")


def seeded(script: Path, k: int, folder: Path) -> Path:
    """Seed 0: the script itself. Seed k > 0: a copy in ``folder`` whose first
    ``torch.manual_seed(..)`` call (the script's own, at the top) is ``torch.manual_seed(100 + k)``."""
    if k == 0:
        return Path(script)
    src = Path(script).read_text()
    if not SEED_RE.search(src):
        raise ValueError(f"{script} never calls torch.manual_seed(N); cannot vary its seed")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{Path(script).stem}_seed{100 + k}.py"
    copy.write_text(SEED_RE.sub(f"torch.manual_seed({100 + k})", src, count=1))
    return copy


#: the issue's allowance: a remedied case may take up to this many times its twin's steps.
STEP_ALLOWANCE = 1.5


def training_loop(src: str):
    """The script's training loop: the one top-level ``for ... in range(EXPR)`` whose body calls
    ``.backward()`` or ``.step()``; its ``EXPR`` node. Raises ValueError when there is not exactly one."""
    import ast

    loops = []
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Name) and node.iter.func.id == "range"
                and len(node.iter.args) == 1):
            continue
        calls = {c.func.attr for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)}
        if calls & {"backward", "step"}:
            loops.append(node.iter.args[0])
    if len(loops) != 1:
        raise ValueError(f"found {len(loops)} top-level `for _ in range(N)` training loops, need exactly one")
    return loops[0]


def stretched(script: Path, factor: float, folder: Path) -> Path:
    """A copy of ``script`` in ``folder`` whose training loop runs ``factor`` times as many
    iterations: ``range(EXPR)`` becomes ``range(int(round(factor * (EXPR))))`` (steps, or epochs for
    an epoch loop). Everything else, its seed included, is unchanged.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); s = d / "t.py"
    >>> _ = s.write_text("for i in range(3):\\n    pass\\nfor step in range(100):\\n    loss.backward()\\n")
    >>> "range(int(round(1.5 * (100))))" in stretched(s, 1.5, d / "out").read_text()
    True
    """
    src = Path(script).read_text()
    node = training_loop(src)
    lines = src.splitlines(keepends=True)
    if node.lineno != node.end_lineno:
        raise ValueError(f"{script}: the training loop's range() spans lines")
    line = lines[node.lineno - 1]
    start, end = node.col_offset, node.end_col_offset  # byte offsets; the cases' loop lines are ASCII
    if len(line.encode()) != len(line):
        raise ValueError(f"{script}: non-ASCII training-loop line")
    expr = line[start:end]
    lines[node.lineno - 1] = f"{line[:start]}int(round({factor:g} * ({expr}))){line[end:]}"
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{Path(script).stem}_x{factor:g}.py"
    copy.write_text("".join(lines))
    return copy


def _mean(values: list) -> float | None:
    """Mean over seeds; NaN when any seed crashed or ended non-finite (it counts as failed)."""
    if not values:
        return None
    if any(v is None or not math.isfinite(v) for v in values):
        return float("nan")
    return sum(values) / len(values)


def measure_reach(case, twin: Path, best: str | None, out: Path, tol: float, seeds: int = 3) -> dict:
    """The twin's metric, the case's unchanged and with ``best`` injected for its whole length, each
    averaged over ``seeds`` seeds, and whether the remedied case reached the twin: mean ``>= twin's
    mean - tol`` within 1.5x the twin's steps.

    Seed 0 runs each script as it is; seed k > 0 a copy with the script's own seed replaced
    (:func:`seeded`). The twin also runs once under ``gradwatch run`` (its step count and the
    diagnosis' verdict on it); the remedied case runs under ``gradwatch run --remedy`` (its metric
    and recorded step count); the twin and the unchanged case run plainly.
    """
    row: dict = {"tol": tol, "seeds": seeds}
    if not twin.exists():
        row["twin_error"] = f"no twin at {twin}"
        return row
    sdir = out / case.name / "seeds"
    tw = [run_metric([sys.executable, str(seeded(twin, k, sdir / "twin"))]) for k in range(seeds)]
    plain = [run_metric([sys.executable, str(seeded(Path(case.path), k, sdir / "case"))]) for k in range(seeds)]
    tdir = out / case.name / "twin"
    watched = run_metric([sys.executable, "-m", "gradwatch.cli", "run", "--overwrite", "--out", str(tdir), "--json",
                          str(tdir) + ".json", str(twin)])
    row.update(metric=tw[0]["metric"], twin_metrics=[r["value"] for r in tw], twin_exits=[r["exit"] for r in tw],
               twin_metric_watched=watched["value"], twin_steps=_steps(tdir),
               case_metrics=[r["value"] for r in plain], case_exits=[r["exit"] for r in plain])
    row["twin_metric"], row["case_metric"] = _mean(row["twin_metrics"]), _mean(row["case_metrics"])
    try:
        row["twin_verdict"] = json.loads(Path(str(tdir) + ".json").read_text())["verdict"]
    except (OSError, ValueError, KeyError):
        row["twin_verdict"] = None
    tv = row["twin_metric"]
    row["case_at_twin"] = bool(_finite(tv) and _finite(row["case_metric"]) and row["case_metric"] >= tv - tol)
    if best is None:
        return row
    def remedied(tag: str, script_for_seed) -> tuple[list[dict], list]:
        rem, steps = [], []
        for k in range(seeds):
            rdir = out / case.name / f"{tag}-{best}-seed{k}"
            rem.append(run_metric([sys.executable, "-m", "gradwatch.cli", "run", "--overwrite", "--remedy", best, "--out",
                                   str(rdir), "--json", str(rdir) + ".json", str(script_for_seed(k))]))
            steps.append(_steps(rdir))
        return rem, steps

    def seed_script(k: int) -> Path:
        return seeded(Path(case.path), k, sdir / "case")

    def within(ran) -> bool:  # the steps a remedied run recorded, against the allowance
        ts = row["twin_steps"]
        return bool(ts and ran and ran <= STEP_ALLOWANCE * ts)

    rem, steps = remedied("full", seed_script)
    row.update(remedied_metrics=[r["value"] for r in rem], remedied_exits=[r["exit"] for r in rem],
               remedied_steps_per_seed=steps, remedied_steps=max((s for s in steps if s), default=None))
    row["remedied_metric"] = rv = _mean(row["remedied_metrics"])
    row["within_steps"] = within(row["remedied_steps"])
    row["reached_at_n"] = bool(_finite(tv) and _finite(rv) and rv >= tv - tol and row["within_steps"])
    row["reached"] = row["reached_at_n"]
    if row["reached"] or not _finite(tv):
        return row
    # Not there in N steps: the issue allows 1.5x the twin's steps, so run the remedied case that long.
    try:
        rem, steps = remedied(f"x{STEP_ALLOWANCE:g}",
                              lambda k: stretched(seed_script(k), STEP_ALLOWANCE, sdir / f"x{STEP_ALLOWANCE:g}"))
    except ValueError as e:
        row["stretched_error"] = str(e)
        return row
    row.update(stretched_metrics=[r["value"] for r in rem], stretched_exits=[r["exit"] for r in rem],
               stretched_steps=max((s for s in steps if s), default=None))
    row["stretched_metric"] = sv = _mean(row["stretched_metrics"])
    row["reached"] = bool(_finite(sv) and sv >= tv - tol and within(row["stretched_steps"]))
    return row


def _seeds_cell(values, exits, sd: bool = True) -> str:
    """A table cell for per-seed metrics: mean (± sd), or what went wrong."""
    if not values:
        return "-"
    crashed = [e for v, e in zip(values, exits or [0] * len(values)) if v is None]
    if crashed:
        return f"crash {len(crashed)}/{len(values)} (exit {crashed[0]})"
    if not all(math.isfinite(v) for v in values):
        return f"non-finite {sum(not math.isfinite(v) for v in values)}/{len(values)}"
    m = sum(values) / len(values)
    if not sd or len(values) < 2:
        return f"{m:.3f}"
    return f"{m:.3f} ± {(sum((v - m) ** 2 for v in values) / len(values)) ** 0.5:.3f}"


def _finite(v) -> bool:
    return isinstance(v, float) and math.isfinite(v)


def _steps(run_dir: Path) -> int | None:
    """Optimizer steps a ``gradwatch run`` recorded (None if it recorded nothing)."""
    from gradwatch.record import load

    try:
        return int(len(load(run_dir).steps))
    except Exception:  # noqa: BLE001 - a run that recorded nothing has no steps
        return None


TRIAL_KEYS = ("found", "script_steps", "before", "best", "after", "rule_first", "trial_first_choice",
              "improved", "still_found", "trial_steps")


def trial_case(case, out: Path, trial_steps: int) -> dict:
    """``gradwatch run --trial`` on the case: the best remedy by the trials' loss, and what the
    rules would have chosen first."""
    base_dir = out / case.name / "baseline"
    gradwatch("run", "--overwrite", "--trial", "--trial-steps", str(trial_steps), "--out", str(base_dir),
              "--json", str(base_dir) + ".json", case.path)
    row: dict = {"trial_steps": trial_steps}
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
        # the exact spec the trial injected (add_warmup:25), so the full run applies what was tried
        row.update(before=tried[0]["trial"]["before"], best=best["trial"].get("applied") or best["id"],
                   after=best["trial"]["after"],
                   rule_first=first_serious["remedies"][0]["id"] if first_serious and first_serious["remedies"] else None)
        row["trial_first_choice"] = row["rule_first"] == best["id"]
        row["improved"] = _better(row["after"], row["before"])
        from gradwatch.script_trials import arm_dir

        try:  # what the diagnosis of the best remedy's run still finds of the expected pathology
            arm = json.loads((base_dir / "trials" / f"{arm_dir(row['best'])}.json").read_text())
            row["still_found"] = sorted({f["kind"] for f in arm["findings"] if f["severity"] != "info"}
                                        & set(case.expect or []))
        except (OSError, ValueError, KeyError):
            row["still_found"] = None
    return row


def repair_case(case, out: Path, trial_steps: int, twins: Path, tol: float, reuse: dict | None = None,
                seeds: int = 3) -> dict:
    """One row: the trial (run now, or ``reuse``d from an earlier result), the guard for NaN
    cases, and the twin comparison."""
    t0 = time.perf_counter()
    row: dict = {"case": case.name, "expect": case.expect}
    if reuse is not None and reuse.get("best"):
        row.update({k: reuse[k] for k in TRIAL_KEYS if k in reuse})
        row["trial_reused"] = True
        if "trial_seconds" in reuse or "seconds" in reuse:
            row["trial_seconds"] = reuse.get("trial_seconds", reuse.get("seconds"))
    else:
        row.update(trial_case(case, out, trial_steps))
        row["trial_seconds"] = time.perf_counter() - t0
    if "nonfinite" in (case.expect or []):
        g = out / case.name / "guarded"
        proc = gradwatch("run", "--overwrite", "--guard", "--out", str(g), "--json", str(g) + ".json", case.path)
        row["guard_exit"] = proc.returncode
        try:
            row.update(guarded_end(g))
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["guard_final_loss"], row["guard_finite"] = f"error: {e}", False
    row.update(measure_reach(case, twins / f"{case.name}.py", row.get("best"), out, tol, seeds))
    row["seconds"] = time.perf_counter() - t0
    return row


def _better(after, before) -> bool:
    a = after if isinstance(after, float) else math.inf
    b = before if isinstance(before, float) else math.inf
    return math.isfinite(a) and a < b


def report(rows: list[dict], console) -> None:
    """Print the trial table, the twin table and the summary lines for a list of result rows."""
    from rich.table import Table

    f = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v if v is not None else "-")  # noqa: E731
    ks = sorted({str(r["trial_steps"]) for r in rows if r.get("trial_steps")}) or ["?"]
    t = Table(title=f"repair: loss after K={'/'.join(ks)} steps (or the script's own length if shorter), "
                    "script unchanged vs best injected remedy")
    for c in ("case", "before", "best remedy (trial)", "after", "improved", "expected kind still found",
              "rules' first choice", "= trial's best", "guard: last loss (non-finite steps skipped)", "s"):
        t.add_column(c, overflow="fold")
    for r in rows:
        still = r.get("still_found")
        guard = "-" if "guard_final_loss" not in r else (
            f"{f(r['guard_final_loss'])} ({r.get('guard_nonfinite_steps', '?')}/{r.get('guard_steps', '?')}, "
            f"exit {r.get('guard_exit')})")
        t.add_row(r["case"], f(r.get("before")), str(r.get("best", r.get("error", "-"))), f(r.get("after")),
                  "yes" if r.get("improved") else "no", "-" if still is None else (", ".join(still) or "none"),
                  str(r.get("rule_first") or "-"), "yes" if r.get("trial_first_choice") else "no",
                  guard, f"{r.get('seconds', 0):.0f}")
    console.print(t)
    tol = next((r["tol"] for r in rows if "tol" in r), TOL)
    seeds = next((r["seeds"] for r in rows if "seeds" in r), 1)
    t2 = Table(title=f"reach: each script run in full (N steps), mean over {seeds} seed(s); healthy twin vs case "
                     f"unchanged vs case with the trial's best remedy injected; reached = remedied >= twin - {tol:g}")
    for c in ("case", "metric", "N (twin)", "twin (± sd)", "case", "case + best remedy (± sd)", "remedy",
              "steps run", f"not there at N: {STEP_ALLOWANCE:g}N steps (± sd)", "reached", "twin verdict"):
        t2.add_column(c, overflow="fold")
    for r in rows:
        t2.add_row(r["case"], str(r.get("metric") or r.get("twin_error", "-")), f(r.get("twin_steps")),
                   _seeds_cell(r.get("twin_metrics"), r.get("twin_exits")),
                   _seeds_cell(r.get("case_metrics"), r.get("case_exits"), sd=False),
                   _seeds_cell(r.get("remedied_metrics"), r.get("remedied_exits")) if r.get("best") else "-",
                   str(r.get("best") or "-"), f(r.get("remedied_steps")),
                   _seeds_cell(r.get("stretched_metrics"), r.get("stretched_exits"))
                   + (f" ({r['stretched_steps']} steps)" if r.get("stretched_steps") else ""),
                   ("yes" if r.get("reached_at_n", r.get("reached")) else f"yes, in {STEP_ALLOWANCE:g}N")
                   if r.get("reached") else "no", str(r.get("twin_verdict") or "-"))
    console.print(t2)
    repaired = sum(bool(r.get("improved")) for r in rows)
    console.print(f"loss lower after the best remedy: {repaired}/{len(rows)}")
    gone = sum(r.get("improved") and r.get("still_found") == [] for r in rows)
    console.print(f"... and the expected pathology no longer found in the remedied run: {gone}/{len(rows)}")
    first = sum(bool(r.get("trial_first_choice")) for r in rows if "best" in r)
    console.print(f"trial's best = rules' first choice: {first}/{sum('best' in r for r in rows)}")
    guarded = [r for r in rows if "guard_final_loss" in r]
    ok = sum(bool(r.get("guard_finite")) for r in guarded)
    done = sum(bool(r.get("guard_finite")) and r.get("guard_exit") == 0 for r in guarded)
    console.print(f"NaN cases whose run ends on a finite loss under --guard: {ok}/{len(guarded)} "
                  f"(... and the script finishes, exit 0: {done}/{len(guarded)})")
    reached = sum(bool(r.get("reached")) for r in rows)
    at_n = sum(bool(r.get("reached_at_n", r.get("reached"))) for r in rows)
    already = [r for r in rows if r.get("case_at_twin")]
    console.print(f"reached the healthy twin's metric within {STEP_ALLOWANCE:g}x its steps: {reached}/{len(rows)} "
                  f"(tolerance {tol:g}, mean of {seeds} seed(s)); at the script's own N steps = the twin's: "
                  f"{at_n}/{len(rows)}")
    console.print(f"... unremedied case already at the twin's metric: {len(already)}/{len(rows)}; reached among the "
                  f"others: {sum(bool(r.get('reached')) for r in rows if not r.get('case_at_twin'))}"
                  f"/{len(rows) - len(already)}")


def main() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from rich.console import Console

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=None, help="comma-separated name patterns")
    ap.add_argument("--trial-steps", type=int, default=150)
    ap.add_argument("--out", default="gradwatch-runs/repair")
    ap.add_argument("--json", default="repair-results.json")
    ap.add_argument("--update", action="store_true",
                    help="re-run only --cases and replace their rows in an existing --json; print them all")
    ap.add_argument("--trials-from", default=None, metavar="JSON",
                    help="reuse each case's trial (best remedy, losses) from an earlier result; run trials "
                         "only for cases it lacks. Twins, full remedied runs and guards always re-run.")
    ap.add_argument("--twins", default=str(HERE / "repair_twins"), help="folder of the healthy twins")
    ap.add_argument("--tol", type=float, default=TOL, help="metric tolerance for 'reached' (absolute)")
    ap.add_argument("--seeds", type=int, default=3,
                    help="seeds per script for the twin comparison (seed 0 = the script as written)")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (each is a chain of processes)")
    ap.add_argument("--report", action="store_true", help="only print the tables of an existing --json; run nothing")
    a = ap.parse_args()
    console = Console(width=260)
    if a.report:
        report(json.loads(Path(a.json).read_text()), console)
        return
    cases = [c for c in find_cases([HERE / "detection" / "cases"], a.cases) if c.expect]
    reuse = {}
    if a.trials_from:
        reuse = {r["case"]: r for r in json.loads(Path(a.trials_from).read_text())}
    t_start = time.perf_counter()

    def one(ic):
        i, case = ic
        console.print(f"[{i}/{len(cases)}] {case.name}", highlight=False)
        return repair_case(case, Path(a.out), a.trial_steps, Path(a.twins), a.tol, reuse.get(case.name), a.seeds)

    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        rows = list(pool.map(one, enumerate(cases, 1)))
    wall = time.perf_counter() - t_start
    if a.update and Path(a.json).exists():
        new = {r["case"]: r for r in rows}
        old = json.loads(Path(a.json).read_text())
        rows = [new.pop(r["case"], r) for r in old] + list(new.values())
    report(rows, console)
    console.print(f"wall time: {wall / 60:.1f} min ({a.jobs} job(s))")
    Path(a.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
