"""TrainCheck (Jiang et al., OSDI 2025) on a sample of the mutation cases: one base, its faults, one seed.

TrainCheck learns invariants of PyTorch API calls and model state from a healthy run and
reports the ones a new run violates. Its workflow per base: ``traincheck-collect`` on a
healthy script (the reference trace), ``traincheck-infer`` (the invariants), then for each
case ``traincheck-collect -i INVARIANTS`` and ``traincheck-check``. Collection instruments
every ``torch`` call of the script, so a case costs minutes, not seconds: this samples one
base instead of running all of them.

A second healthy seed is checked too: invariants it violates are facts of one run, not of
the training (a ``Linear.forward`` always returning ``grad_fn=None``...), so a case counts as
*flagged* when it violates an invariant that the second healthy seed keeps.

TrainCheck's dependencies (numba, polars, ...) are not the project's: install it in an
environment that also sees this torch, and point ``--bin`` at its scripts::

    python -m venv tc && tc/bin/pip install traincheck      # plus a .pth to the project's site-packages
    .venv/bin/python benchmarks/mutations/peer_traincheck.py --bin tc/bin --base mlp_digits \\
        --faults zero_grad_dropped,lr_x100,detach_inside --work tc-runs

Example:
    >>> # python benchmarks/mutations/peer_traincheck.py --bin tc/bin --base mlp_digits --faults lr_x100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _script(work: Path, base: str, fault: str | None, seed: int) -> Path:
    from mutations.loop import script_text

    name = f"{fault or 'healthy'}_s{seed}"
    text = script_text(str(HERE.parent), base, fault, seed, str(work / f"{name}.metrics.json"))
    # TrainCheck instruments the torch that the script itself imports
    path = work / f"{name}.py"
    path.write_text(text.replace("import sys\n", "import sys\nimport torch\n", 1))
    return path


def _run(cmd: list[str], log: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=log.parent, check=False)
    return time.perf_counter() - t0


def _violated(check_dir: Path) -> list[str]:
    found = list(check_dir.rglob("violations_summary.json"))
    if not found:
        return []
    return [v["display_name"] for v in json.loads(found[0].read_text()).get("violations", [])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", type=Path, required=True, help="folder holding traincheck-collect/-infer/-check")
    ap.add_argument("--base", default="mlp_digits")
    ap.add_argument("--faults", default="zero_grad_dropped,lr_x100,detach_inside")
    ap.add_argument("--work", type=Path, default=Path("gradwatch-runs/traincheck"))
    ap.add_argument("--out", type=Path, help="results JSON (default WORK/traincheck.json)")
    args = ap.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tc = {k: str(args.bin / f"traincheck-{k}") for k in ("collect", "infer", "check")}
    for exe in tc.values():
        if not Path(exe).exists():
            sys.exit(f"error: no {exe}; install traincheck (pip install traincheck) and give its scripts' folder to --bin")

    ref = _script(work, args.base, None, 0)
    inv = work / "invariants.json"
    seconds = {"collect reference": 0.0, "infer": 0.0}
    if not inv.exists():  # a step whose output is there is not run again (a run can be resumed)
        seconds["collect reference"] = _run([tc["collect"], "-p", ref.name, "--output-dir", str(work / "ref")],
                                            work / "collect_ref.log")
        seconds["infer"] = _run([tc["infer"], "-f", str(work / "ref"), "-o", str(inv), "-j", "1"], work / "infer.log")
    n_inv = sum(1 for line in inv.read_text().splitlines() if line.strip()) if inv.exists() else None  # JSON lines
    cases = [(None, 1)] + [(f, 0) for f in args.faults.split(",") if f]
    rows = []
    for fault, seed in cases:
        s = _script(work, args.base, fault, seed)
        trace, chk = work / f"trace_{s.stem}", work / f"check_{s.stem}"
        t_collect = t_check = 0.0
        if not list(chk.rglob("violations_summary.json")):
            t_collect = _run([tc["collect"], "-p", s.name, "-i", str(inv), "--output-dir", str(trace)],
                             work / f"collect_{s.stem}.log")
            t_check = _run([tc["check"], "-f", str(trace), "-i", str(inv), "-o", str(chk), "--no-html-report",
                            "-j", "1"], work / f"check_{s.stem}.log")
        rows.append({"fault": fault, "seed": seed, "violated": _violated(chk),
                     "collect_seconds": t_collect, "check_seconds": t_check})
    unstable = set(rows[0]["violated"])  # what the second healthy seed already violates
    print(f"TrainCheck on {args.base}: {n_inv} invariants from one healthy run "
          f"(collect {seconds['collect reference']:.0f} s, infer {seconds['infer']:.0f} s)")
    print(f"{'case':24s} {'violated':>8s} {'stable':>6s}  seconds  first stable violation")
    for r in rows:
        stable = [v for v in r["violated"] if v not in unstable] if r["fault"] else []
        r["stable_violations"] = stable
        r["flagged"] = bool(stable) if r["fault"] else bool(r["violated"])
        name = r["fault"] or f"healthy (seed {r['seed']})"
        print(f"{name:24s} {len(r['violated']):8d} {len(stable):6d}  {r['collect_seconds'] + r['check_seconds']:7.0f}  "
              f"{stable[0] if stable else '-'}")
    out = args.out or work / "traincheck.json"
    out.write_text(json.dumps({"base": args.base, "invariants": n_inv, "seconds": seconds, "cases": rows}, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
