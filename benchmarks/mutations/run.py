"""Mutation benchmark: healthy bases × injected faults × seeds, each run as a user runs a script under gradwatch.

For every (base, fault, seed) a standalone training script is generated and run the way
``gradwatch run --out D SCRIPT`` runs it — in this process, through the same entry point
(:func:`gradwatch.runscript.run_script` with the CLI's defaults), then diagnosed as
``gradwatch diagnose D --json F`` does (the HTML report is not written). A pool of worker
processes keeps torch imported between runs, one thread each.

Usage::

    python benchmarks/mutations/run.py --half A          # settle on half A (results-A.json)
    python benchmarks/mutations/run.py --half B          # the held-back half, once
    python benchmarks/mutations/run.py --half all --bases mlp_digits --faults lr_x100,detach_inside
    python benchmarks/mutations/run.py --list            # bases, faults, labels; runs nothing
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mutations import scoring  # noqa: E402


class RunTimeout(Exception):
    """A run took longer than ``--timeout`` seconds."""


def _code_version() -> str:
    """The commit the library was at, and whether its sources had uncommitted changes."""
    import subprocess

    root = HERE.parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else "")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE.parent))


def _alarm(signum, frame):
    raise RunTimeout("timed out")


def run_one(task: dict) -> dict:
    """Generate, run and diagnose one (base, fault, seed); return its row."""
    import contextlib
    import shutil
    import signal

    from gradwatch.diagnosis import diagnose
    from gradwatch.record import load
    from gradwatch.runscript import run_script
    from mutations.loop import label_of, script_text

    name = f"{task['base']}__{task['fault'] or 'healthy'}__s{task['seed']}"
    d = Path(task["runs"]) / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    script, metrics, out = d / "train.py", d / "metrics.json", d / "run"
    script.write_text(script_text(str(HERE.parent), task["base"], task["fault"], task["seed"], str(metrics)))
    row = {k: task[k] for k in ("base", "fault", "seed", "half")}
    if task["fault"]:
        row["label"] = label_of(task["base"], task["fault"])
    if task.get("cli"):
        return _finish_row(row, _run_cli(script, out, d, task["timeout"]), d, metrics, out, task)
    old = signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    try:
        with open(d / "log.txt", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            signal.alarm(int(task["timeout"]))
            # the defaults of `gradwatch run`: --every 10 --stats-budget 0.005, no remedy, no step limit
            status, watcher = run_script(script, [], out, every=10, stats_budget=0.005, remedy=None, max_steps=None)
            row["status"] = status
            if watcher is None:
                row["error"] = "no optimizer step was watched"
            else:
                (d / "diagnosis.json").write_text(diagnose(load(out)).to_json())
            signal.alarm(0)
    except BaseException as e:  # noqa: BLE001 - a benchmark row, never a dead pool
        row["error"] = f"{type(e).__name__}: {e}"[:300]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    row["seconds"] = time.perf_counter() - t0
    return _finish_row(row, None, d, metrics, out, task)


def _run_cli(script: Path, out: Path, d: Path, timeout: float) -> dict:
    """``gradwatch run --out D --json F SCRIPT`` in a subprocess: exactly what a user types."""
    import subprocess

    exe = Path(sys.executable).parent / "gradwatch"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    row: dict = {}
    with open(d / "log.txt", "w") as log:
        try:
            proc = subprocess.run([str(exe), "run", "--out", str(out), "--json", str(d / "diagnosis.json"), str(script)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            row["status"] = proc.returncode
        except subprocess.TimeoutExpired:
            row["error"] = "timed out"
    row["seconds"] = time.perf_counter() - t0
    return row


def _finish_row(row: dict, cli: dict | None, d: Path, metrics: Path, out: Path, task: dict) -> dict:
    """Fill a run's row from its diagnosis JSON and metrics file; drop its record unless kept."""
    import gc
    import shutil

    from mutations.peers import spike_step

    if cli is not None:
        row.update(cli)
    m = json.loads(metrics.read_text()) if metrics.exists() else {}
    if m and not m.get("applicable", True):
        row.update(applicable=False, reason=m.get("reason"))
        row.pop("error", None)
        return row
    dj = json.loads((d / "diagnosis.json").read_text()) if (d / "diagnosis.json").exists() else None
    if dj is None and "error" not in row:
        row["error"] = "no diagnosis (no optimizer step was watched?)"
    if dj is not None:
        row["steps"] = dj.get("steps")
        row["verdict"] = dj.get("verdict")
        row["findings"] = [{k: f.get(k) for k in ("kind", "severity", "first_step", "layers", "summary",
                                                  "consequence_of") if k in f}
                           for f in dj.get("findings", [])]
        for f in row["findings"]:
            f["layers"] = (f.get("layers") or [])[:6]
    for k in ("eval", "nonfinite_loss", "train_seconds", "step0_grad_first_last"):
        if k in m:
            row[k] = m[k]
    if m.get("losses") is not None:
        row["spike_step"] = spike_step(m["losses"])
    if "eval" not in m and "error" not in row and row.get("status"):
        row["crashed"] = True
    if not task["keep"]:
        shutil.rmtree(out, ignore_errors=True)
    gc.collect()
    return row


