"""Fault benchmark: kill -9 a watched training process at random steps, then check what is left.

Each trial starts a small training script (a watched loop that also forces a blocking flush
every ``--flush-at`` steps and says so), waits until it reports a random step, optionally lets
a random few milliseconds pass (so kills land mid-step, mid-flush, mid-write), and sends
SIGKILL. Then the store must open (``PRAGMA integrity_check``), hold contiguous steps from 0,
hold every step up to the last *confirmed* flush, decode every per-layer vector, and the run
must still be diagnosed and rendered. ``steps lost`` counts the steps the process had finished
but the store does not hold (at most what was still queued for the writer).

    python benchmarks/faults.py                 # 20 trials
    python benchmarks/faults.py --trials 50 --seed 3

Prints the table; ``--json F`` writes the per-trial rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent("""
    import sys, torch
    from torch import nn
    import gradwatch as gw
    torch.set_num_threads(1)
    out, flush_at = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=out, every=5, flush_every=10) as w:
        for step in range(100000):
            x = torch.randn(32, 16)
            loss = nn.functional.cross_entropy(model(x), x[:, :4].argmax(1))
            opt.zero_grad(); loss.backward(); opt.step()
            print(f"step {step}", flush=True)
            if (step + 1) % flush_at == 0:
                w.flush()                       # blocking: committed when it returns
                print(f"flushed {step}", flush=True)
""")


def trial(i: int, rng: random.Random, work: Path, max_step: int, flush_at: int) -> dict:
    out = work / f"run{i}"
    script = work / "train.py"
    target = rng.randint(3, max_step)
    delay = rng.choice([0.0, 0.0, rng.uniform(0, 0.005), rng.uniform(0, 0.05)])
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(flush_at)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    done, flushed = -1, -1
    for line in proc.stdout:
        word, _, n = line.strip().partition(" ")
        if word == "step":
            done = int(n)
        elif word == "flushed":
            flushed = int(n)
        if done >= target:
            break
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    for line in proc.stdout:  # what it printed between our decision and its death
        word, _, n = line.strip().partition(" ")
        if word == "step":
            done = max(done, int(n))
        elif word == "flushed":
            flushed = max(flushed, int(n))
    rc = proc.wait()
    row = {"trial": i, "kill_after_step": target, "delay_ms": round(delay * 1e3, 2), "killed": rc == -signal.SIGKILL,
           "steps_done": done + 1, "last_confirmed_flush": flushed}
    row.update(check(out, done, flushed))
    return row


def check(out: Path, done: int, flushed: int) -> dict:
    import numpy as np

    import gradwatch as gw
    from gradwatch.report.html import render_html

    res = {"opens": False, "contiguous": False, "holds_flushed": False, "vectors_ok": False,
           "diagnosed": False, "rendered": False, "steps_stored": 0, "error": ""}
    try:
        with sqlite3.connect(out / "run.db") as con:
            res["opens"] = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        run = gw.load(out)
        steps = run.steps.index.to_numpy()
        res["steps_stored"] = len(steps)
        res["contiguous"] = bool(np.array_equal(steps, np.arange(len(steps))))
        res["holds_flushed"] = len(steps) >= flushed + 1
        g = run.series("grad_norm")
        d = run.series("delta")
        res["vectors_ok"] = len(g) == len(steps) and bool(np.isfinite(g.to_numpy()).all()) and \
            list(d.index) == [s for s in steps if s % 5 == 0]
        diagnosis = gw.diagnose(run)
        res["diagnosed"] = diagnosis.steps == len(steps)
        res["rendered"] = render_html(run, diagnosis).startswith("<!DOCTYPE html>")
    except Exception as e:  # noqa: BLE001 - a failed check is a result, not a crash of the benchmark
        res["error"] = f"{type(e).__name__}: {e}"[:200]
    res["steps_lost"] = max(0, done + 1 - res["steps_stored"])
    res["recovered"] = all(res[k] for k in ("opens", "contiguous", "holds_flushed", "vectors_ok", "diagnosed",
                                            "rendered"))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-step", type=int, default=200, help="kill at a random step in [3, MAX]")
    ap.add_argument("--flush-at", type=int, default=25, help="the script forces a blocking flush every N steps")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="gradwatch-faults-") as tmp:
        work = Path(tmp)
        (work / "train.py").write_text(CHILD)
        for i in range(args.trials):
            rows.append(trial(i, rng, work, args.max_step, args.flush_at))
            r = rows[-1]
            print(f"trial {i:3d}: killed after step {r['kill_after_step']:4d} (+{r['delay_ms']:5.2f} ms)  "
                  f"stored {r['steps_stored']:4d}/{r['steps_done']:4d}  "
                  f"{'recovered' if r['recovered'] else 'FAILED ' + r['error']}", flush=True)
    lost = [r["steps_lost"] for r in rows]
    table = [("trials", len(rows)), ("faults injected (SIGKILL landed)", sum(r["killed"] for r in rows)),
             ("runs recovered", sum(r["recovered"] for r in rows)),
             ("stores that open (integrity ok)", sum(r["opens"] for r in rows)),
             ("stores holding every confirmed flush", sum(r["holds_flushed"] for r in rows)),
             ("killed runs diagnosed and rendered", sum(r["diagnosed"] and r["rendered"] for r in rows)),
             ("steps lost, total", sum(lost)), ("steps lost, max per run", max(lost, default=0)),
             ("steps lost, mean per run", round(sum(lost) / max(1, len(lost)), 2)),
             ("wall time, s", round(time.time() - t0, 1))]
    width = max(len(k) for k, _ in table)
    print()
    print(f"{'kill -9 at random steps'.ljust(width)}  value")
    print(f"{'-' * width}  -----")
    for k, v in table:
        print(f"{k.ljust(width)}  {v}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["recovered"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
