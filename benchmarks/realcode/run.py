"""Real-code benchmark: public training scripts, run plainly and under ``gradwatch run``.

Each case of ``corpus.py`` runs twice, one after the other, in subprocesses with
``OMP_NUM_THREADS=1``, each in its own scratch working directory:

* plainly: ``python SCRIPT ARGS``;
* watched: ``gradwatch run --out DIR --json FILE SCRIPT ARGS``.

The scripts are healthy as shipped (shrunk to seconds), so a correct watcher records them
(``steps > 0``), raises no finding of severity warning or critical, and passes the exit status
through. A case **passes** on exactly those three. The table also says whether stdout passed
through: the same text, with timings masked (and, for scripts that seed nothing, every number).

Usage::

    python benchmarks/realcode/run.py                 # every case, one at a time
    python benchmarks/realcode/run.py -j 2            # two cases at a time
    python benchmarks/realcode/run.py --only 'makemore-*,pe-regression'
    python benchmarks/realcode/run.py --list          # the cases, nothing run

Results go to ``results.json`` next to this file (``--out`` to change it); the scratch
folders (run records, reports, what the scripts write) to a temporary folder (``--runs``).

Example:
    >>> masked("step 10 | loss 2.3 | step time 39.42ms", "exact")
    'step 10 | loss 2.3 | step time #'
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import CASES, TIMING, Case  # noqa: E402

SERIOUS = ("warning", "critical")
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def env() -> dict[str, str]:
    """The environment of both runs: one thread, no display, nothing from the network."""
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONHASHSEED="0",
             HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
             WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    e.pop("RANK", None)  # nanoGPT reads it as "launched by torchrun"
    return e


def masked(text: str, mode: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` with wall-clock numbers (and, for ``mode="numbers"``, every number) replaced by ``#``.

    Args:
        text: a script's stdout.
        mode: ``"exact"`` or ``"numbers"`` (see ``corpus.py``).
        extra: more regular expressions to mask.

    Example:
        >>> masked("loss 2.31 after 764 batches", "numbers")
        'loss # after # batches'
    """
    for pat in (*TIMING, *extra):
        text = re.sub(pat, "#", text)
    if mode == "numbers":
        text = re.sub(NUMBER, "#", text)
    return text


@dataclass
class Run:
    """One subprocess: exit status, stdout, seconds."""

    rc: int | None
    stdout: str
    stderr_tail: str
    seconds: float


@dataclass
class Result:
    """Both runs of one case and what the watcher said."""

    name: str
    covers: str
    rc_plain: int | None
    rc_watched: int | None
    stdout_equal: bool
    stdout_first_diff: str
    steps: int
    verdict: str
    findings: list[str] = field(default_factory=list)
    seconds_plain: float = 0.0
    seconds_watched: float = 0.0
    passed: bool = False
    why: str = ""


def gradwatch_exe() -> str:
    """The ``gradwatch`` console script next to this Python, else the one on PATH."""
    exe = Path(sys.executable).parent / "gradwatch"
    if exe.exists():
        return str(exe)
    found = shutil.which("gradwatch")
    if not found:
        sys.exit("error: no `gradwatch` next to this Python or on PATH; install it with "
                 "`pip install -e .` in the repository")
    return found


def run(cmd: list[str], cwd: Path, timeout: float) -> Run:
    """Run ``cmd`` in ``cwd``; a timeout gives ``rc=None``."""
    cwd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    return Run(rc, out, err[-20000:], time.perf_counter() - t0)


def error_line(stderr: str) -> str:
    """The last ``SomeError: message`` line of a traceback in ``stderr`` (else its last line)."""
    stderr = re.sub(r"\x1b\[[0-9;]*m", "", stderr)  # terminal colours
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", ln)]
    return (errors or lines or ["(no stderr)"])[-1][:300]


def first_diff(a: str, b: str) -> str:
    """The first differing line of two texts, as ``plain | watched`` (empty when equal)."""
    la, lb = a.splitlines(), b.splitlines()
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else "<end>"
        y = lb[i] if i < len(lb) else "<end>"
        if x != y:
            return f"line {i + 1}: {x[:100]!r} | {y[:100]!r}"
    return ""