def tasks_for(half: str, bases_pat: str | None, faults_pat: str | None, fault_seeds: int, healthy_seeds: int,
              runs: Path, timeout: float, keep: bool, cli: bool = False) -> list[dict]:
    """Every (base, fault, seed) of the half; healthy runs (fault None) first within a base."""
    from mutations.bases import halves
    from mutations.faults import FAULTS

    def match(name, pat):
        return pat is None or any(fnmatch.fnmatch(name, p) or p in name for p in pat.split(","))

    tasks = []
    for b in halves(half):
        if not match(b.name, bases_pat):
            continue
        if faults_pat is None or match("healthy", faults_pat):
            tasks += [dict(base=b.name, fault=None, seed=s, half=b.half) for s in range(healthy_seeds)]
        tasks += [dict(base=b.name, fault=f, seed=s, half=b.half)
                  for f in FAULTS if match(f, faults_pat) for s in range(fault_seeds)]
    for t in tasks:
        t.update(runs=str(runs), timeout=timeout, keep=keep, cli=cli)
    return tasks


def _ci(x, ci) -> str:
    return "—" if x is None else f"{x:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _ratio(row: dict) -> str:
    """‖∇W‖ of the first weight over the last one at step 0, as the script measured it."""
    g = row.get("step0_grad_first_last") or [None, None]
    if g[0] is None or g[1] is None:
        return "—"
    return f"{g[0] / g[1]:.1e}" if g[1] else "∞"


