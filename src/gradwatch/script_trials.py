"""Trials for unmodified scripts: the script is run again, K steps, once per remedy, with the
remedy injected through the global hooks (:mod:`gradwatch.inject`), each in a fresh process.

The measure is the loss at the end of the K steps (median of the last tenth, so one noisy batch
does not decide) against the same K steps of the script unchanged. Scripts that seed
themselves replay the same batches; others add their own noise, which the table shows.

Example:
    >>> # results = trial_script("train.py", [], ["reduce_lr", "clip_grad_norm"], steps=100, out="runs/t")
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ScriptTrial:
    """One arm: the remedy (``baseline`` = unchanged), the loss reached, and what was found."""

    remedy: str
    loss: float
    verdict: str
    kinds: list[str]
    seconds: float
    status: int
    error: str = ""


def end_loss(run) -> float:
    """Median of the last tenth of the finite losses; +inf when the run went non-finite."""
    lo = run.steps["loss"].to_numpy(dtype=float)
    if len(lo) == 0:
        return float("nan")
    if (run.steps["nonfinite"] != "").any():
        return float("inf")
    lo = lo[np.isfinite(lo)]
    if lo.size == 0:
        return float("nan")
    return float(np.median(lo[-max(1, lo.size // 10):]))


def _arm(script, args, remedy, steps, out: Path, timeout) -> ScriptTrial:
    from .record import load

    cmd = [sys.executable, "-m", "gradwatch.cli", "run", "--out", str(out), "--json", str(out) + ".json",
           "--steps", str(steps)]
    if remedy != "baseline":
        cmd += ["--remedy", remedy]
    t = time.perf_counter()
    proc = subprocess.run(cmd + [str(script), *args], capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t
    try:
        d = json.loads(Path(str(out) + ".json").read_text())
        loss = end_loss(load(out))
        return ScriptTrial(remedy, loss, d["verdict"], [f["kind"] for f in d["findings"]
                                                         if f["severity"] != "info"], seconds, proc.returncode)
    except (OSError, ValueError, KeyError):
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no diagnosis written"]
        return ScriptTrial(remedy, float("nan"), "failed", [], seconds, proc.returncode, tail[0][-200:])


def trial_script(script, args: list[str], remedies: list[str], steps: int, out, timeout: float = 600,
                 progress=None) -> list[ScriptTrial]:
    """Run the baseline and each remedy for ``steps`` steps; return the arms, baseline first."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arms = []
    for r in ["baseline", *remedies]:
        arms.append(_arm(script, args, r, steps, out / r, timeout))
        if progress is not None:
            progress()
    return arms


def rank_into(diagnosis, arms: list[ScriptTrial], steps: int) -> None:
    """Write each arm's result into the matching remedies of the diagnosis; best first."""
    from .findings import Trial

    base = arms[0]
    by_id = {a.remedy: a for a in arms[1:] if not math.isnan(a.loss)}
    for f in diagnosis.findings:
        for rem in f.remedies:
            a = by_id.get(rem.id)
            if a is not None:
                rem.trial = Trial(metric=f"loss after {steps} steps (script re-run)", before=base.loss, after=a.loss)

        def key(rem):
            t = rem.trial
            if t is None:
                return (1, 0.0)
            return (0, t.after) if t.improved else (2, 0.0)

        f.remedies.sort(key=key)