def run_case(case: Case, runs: Path, exe: str, timeout: float) -> Result:
    """Run one case plainly and watched, and judge it."""
    script = HERE / "scripts" / case.script
    args = [a.replace("{here}", str(script.parent)) for a in case.args]
    base = runs / case.name
    shutil.rmtree(base, ignore_errors=True)
    plain = run([sys.executable, str(script), *args], base / "plain", timeout)
    js = base / "diagnosis.json"
    watched = run([exe, "run", "--out", str(base / "record"), "--json", str(js), str(script), *args],
                  base / "watched", timeout)
    steps, verdict, findings = 0, "no diagnosis", []
    if js.exists():
        try:
            d = json.loads(js.read_text())
            steps, verdict = int(d.get("steps", 0)), d.get("verdict", "?")
            findings = [f"{f['kind']}:{f['severity']}" for f in d.get("findings", [])]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            verdict = f"unreadable diagnosis ({e})"
    # Each run has its own working directory; a script that prints paths under it (Lightning's
    # checkpoints) prints the same text once the folder is named alike.
    a = masked(plain.stdout.replace(str(base / "plain"), "<cwd>"), case.stdout, case.mask)
    b = masked(watched.stdout.replace(str(base / "watched"), "<cwd>"), case.stdout, case.mask)
    res = Result(case.name, case.covers, plain.rc, watched.rc, a == b, first_diff(a, b), steps, verdict,
                 findings, round(plain.seconds, 2), round(watched.seconds, 2))
    why = []
    if plain.rc is None or watched.rc is None:
        why.append(f"timeout ({timeout:.0f} s)")
    if plain.rc != watched.rc:
        why.append(f"exit status {plain.rc} -> {watched.rc}")
    elif plain.rc not in (0, None):
        why.append(f"the script itself fails (exit {plain.rc}): {plain.stderr_tail.strip().splitlines()[-1:]}")
    if steps <= 0:
        why.append("no steps recorded")
    serious = [f for f in findings if f.split(":")[-1] in SERIOUS]
    if serious:
        why.append("findings: " + ", ".join(serious))
    if watched.rc not in (0, None) and plain.rc == 0:
        why.append("watched: " + error_line(watched.stderr_tail))
    res.passed, res.why = not why, anonymous("; ".join(why), runs)
    res.stdout_first_diff = anonymous(res.stdout_first_diff, runs)
    return res


def anonymous(text: str, runs: Path) -> str:
    """``text`` with this machine's folders (scratch, repository, interpreter) named generically."""
    for folder, name in ((runs, "<runs>"), (HERE.parents[1], "<repo>"), (Path(sys.prefix), "<venv>")):
        text = text.replace(str(folder), name)
    return text


def select(only: str | None) -> list[Case]:
    """The cases whose name matches one of the comma-separated globs in ``only`` (all when None)."""
    if not only:
        return list(CASES)
    pats = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [c for c in CASES if any(fnmatch.fnmatch(c.name, p) for p in pats)]
    if not chosen:
        sys.exit(f"error: --only {only!r} matches no case; see the names with --list")
    return chosen


def table(results: list[Result]) -> None:
    """Print the results as a table (rich when installed, plain text otherwise)."""
    head = ["script", "exit plain→watched", "stdout", "steps", "verdict", "findings", "s plain", "s watched", "pass"]
    rows = [[r.name, f"{r.rc_plain}→{r.rc_watched}", "equal" if r.stdout_equal else "DIFFERS",
             str(r.steps), r.verdict, ", ".join(r.findings) or "-", f"{r.seconds_plain:.1f}",
             f"{r.seconds_watched:.1f}", "PASS" if r.passed else "FAIL"] for r in results]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        for row in [head, *rows]:
            print("  ".join(x.ljust(w) for x, w in zip(row, widths)))
        return
    t = Table(title="real code under gradwatch run")
    for h in head:
        t.add_column(h, overflow="fold")
    for row, r in zip(rows, results):
        t.add_row(*row, style=None if r.passed else "red")
    Console(width=200).print(t)


def origins_table() -> str:
    """A Markdown table of every vendored file: repository, commit, path, licence, number of changes."""
    meta = json.loads((HERE / "origins.json").read_text())
    rows = ["| file under `scripts/` | repository | commit | original path | licence | changes |",
            "| --- | --- | --- | --- | --- | --- |"]
    for dest, m in sorted(meta.items()):
        rows.append(f"| `{dest}` | [{m['repo']}](https://github.com/{m['repo']}) | `{m['commit'][:10]}` | "
                    f"`{m['path']}` | {m['licence']} | {len(m['changes']) or 'none'} |")
    return "\n".join(rows)