def print_report(rows: list[dict], s: dict, title: str) -> None:
    """The score table, the per-fault table and every miss, false alarm and error."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    k = Table(title=f"{title}: per finding kind (runs with a measurable effect + healthy runs)")
    for col in ("kind", "TP", "FN", "FP", "precision [95 % CI]", "recall [95 % CI]"):
        k.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in s["per_kind"].items():
        k.add_row(kind, str(c["tp"]), str(c["fn"]), str(c["fp"]), _ci(c["precision"], c["precision_ci"]),
                  _ci(c["recall"], c["recall_ci"]))
    console.print(k)
    p = s["peer_spike_detection"]
    lines = [
        f"runs {s['runs']} (scored {s['scored']}, healthy {s['healthy_runs']}, no measurable effect "
        f"{s['no_measurable_effect']} — of those {s['no_measurable_effect_flagged']} with a serious finding)",
        f"recall (an expected kind found)      {_ci(s['recall'], s['recall_ci'])}",
        f"root-cause accuracy (first finding)  {_ci(s['root_cause_accuracy'], s['root_cause_ci'])}",
        f"healthy runs with a warning          {s['healthy_false_alarms']}/{s['healthy_runs']} = "
        f"{_ci(s['healthy_false_alarm_rate'], s['healthy_false_alarm_ci'])}",
        f"seconds per run                      {s['seconds_per_run']:.2f} mean, {s['seconds_per_run_median']:.2f} median"
        if s["seconds_per_run"] else "",
        f"Lightning SpikeDetection (defaults)  flags {p['faulty_flagged']}/{p['faulty']} faulty runs, "
        f"{p['healthy_flagged']}/{p['healthy']} healthy runs",
    ]
    console.print("\n".join(x for x in lines if x))
    f = Table(title=f"{title}: per fault")
    for col in ("fault", "caught", "missed", "no effect", "root cause ok", "SpikeDetection"):
        f.add_column(col, justify="left" if col == "fault" else "right")
    for fault, c in s["per_fault"].items():
        n = c.get("caught", 0) + c.get("missed", 0)
        f.add_row(fault, str(c.get("caught", 0)), str(c.get("missed", 0)), str(c.get("no measurable effect", 0)),
                  f"{c.get('root_ok', 0)}/{n}", f"{c.get('spike', 0)}/{n}")
    console.print(f)
    bad = [r for r in rows if r.get("outcome") in ("missed", "false alarm", "error")
           or (r.get("outcome") == "caught" and not r.get("root_ok"))]
    if bad:
        t = Table(title=f"{title}: misses, wrong root causes, false alarms, errors")
        for col in ("base", "fault", "seed", "outcome", "expected", "found (serious, in order)", "‖∇W₁‖/‖∇W_L‖"):
            t.add_column(col)
        for r in sorted(bad, key=lambda r: (r["base"], str(r["fault"]), r["seed"])):
            out = r["outcome"] + ("" if r["outcome"] != "caught" else " (root cause wrong)")
            exp = ", ".join(r["label"]["expect"]) if r.get("label") else "healthy"
            t.add_row(r["base"], str(r["fault"]), str(r["seed"]), out, exp,
                      r.get("error") or ", ".join(r["found"]) or "none", _ratio(r))
        console.print(t)


def markdown(rows: list[dict], s: dict, title: str) -> str:
    """The score as Markdown tables (for the README)."""
    def ci(x, c):
        return "—" if x is None else f"{x:.2f} [{c[0]:.2f}, {c[1]:.2f}]"

    out = [f"**{title}** — {s['runs']} runs: {s['scored']} scored, {s['healthy_runs']} healthy, "
           f"{s['no_measurable_effect']} with no measurable effect ({s['no_measurable_effect_flagged']} of them "
           f"with a serious finding), {s.get('not_applicable', 0)} not applicable; "
           f"{s['seconds_per_run']:.1f} s a run (median {s['seconds_per_run_median']:.1f} s), "
           f"{s.get('wall_seconds', 0) / 60:.1f} min wall with {s.get('jobs', 2)} workers.", "",
           "| | value [95 % CI] |", "| --- | --- |",
           f"| recall (an expected kind found) | {ci(s['recall'], s['recall_ci'])} |",
           f"| root-cause accuracy (first serious finding) | {ci(s['root_cause_accuracy'], s['root_cause_ci'])} |",
           f"| healthy runs with a warning | {s['healthy_false_alarms']}/{s['healthy_runs']} = "
           f"{ci(s['healthy_false_alarm_rate'], s['healthy_false_alarm_ci'])} |",
           f"| Lightning SpikeDetection: faulty runs flagged | {s['peer_spike_detection']['faulty_flagged']}/"
           f"{s['peer_spike_detection']['faulty']} |",
           f"| Lightning SpikeDetection: healthy runs flagged | {s['peer_spike_detection']['healthy_flagged']}/"
           f"{s['peer_spike_detection']['healthy']} |", "",
           "| kind | TP | FN | FP | precision [95 % CI] | recall [95 % CI] |", "| --- | --: | --: | --: | --: | --: |"]
    for kind, c in s["per_kind"].items():
        out.append(f"| `{kind}` | {c['tp']} | {c['fn']} | {c['fp']} | {ci(c['precision'], c['precision_ci'])} | "
                   f"{ci(c['recall'], c['recall_ci'])} |")
    out += ["", "| fault | caught | missed | no effect | root cause ok | SpikeDetection |", "| --- | --: | --: | --: | --: | --: |"]
    for fault, c in s["per_fault"].items():
        n = c.get("caught", 0) + c.get("missed", 0)
        out.append(f"| `{fault}` | {c.get('caught', 0)} | {c.get('missed', 0)} | {c.get('no measurable effect', 0)} | "
                   f"{c.get('root_ok', 0)}/{n} | {c.get('spike', 0)}/{n} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", default="A", choices=("A", "B", "all"), help="which bases (default A)")
    ap.add_argument("--bases", help="only bases matching: comma-separated globs or substrings")
    ap.add_argument("--faults", help="only faults matching ('healthy' = the unmutated runs)")
    ap.add_argument("--fault-seeds", type=int, default=2, help="seeds per (base, fault) (default 2)")
    ap.add_argument("--healthy-seeds", type=int, default=4, help="seeds per healthy base (default 4)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed per run (default 120)")
    ap.add_argument("--runs", type=Path, help="where the scripts, logs and diagnoses go "
                                              "(default gradwatch-runs/mutations-<half>-<time>)")
    ap.add_argument("--out", type=Path, help="results JSON (default results-<half>.json next to this file)")
    ap.add_argument("--keep", action="store_true", help="keep each run's record (run.db), not only its diagnosis")
    ap.add_argument("--cli", action="store_true", help="run each script as `gradwatch run --out D --json F` "
                    "in a subprocess (the user's own command; ~3 s more a run for the imports)")
    ap.add_argument("--list", action="store_true", help="list the bases, faults and labels; run nothing")
    ap.add_argument("--show", type=Path, metavar="RESULTS", help="print the tables of a saved results JSON; run nothing")
    ap.add_argument("--markdown", action="store_true", help="with --show: as Markdown")
    args = ap.parse_args(argv)

    if args.show:
        saved = json.loads(args.show.read_text())
        title = f"half {saved['half']} ({saved['date']})"
        rows = scoring.classify(saved["runs"])  # scored again: the rows keep what was found and measured
        summary = {**saved["summary"], **scoring.summarise(rows)}
        if args.markdown:
            print(markdown(rows, summary, title))
        else:
            print_report(rows, summary, title)
        return 0

    if args.list:
        from mutations.bases import halves
        from mutations.faults import FAULTS, label

        for b in halves(args.half):
            print(f"{b.half}  {b.name:28s} {b.arch}")
        for f in FAULTS:
            lab = label(f, {"act": "relu"}, False)
            print(f"   {f:24s} → {' | '.join(lab.expect)}" + (f"   (also ok: {', '.join(lab.also_ok)})" if lab.also_ok else ""))
        return 0

    import multiprocessing as mp

    runs = (args.runs or Path("gradwatch-runs") / time.strftime(f"mutations-{args.half}-%Y%m%d-%H%M%S")).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    tasks = tasks_for(args.half, args.bases, args.faults, args.fault_seeds, args.healthy_seeds, runs,
                      args.timeout, args.keep, args.cli)
    code_version = _code_version()
    print(f"{len(tasks)} runs, {args.jobs} at a time, gradwatch at {code_version}; "
          f"scripts, logs and diagnoses in {runs}", flush=True)
    t0 = time.perf_counter()
    rows = []
    # workers live for the whole half: every run of it sees the same gradwatch code
    with mp.get_context("spawn").Pool(args.jobs, initializer=_init_worker) as pool:
        for i, r in enumerate(pool.imap_unordered(run_one, tasks), 1):
            rows.append(r)
            kinds = "n/a" if r.get("applicable") is False else (r.get("error") or ",".join(scoring.serious(r)) or "-")
            print(f"[{i:3d}/{len(tasks)}] {r['base']:28s} {str(r['fault']):24s} s{r['seed']} "
                  f"{r.get('seconds', 0):5.1f}s  {kinds}", flush=True)
    wall = time.perf_counter() - t0
    skipped = [r for r in rows if r.get("applicable") is False]
    rows = [r for r in rows if r.get("applicable") is not False]
    rows.sort(key=lambda r: (r["base"], str(r["fault"]), r["seed"]))
    scoring.classify(rows)
    summary = scoring.summarise(rows)
    summary.update(wall_seconds=wall, jobs=args.jobs, not_applicable=len(skipped),
                   spread=scoring.base_spread(rows))
    print_report(rows, summary, f"half {args.half}")
    print(f"wall {wall / 60:.1f} min for {len(rows)} runs ({len(skipped)} not applicable, not run)")
    out = args.out or HERE / f"results-{args.half}.json"
    out.write_text(json.dumps({"half": args.half, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "gradwatch": code_version, "summary": summary, "runs": rows}, indent=1, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
