"""Trials for unmodified scripts: the script is run again, K steps, once per remedy, with the
remedy injected through the global hooks (:mod:`gradwatch.inject`), each in a fresh process.

The measure is the loss at the end of the K steps (median of the last tenth, so one noisy batch
does not decide; +inf when the run ended non-finite or the script crashed) against the same K
steps of the script unchanged. Scripts that seed
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ScriptTrial:
    """One arm: the remedy (``baseline`` = unchanged), the loss reached, and what was found.

    Example:
        >>> # arms = trial_script("train.py", [], ["reduce_lr"], steps=100, out="runs/t")
        >>> # arms[0].remedy, arms[0].loss   -> ('baseline', 2.30)
    """

    remedy: str
    loss: float
    verdict: str
    kinds: list[str]
    seconds: float
    status: int
    error: str = ""
    #: the injectable remedies the diagnosis of this arm's run still prescribes (serious
    #: findings, top 3 each, in order): what a second round may add to this arm's remedy
    prescribed: list[str] = field(default_factory=list)


def end_loss(run) -> float:
    """Median of the finite losses in the last tenth of the steps; +inf when the run ended
    non-finite (half or more of that tail non-finite, or a non-finite value in its last step).

    Judged by how the run ends, not by whether a NaN ever appeared: a guarded run that skipped
    a NaN batch and went on has a finite end; a run whose weights went NaN has not.
    """
    lo = run.steps["loss"].to_numpy(dtype=float)
    if len(lo) == 0:
        return float("nan")
    tail = lo[-max(1, len(lo) // 10):]
    bad = ~np.isfinite(tail)
    last_bad = run.steps["nonfinite"].iloc[-1] != "" and not np.isfinite(lo[-1])
    if bad.sum() * 2 >= tail.size or last_bad:
        return float("inf")
    return float(np.median(tail[~bad]))


def steps_to_cover(diagnosis, steps: int) -> int:
    """Trial length that reaches the first non-finite step of the recorded run (plus a tenth,
    at least 10 steps), when that step lies beyond ``steps``: a trial that stops before the
    NaN shows nothing about it. Never more than the recorded run's own length.

    Example:
        >>> # steps = steps_to_cover(diagnosis, 100)   # 228 for a NaN at step 207
    """
    firsts = [f.first_step for f in diagnosis.findings if f.kind == "nonfinite" and f.serious]
    if not firsts or min(firsts) < steps:
        return steps
    first = min(firsts)
    return int(min(max(diagnosis.steps or 0, steps), first + max(10, first // 10)))


def _arm(script, args, remedy, steps, out: Path, timeout) -> ScriptTrial:
    from .record import load

    cmd = [sys.executable, "-m", "gradwatch.cli", "run", "--out", str(out), "--json", str(out) + ".json",
           "--steps", str(steps), "--stats-budget", "0", "--overwrite"]  # every arm measured on the same steps
    if remedy != "baseline":
        cmd += ["--remedy", remedy]
    t = time.perf_counter()
    proc = subprocess.run(cmd + [str(script), *args], capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t
    try:
        d = json.loads(Path(str(out) + ".json").read_text())
        loss = end_loss(load(out))
        if proc.returncode != 0:  # the script crashed (a NaN assert, an exception): the worst end
            loss = float("inf")
        serious = [f for f in d["findings"] if f["severity"] != "info"]
        return ScriptTrial(remedy, loss, d["verdict"], [f["kind"] for f in serious], seconds, proc.returncode,
                           prescribed=_prescribed(serious))
    except (OSError, ValueError, KeyError):
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no diagnosis written"]
        return ScriptTrial(remedy, float("nan"), "failed", [], seconds, proc.returncode, tail[0][-200:])


def _prescribed(serious_findings: list[dict]) -> list[str]:
    from .inject import INJECTABLE

    ids: list[str] = []
    for f in serious_findings:
        ids += [r["id"] for r in f.get("remedies", []) if r["id"] in INJECTABLE][:3]
    return list(dict.fromkeys(ids))


def arm_dir(spec: str) -> str:
    """The folder of an arm under ``trials/``: its remedy ids in the spec's order, without the
    numbers (its diagnosis is the ``.json`` beside it).

    Example:
        >>> arm_dir("add_warmup:25+reduce_lr"), arm_dir("baseline")
        ('add_warmup+reduce_lr', 'baseline')
    """
    from .inject import remedy_ids

    return "+".join(remedy_ids(spec))


def trial_script(script, args: list[str], remedies: list[str], steps: int, out, timeout: float = 600,
                 progress=None, combine: bool = True, more=None) -> list[ScriptTrial]:
    """Run the baseline and each remedy for ``steps`` steps; return the arms, baseline first.

    Each arm is the unmodified script in a fresh process, the remedy injected through the
    global hooks (``gradwatch run --remedy R --steps K``). With ``combine``, a second round
    tries the best arm together with what its own diagnosis still prescribes, then with the
    runners-up, and a model remedy that diverged with the step remedy its own run prescribes
    (:func:`gradwatch.trials.second_round`); those arms come last, named ``best+next``.
    ``progress()`` is called after each arm, ``more(n)`` before a second round of ``n`` arms (to
    grow a progress bar).

    Example:
        >>> # arms = trial_script("train.py", [], ["reduce_lr", "clip_grad_norm"], steps=100, out="runs/t")
        >>> # min(arms[1:], key=lambda a: a.loss).remedy   -> the best remedy
    """
    from .inject import trial_spec
    from .trials import second_round

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arms = []
    for r in ["baseline", *remedies]:
        spec = r if r == "baseline" else trial_spec(r, steps)  # a warmup shorter than the trial
        arms.append(_arm(script, args, spec, steps, out / arm_dir(spec), timeout))
        if progress is not None:
            progress()
    if combine:
        combos = second_round(arms, steps)
        if combos and more is not None:
            more(len(combos))
        for spec in combos:
            arms.append(_arm(script, args, spec, steps, out / arm_dir(spec), timeout))
            if progress is not None:
                progress()
    return arms


def rank_into(diagnosis, arms: list[ScriptTrial], steps: int) -> None:
    """Write each arm's result into the matching remedies of the diagnosis; best first.

    Example:
        >>> # rank_into(diagnosis, trial_script(...), steps=100); diagnosis.findings[0].remedies[0].trial
    """
    from .trials import write_ranked

    write_ranked(diagnosis, arms, f"loss after {steps} steps (script re-run)")