def results_markdown(payload: dict) -> str:
    """A results JSON (as ``run.py`` writes it) as a Markdown table with its summary line."""
    rows = ["| script | exit plain→watched | stdout | steps | verdict | findings | s plain | s watched | pass | why |",
            "| --- | --- | --- | ---: | --- | --- | ---: | ---: | --- | --- |"]
    for r in payload["results"]:
        why = r["why"].replace("|", "/")
        rows.append(f"| {r['name']} | {r['rc_plain']}→{r['rc_watched']} | {'equal' if r['stdout_equal'] else 'DIFFERS'} "
                    f"| {r['steps']} | {r['verdict']} | {', '.join(r['findings']) or '-'} | {r['seconds_plain']:.1f} "
                    f"| {r['seconds_watched']:.1f} | {'PASS' if r['passed'] else 'FAIL'} | {why} |")
    head = (f"`{payload['command']}` on {payload['date']}, library at {payload['git_commit']}: "
            f"**passed {payload['passed']}/{payload['cases']}**, stdout passed through "
            f"{payload['stdout_equal']}/{payload['cases']}, {payload['wall_seconds']:.0f} s wall"
            + ("" if payload.get("complete", True) else " (interrupted: only the cases listed)"))
    return head + "\n\n" + "\n".join(rows)


def main() -> None:
    """Parse the options, run the cases, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated names or globs of cases to run")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="cases run at a time (each case's two runs stay sequential)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run before it counts as hung")
    ap.add_argument("--runs", type=Path, help="scratch folder (default: a new temporary folder)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json", help="results JSON")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--origins", action="store_true", help="print the origins table (Markdown) and exit")
    ap.add_argument("--markdown", type=Path, metavar="RESULTS", help="print a results JSON as a Markdown table and exit")
    args = ap.parse_args()
    cases = select(args.only)
    if args.list:
        for c in cases:
            print(f"{c.name:26s} {c.script}  {' '.join(c.args)}")
        return
    if args.origins:
        print(origins_table())
        return
    if args.markdown:
        print(results_markdown(json.loads(args.markdown.read_text())))
        return
    if args.jobs < 1:
        sys.exit("error: --jobs must be at least 1")
    exe = gradwatch_exe()
    runs = args.runs or Path(tempfile.mkdtemp(prefix="realcode-"))
    print(f"{len(cases)} cases, {args.jobs} at a time; scratch in {runs}", flush=True)
    t0, done, lock, results = time.perf_counter(), 0, threading.Lock(), {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_case, c, runs, exe, args.timeout): c for c in cases}
        for fut in as_completed(futures):
            r = fut.result()
            with lock:
                done += 1
                results[r.name] = r
                print(f"[{done:2d}/{len(cases)}] {'PASS' if r.passed else 'FAIL'} {r.name:26s} "
                      f"{r.seconds_plain + r.seconds_watched:6.1f} s  {r.why}", flush=True)
                # written after every case, so that an interrupted run leaves what it measured
                write(args.out, [results[c.name] for c in cases if c.name in results], len(cases),
                      args.jobs, time.perf_counter() - t0)
    ordered = [results[c.name] for c in cases]
    total = time.perf_counter() - t0
    table(ordered)
    n_pass = sum(r.passed for r in ordered)
    n_out = sum(r.stdout_equal for r in ordered)
    print(f"passed {n_pass}/{len(ordered)}; stdout passed through {n_out}/{len(ordered)}; "
          f"{total:.0f} s wall with -j {args.jobs}")
    write(args.out, ordered, len(cases), args.jobs, total)
    print(f"results: {args.out}")


def write(out: Path, results: list[Result], n_cases: int, jobs: int, seconds: float) -> None:
    """Write the results JSON (``complete`` is false while cases are still running)."""
    payload = {
        "command": "python benchmarks/realcode/run.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git_commit": _git_commit(),
        "python": platform.python_version(), "torch": _torch_version(),
        "jobs": jobs, "wall_seconds": round(seconds, 1), "complete": len(results) == n_cases,
        "passed": sum(r.passed for r in results), "stdout_equal": sum(r.stdout_equal for r in results),
        "cases": n_cases, "results": [asdict(r) for r in results],
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")


def _git_commit() -> str:
    """HEAD's short hash, marked when the library's sources differ from it (they are what runs)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=HERE.parents[1],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + (" + uncommitted changes in src/" if dirty else "")


def _torch_version() -> str:
    try:
        from importlib.metadata import version
        return version("torch")
    except Exception:  # noqa: BLE001 - only informative
        return ""


if __name__ == "__main__":
    main()
