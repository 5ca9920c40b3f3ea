"""Fault benchmark: kill watched training processes at random steps, then check what is left.

Three parts, each printing a table:

**kill -9** (``--trials``): a small watched loop (which also forces a blocking flush every
``--flush-at`` steps and says so) is sent SIGKILL once it reports a random step, after a random
few milliseconds (so kills land mid-step, mid-flush, mid-write). The store must open
(``PRAGMA integrity_check``), hold contiguous steps from 0 and every step up to the last
*confirmed* flush, decode every per-layer vector, and be diagnosed and rendered. ``steps lost``
counts the steps the process had finished but the store does not hold.

**kill and resume** (``--resume-trials``; ``--lightning-trials`` for the Lightning callback): an
unmodified training script that checkpoints every 10 steps and restarts from its last checkpoint
runs under ``gradwatch run --resume`` (a requeued job's command: the same every time); it is killed
(SIGKILL or SIGTERM, at random) once or twice at random steps and run again until it finishes.
Every record must open, hold contiguous step numbers across the restarts, mark each restart and
hold the steps trained again as superseded (all of them after a SIGTERM, no more than were run
after a SIGKILL), and its diagnosis must equal that of an uninterrupted run of the same script
(same kinds, causes and root causes), as must its losses.

**two writers** (``--writer-trials``): while one ``gradwatch run`` writes a run directory, a second
``gradwatch run --resume`` and a ``gw.watch(..., resume=True)`` on the same directory must be
refused, and the first must finish with every one of its steps recorded.

    python benchmarks/faults.py                 # 20 + 20 + 4 + 5 trials
    python benchmarks/faults.py --trials 10 --resume-trials 10 --lightning-trials 2 --writer-trials 3

``--json F`` writes the per-trial rows.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    with gw.watch(model, opt, out=out, every=5, stats_budget=None, flush_every=10) as w:
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


def _open(out: Path):
    """(SQLite's integrity check passed, the record as ``gw.load`` reads it, its step numbers)."""
    import gradwatch as gw

    with sqlite3.connect(out / "run.db") as con:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    run = gw.load(out)
    return ok, run, run.steps.index.to_numpy()


def check(out: Path, done: int, flushed: int) -> dict:
    import numpy as np

    import gradwatch as gw
    from gradwatch.report.html import render_html

    res = {"opens": False, "contiguous": False, "holds_flushed": False, "vectors_ok": False,
           "diagnosed": False, "rendered": False, "steps_stored": 0, "error": ""}
    try:
        res["opens"], run, steps = _open(out)
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


RESUMABLE = textwrap.dedent("""
    import os, sys, torch
    from torch import nn
    torch.set_num_threads(1)
    ckpt, total = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(32, 32), nn.Sigmoid())], nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = 0
    if os.path.exists(ckpt):
        c = torch.load(ckpt)
        model.load_state_dict(c["model"]); opt.load_state_dict(c["opt"]); start = c["next"]
    for step in range(start, total):
        g = torch.Generator().manual_seed(step)   # a step's batch depends on its number only
        x = torch.randn(64, 32, generator=g)
        loss = nn.functional.cross_entropy(model(x), x[:, :4].argmax(1))
        opt.zero_grad(); loss.backward(); opt.step()
        print(f"step {step}", flush=True)
        if (step + 1) % 10 == 0:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "next": step + 1}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
            print(f"ckpt {step + 1}", flush=True)
""")

LIGHTNING = textwrap.dedent("""
    import os, sys, warnings, torch
    from torch import nn
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from gradwatch.integrations.lightning import GradwatchCallback
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    work, total = sys.argv[1], int(sys.argv[2])

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(32, 32), nn.Sigmoid())],
                                     nn.Linear(32, 4))

        def training_step(self, batch, batch_idx):
            g = torch.Generator().manual_seed(self.global_step)   # the batch of a step depends on its number
            x = torch.randn(64, 32, generator=g)
            print(f"step {self.global_step}", flush=True)
            return nn.functional.cross_entropy(self.net(x), x[:, :4].argmax(1))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Saved(L.Callback):
        def on_save_checkpoint(self, trainer, module, checkpoint):
            print(f"ckpt {trainer.global_step}", flush=True)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(total, 1)), batch_size=1)
    ck = ModelCheckpoint(dirpath=os.path.join(work, "ckpt"), every_n_train_steps=10, save_last=True, save_top_k=0)
    # resume=True: a requeued job runs the same command every time, also after a kill before any checkpoint
    cb = GradwatchCallback(out=os.path.join(work, "run"), every=10, stats_budget=None, quiet=True, resume=True)
    t = L.Trainer(default_root_dir=work, max_steps=total, max_epochs=1, accelerator="cpu", devices=1,
                  logger=False, callbacks=[ck, Saved(), cb], enable_progress_bar=False, enable_model_summary=False)
    last = os.path.join(work, "ckpt", "last.ckpt")
    t.fit(Net(), data, ckpt_path=last if os.path.exists(last) else None)
""")


def _gradwatch_run(out: Path, script: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "gradwatch.cli", "run", "--resume", "--stats-budget", "0", "--out", str(out),
            "--json", str(out) + ".json", str(script), *args]


def _run_until(cmd: list[str], cwd: Path, kill_at: int | None, sig: int, delay: float) -> dict:
    """Run ``cmd``; once it reports ``step kill_at``, wait ``delay`` s and send ``sig``. Returns the
    last step it reported done, the last checkpoint it reported, its exit status."""
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    import threading

    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    done, ckpt, sent, ckpt_at_kill = -1, 0, False, None
    for line in proc.stdout:
        word, _, n = line.strip().partition(" ")
        if word == "step" and n.isdigit():
            done = max(done, int(n))  # Lightning prints the step as it begins: finished = n - 1 then
        elif word == "ckpt" and n.isdigit():
            ckpt = int(n)
        if kill_at is not None and not sent and done >= kill_at:
            time.sleep(delay)
            os.kill(proc.pid, sig)
            sent = True
    rc = proc.wait()
    reader.join(5)
    return {"done": done, "ckpt": ckpt, "rc": rc, "sent": sent, "stderr": "".join(err)[-400:]}


def _checkpoint_on_disk(tdir: Path, lightning: bool) -> int:
    import torch

    path = tdir / "ckpt" / "last.ckpt" if lightning else tdir / "ckpt.pt"
    if not path.exists():
        return 0
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return int(saved["global_step"] if lightning else saved["next"])


def resume_trial(i: int, rng: random.Random, work: Path, total: int, lightning: bool, ref: dict) -> dict:
    tdir = work / f"{'lightning' if lightning else 'resume'}{i}"
    tdir.mkdir()
    if lightning:
        cmd = [sys.executable, str(work / "lightning_train.py"), str(tdir), str(total)]
        out = tdir / "run"
    else:
        out = tdir / "run"
        cmd = _gradwatch_run(out, work / "resumable.py", [str(tdir / "ckpt.pt"), str(total)])
    kills = rng.choice([1, 2])
    row = {"trial": i, "lightning": lightning, "kills": [], "error": ""}
    lo, ckpt = 3, 0
    for _ in range(kills):
        at = rng.randint(lo, total - 15)
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        r = _run_until(cmd, tdir, at, sig, rng.choice([0.0, rng.uniform(0, 0.02)]))
        # the checkpoint the next run starts from (maybe an earlier run's): read from the disk, as a
        # kill may land between the checkpoint's rename and its "ckpt" line
        ckpt = _checkpoint_on_disk(tdir, lightning)
        # a restart follows when the run ended before its last checkpoint (Lightning stops on
        # SIGTERM and exits 0; a kill that lands after the last checkpoint leaves nothing to resume)
        finished = ckpt >= total or (r["rc"] == 0 and r["done"] >= total - 1)
        row["kills"].append({"signal": signal.Signals(sig).name, "at": at, "done": r["done"], "ckpt": ckpt,
                             "rc": r["rc"], "killed": r["sent"] and not finished})
        lo = min(total - 15, max(at, r["done"]) + 1)
    final = _run_until(cmd, tdir, None, 0, 0.0)
    row["final_rc"] = final["rc"]
    row.update(check_resumed(out, total, row["kills"], lightning, ref))
    if final["rc"] != 0 and not row["error"]:
        tail = final["stderr"].strip().splitlines()
        row["error"] = tail[-1][:200] if tail else f"rc {final['rc']}"
    return row


def check_resumed(out: Path, total: int, kills: list[dict], lightning: bool, ref: dict) -> dict:
    import numpy as np

    import gradwatch as gw

    res = {"opens": False, "contiguous": False, "restarts_marked": False, "superseded_ok": False,
           "same_diagnosis": False, "same_losses": False, "steps": 0}
    try:
        res["opens"], run, steps = _open(out)
        res["steps"] = len(steps)
        res["contiguous"] = bool(np.array_equal(steps, np.arange(total)))
        r = run.restarts
        killed = [k for k in kills if k["killed"]]
        res["restarts_marked"] = len(r) == len(killed) and list(r.step) == [k["ckpt"] for k in killed]
        ok = True
        for k, (_, rr) in zip(killed, r.iterrows()):
            sup = run.superseded[run.superseded.restart == rr.restart].step.tolist()
            ran = k["done"] - k["ckpt"] + (0 if lightning else 1)  # steps finished after the checkpoint
            exact = k["signal"] == "SIGTERM" and not lightning  # a clean exit commits every step
            ok &= sup == list(range(k["ckpt"], k["ckpt"] + len(sup))) and \
                (len(sup) == ran if exact else len(sup) <= max(ran, 0) + 1)
        res["superseded_ok"] = bool(ok)
        d = gw.diagnose(run)
        kinds = [(f.kind, sorted(c.id for c in f.causes), f.consequence_of) for f in d.findings]
        res["kinds"] = [k[0] for k in kinds]
        res["same_diagnosis"] = kinds == ref["kinds"]
        res["same_losses"] = bool(np.allclose(run.steps.loss.to_numpy(), ref["losses"], rtol=1e-5, atol=1e-7))
    except Exception as e:  # noqa: BLE001 - a failed check is a result
        res["error"] = f"{type(e).__name__}: {e}"[:200]
    res["recovered"] = all(res[k] for k in ("opens", "contiguous", "restarts_marked", "superseded_ok",
                                            "same_diagnosis", "same_losses"))
    return res


def reference(work: Path, total: int, lightning: bool) -> dict:
    """The uninterrupted run of the same script: its diagnosis and losses."""
    import gradwatch as gw

    tdir = work / ("ref-lightning" if lightning else "ref")
    tdir.mkdir()
    if lightning:
        r = _run_until([sys.executable, str(work / "lightning_train.py"), str(tdir), str(total)], tdir, None, 0, 0)
    else:
        r = _run_until(_gradwatch_run(tdir / "run", work / "resumable.py", [str(tdir / "ckpt.pt"), str(total)]),
                       tdir, None, 0, 0)
    if r["rc"] != 0:
        raise SystemExit(f"the uninterrupted run failed: {r['stderr']}")
    run = gw.load(tdir / "run")
    d = gw.diagnose(run)
    return {"kinds": [(f.kind, sorted(c.id for c in f.causes), f.consequence_of) for f in d.findings],
            "losses": run.steps.loss.to_numpy()}


WRITER = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(int(sys.argv[1])):
        loss = model(torch.randn(16, 16)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        print(f"step {step}", flush=True)
        time.sleep(0.02)
""")


def writers_trial(i: int, work: Path, steps: int) -> dict:
    import numpy as np

    import gradwatch as gw
    from gradwatch.store import RunLocked

    out = work / f"writers{i}"
    env = dict(os.environ, COLUMNS="300")
    first = subprocess.Popen([sys.executable, "-m", "gradwatch.cli", "run", "--out", str(out), str(work / "writer.py"),
                              str(steps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in first.stdout:
        if line.startswith("step 5"):
            break
    second = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--resume", "--out", str(out),
                             str(work / "writer.py"), "3"], capture_output=True, text=True, env=env, timeout=300)
    refused_cli = second.returncode == 2 and "is being written by another process" in second.stderr \
        and "step 0" not in second.stdout
    from torch import nn

    try:
        gw.watch(nn.Linear(16, 1), out=out, resume=True).detach()
        refused_py = False
    except RunLocked:
        refused_py = True
    alive_during = first.poll() is None
    first.stdout.read()
    rc = first.wait()
    run = gw.load(out)
    unharmed = rc == 0 and np.array_equal(run.steps.index.to_numpy(), np.arange(steps)) and len(run.restarts) == 0
    return {"trial": i, "second_cli_refused": refused_cli, "second_python_refused": refused_py,
            "first_alive_while_refused": alive_during, "first_unharmed": bool(unharmed),
            "recovered": refused_cli and refused_py and bool(unharmed)}


def _table(title: str, table: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in table + [(title, 0)])
    print()
    print(f"{title.ljust(width)}  value")
    print(f"{'-' * width}  -----")
    for k, v in table:
        print(f"{k.ljust(width)}  {v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="kill -9 trials")
    ap.add_argument("--resume-trials", type=int, default=20, help="kill-and-resume trials under gradwatch run")
    ap.add_argument("--lightning-trials", type=int, default=4, help="kill-and-resume trials with the Lightning "
                    "callback (0 without Lightning)")
    ap.add_argument("--writer-trials", type=int, default=5, help="two writers on one run directory")
    ap.add_argument("--total", type=int, default=80, help="steps of each resumed run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-step", type=int, default=200, help="kill -9 at a random step in [3, MAX]")
    ap.add_argument("--flush-at", type=int, default=25, help="the script forces a blocking flush every N steps")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    results: dict[str, list[dict]] = {"kill": [], "resume": [], "lightning": [], "writers": []}
    with tempfile.TemporaryDirectory(prefix="gradwatch-faults-") as tmp:
        work = Path(tmp)
        (work / "train.py").write_text(CHILD)
        (work / "resumable.py").write_text(RESUMABLE)
        (work / "lightning_train.py").write_text(LIGHTNING)
        (work / "writer.py").write_text(WRITER)
        t0 = time.time()
        rows = results["kill"]
        for i in range(args.trials):
            rows.append(trial(i, rng, work, args.max_step, args.flush_at))
            r = rows[-1]
            print(f"kill trial {i:3d}: killed after step {r['kill_after_step']:4d} (+{r['delay_ms']:5.2f} ms)  "
                  f"stored {r['steps_stored']:4d}/{r['steps_done']:4d}  "
                  f"{'recovered' if r['recovered'] else 'FAILED ' + r['error']}", flush=True)
        if rows:
            lost = [r["steps_lost"] for r in rows]
            _table("kill -9 at random steps", [
                ("trials", len(rows)), ("faults injected (SIGKILL landed)", sum(r["killed"] for r in rows)),
                ("runs recovered", sum(r["recovered"] for r in rows)),
                ("stores that open (integrity ok)", sum(r["opens"] for r in rows)),
                ("stores holding every confirmed flush", sum(r["holds_flushed"] for r in rows)),
                ("killed runs diagnosed and rendered", sum(r["diagnosed"] and r["rendered"] for r in rows)),
                ("steps lost, total", sum(lost)), ("steps lost, max per run", max(lost, default=0)),
                ("steps lost, mean per run", round(sum(lost) / max(1, len(lost)), 2)),
                ("wall time, s", round(time.time() - t0, 1))])
        for lightning, n in ((False, args.resume_trials), (True, args.lightning_trials)):
            if n <= 0:
                continue
            if lightning and importlib.util.find_spec("lightning") is None:
                print("\nLightning is not installed: no Lightning trials")
                continue
            t0 = time.time()
            ref = reference(work, args.total, lightning)
            rows = results["lightning" if lightning else "resume"]
            for i in range(n):
                rows.append(resume_trial(i, rng, work, args.total, lightning, ref))
                r = rows[-1]
                kills = ", ".join(f"{k['signal']} after step {k['done']} (ckpt {k['ckpt']})" for k in r["kills"])
                failed = [k for k in r if r[k] is False and k != "lightning"]
                print(f"{'lightning' if lightning else 'resume'} trial {i:3d}: {kills:64s} "
                      f"{'recovered' if r['recovered'] else 'FAILED ' + ', '.join(failed) + ' ' + r.get('error', '')}",
                      flush=True)
            name = "the Lightning callback, fit(ckpt_path='last')" if lightning else "gradwatch run --resume"
            killed = [k for r in rows for k in r["kills"]]
            _table(f"kill and resume: {name}", [
                ("trials", len(rows)),
                ("kills (SIGKILL / SIGTERM)", f"{sum(k['signal'] == 'SIGKILL' for k in killed)} / "
                                              f"{sum(k['signal'] == 'SIGTERM' for k in killed)}"),
                ("records that open (integrity ok)", sum(r["opens"] for r in rows)),
                ("steps contiguous 0..N-1 across the restarts", sum(r["contiguous"] for r in rows)),
                ("every restart marked, at its checkpoint", sum(r["restarts_marked"] for r in rows)),
                ("steps trained again kept as superseded", sum(r["superseded_ok"] for r in rows)),
                ("diagnosis = the uninterrupted run's (kinds, causes, root)", sum(r["same_diagnosis"] for r in rows)),
                ("losses = the uninterrupted run's", sum(r["same_losses"] for r in rows)),
                ("uninterrupted diagnosis", ", ".join(k[0] for k in ref["kinds"]) or "healthy"),
                ("wall time, s", round(time.time() - t0, 1))])
        if args.writer_trials > 0:
            t0 = time.time()
            rows = results["writers"]
            for i in range(args.writer_trials):
                rows.append(writers_trial(i, work, 150))
                print(f"writers trial {i:3d}: {'ok' if rows[-1]['recovered'] else 'FAILED ' + str(rows[-1])}",
                      flush=True)
            _table("two writers on one run directory", [
                ("trials", len(rows)),
                ("second `gradwatch run --resume` refused", sum(r["second_cli_refused"] for r in rows)),
                ("second gw.watch(resume=True) refused", sum(r["second_python_refused"] for r in rows)),
                ("first still writing when refused", sum(r["first_alive_while_refused"] for r in rows)),
                ("first unharmed (exit 0, every step recorded)", sum(r["first_unharmed"] for r in rows)),
                ("wall time, s", round(time.time() - t0, 1))])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0 if all(r["recovered"] for rows in results.values() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
