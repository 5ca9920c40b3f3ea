"""Detection-quality benchmark: run every case under `gradwatch run` and score the diagnosis.

Each script in ``cases/`` is an ordinary PyTorch training script (it never imports
gradwatch) whose header says what a correct diagnosis contains::

    # expect: vanishing_gradients            (or: # expect: healthy)
    # also-ok: saturated_activations         (optional: legitimate side effects)

The benchmark runs ``gradwatch run --out DIR --json FILE case.py`` for each script,
reads the diagnosis JSON (schema in docs/DESIGN.md) and counts, per finding kind,

* TP — an expected kind found with severity warning or critical,
* FN — an expected kind not found (or only as ``info``),
* FP — a warning/critical kind that is neither expected nor listed in ``also-ok``,

then prints precision and recall and how many healthy runs raised a serious finding.

Usage::

    python benchmarks/detection/run.py                      # all cases, one at a time
    python benchmarks/detection/run.py --cases 'vanishing*,lstm' --jobs 2
    python benchmarks/detection/run.py --dir my_scripts/ --out results.json
    python benchmarks/detection/run.py --list               # show the cases, run nothing
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from scoring import SERIOUS, Case, Result, find_cases, score, summary

HERE = Path(__file__).resolve().parent


def gradwatch_exe() -> str:
    """The ``gradwatch`` console script installed next to this Python, else the one on PATH."""
    exe = Path(sys.executable).parent / "gradwatch"
    if exe.exists():
        return str(exe)
    found = shutil.which("gradwatch")
    if not found:
        sys.exit("error: no `gradwatch` next to this Python or on PATH; "
                 "install it with `pip install -e .` in the repository")
    return found


def run_case(case: Case, runs: Path, exe: str, timeout: float) -> Result:
    """Run one script under ``gradwatch run`` and score its diagnosis JSON."""
    out_dir, js = runs / case.name, runs / f"{case.name}.json"
    shutil.rmtree(out_dir, ignore_errors=True)
    js.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200")
    cmd = [exe, "run", "--out", str(out_dir), "--json", str(js), case.path]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=Path(case.path).parent, env=env, capture_output=True,
                              text=True, timeout=timeout)
        rc, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, log = None, f"timed out after {timeout:.0f}s\n{e.stdout or ''}{e.stderr or ''}"
    res = Result(case, time.perf_counter() - t0, rc)
    (runs / f"{case.name}.log").write_text(log if isinstance(log, str) else str(log))
    if not js.exists():
        lines = [ln.strip() for ln in str(log).strip().splitlines() if ln.strip()] or ["no output"]
        said = [i for i, ln in enumerate(lines) if ln.startswith("gradwatch:")]
        tail = " ".join(lines[said[-1]:] if said else lines[-1:])
        res.error = f"no diagnosis JSON (exit {rc}): {tail[:200]}"
        return res
    try:
        diagnosis = json.loads(js.read_text())
    except json.JSONDecodeError as e:
        res.error = f"unreadable diagnosis JSON: {e}"
        return res
    res.verdict = diagnosis.get("verdict")
    res.found, res.tp, res.fn, res.fp, res.outcome = score(case, diagnosis)
    return res


def fmt_ratio(x: float | None) -> str:
    """A ratio with two decimals, or an em dash when undefined (no TP+FP or TP+FN)."""
    return "—" if x is None else f"{x:.2f}"


def print_report(results: list[Result], summ: dict) -> None:
    """Render the per-case, per-kind and overall tables with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    style = {"OK": "green", "miss": "red", "false alarm": "yellow", "miss+false alarm": "red",
             "error": "red bold", "unlabelled": "dim"}
    t = Table(title="gradwatch detection benchmark — per case", show_lines=False)
    for col, kw in (("case", {"no_wrap": True}), ("expected", {}), ("found (warning/critical)", {}),
                    ("verdict", {}), ("rc", {"justify": "right"}), ("s", {"justify": "right"})):
        t.add_column(col, **kw)
    for r in results:
        exp = "—" if r.case.expect is None else (", ".join(r.case.expect) or "healthy")
        if r.case.also_ok:
            exp += f"\n[dim]also ok: {', '.join(r.case.also_ok)}[/dim]"
        found = [f"[{'green' if k in r.tp else 'yellow' if k in r.fp else 'white'}]{k}[/]"
                 + ("" if s == "critical" else " (w)")
                 for k, s in sorted(r.found.items()) if s in SERIOUS]
        info = [k for k, s in sorted(r.found.items()) if s not in SERIOUS]
        cell = ", ".join(found) or ("[red]" + r.error + "[/]" if r.error else "none")
        if info:
            cell += f"\n[dim]info: {', '.join(info)}[/dim]"
        verdict = f"[{style[r.outcome]}]{r.outcome}[/]"
        if r.fn:
            verdict += f"\n[dim]missed: {', '.join(r.fn)}[/dim]"
        t.add_row(r.case.name, exp, cell, verdict,
                  "—" if r.script_rc is None else str(r.script_rc), f"{r.seconds:.1f}")
    console.print(t)
    console.print("[dim](w) = warning, otherwise critical; rc = the script's own exit status[/dim]")

    k = Table(title="per finding kind")
    for col in ("kind", "TP", "FN", "FP", "precision", "recall"):
        k.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in summ["per_kind"].items():
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
        rc = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
        k.add_row(kind, str(c["tp"]), str(c["fn"]), str(c["fp"]), fmt_ratio(p), fmt_ratio(rc))
    k.add_row("[bold]all[/bold]", str(summ["tp"]), str(summ["fn"]), str(summ["fp"]),
              fmt_ratio(summ["precision"]), fmt_ratio(summ["recall"]), end_section=True)
    console.print(k)
    alarmed = summ["healthy_with_serious_finding"]
    console.print(f"cases OK: {summ['ok']}/{summ['cases']}   precision {fmt_ratio(summ['precision'])}"
                  f"   recall {fmt_ratio(summ['recall'])}")
    console.print(f"healthy runs with a warning-or-critical finding: {len(alarmed)}/{summ['healthy_runs']}"
                  + (f" ({', '.join(alarmed)})" if alarmed else ""))
    if summ["errors"]:
        console.print(f"[red]no diagnosis for: {', '.join(summ['errors'])}[/red]")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", metavar="PATTERN", help="only cases whose name matches: comma-separated globs or substrings, "
                         "e.g. 'vanishing*,lstm'")
    ap.add_argument("--dir", action="append", type=Path, metavar="DIR",
                    help="a folder of training scripts to run instead of cases/ (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here "
                                             "(default RUNS/results.json)")
    ap.add_argument("--runs", type=Path, help="where the run directories, diagnosis JSON and logs go "
                                              "(default gradwatch-runs/detection-<time>)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per case (default 300)")
    ap.add_argument("--list", action="store_true", help="list the cases and their expectations, run nothing")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")

    cases = find_cases(args.dir or [HERE / "cases"], args.cases)
    if not cases:
        print(f"no cases match {args.cases!r}", file=sys.stderr)
        return 0
    if args.list:
        for c in cases:
            exp = "?" if c.expect is None else (", ".join(c.expect) or "healthy")
            print(f"{c.name:40s} {exp}" + (f"   (also ok: {', '.join(c.also_ok)})" if c.also_ok else ""))
        return 0

    exe = gradwatch_exe()
    runs = (args.runs or Path("gradwatch-runs") / time.strftime("detection-%Y%m%d-%H%M%S")).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    print(f"running {len(cases)} case(s) with {exe} run, {args.jobs} at a time; runs in {runs}", flush=True)

    def one(case: Case) -> Result:
        r = run_case(case, runs, exe, args.timeout)
        print(f"  {case.name:40s} {r.outcome:18s} {r.seconds:6.1f}s", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, cases))

    summ = summary(results)
    print_report(results, summ)
    out = args.out or runs / "results.json"
    payload = {"gradwatch": exe, "runs": str(runs), "summary": summ,
               "cases": [{**asdict(r), "case": asdict(r.case)} for r in results]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
