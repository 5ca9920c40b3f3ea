"""The end of a watched run, shared by every framework adapter: diagnose the record, write the
HTML report next to it, and boil the run down to a few headline numbers a logger can plot.

Example:
    >>> # s = finish("runs/x"); s.diagnosis.verdict, s.report, s.metrics["gradwatch/healthy"]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "gradwatch/"


@dataclass
class Summary:
    """What an adapter hands back at the end of training.

    Attributes:
        diagnosis: the :class:`~gradwatch.findings.Diagnosis` of the run.
        report: path of ``report.html`` (None when not written).
        metrics: headline numbers, ``gradwatch/...`` → float (see :func:`headline`).
    """

    diagnosis: Any
    report: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def headline(run, diagnosis) -> dict[str, float]:
    """A handful of numbers for a metrics logger (all floats, NaN-free where it matters).

    ``gradwatch/healthy`` (1 or 0), ``gradwatch/findings`` (warnings + criticals),
    ``gradwatch/critical``, ``gradwatch/steps``, ``gradwatch/grad_norm_last`` and
    ``gradwatch/grad_norm_median`` (global gradient L2 norm), ``gradwatch/loss_last``, and
    ``gradwatch/<kind>`` = 1 for each kind found as a warning or critical.

    Example:
        >>> from gradwatch.findings import Diagnosis
        >>> class R: steps = __import__("pandas").DataFrame({"grad_norm": [1.0, 3.0], "loss": [2.0, 1.0]})
        >>> headline(R, Diagnosis(steps=2))["gradwatch/grad_norm_median"]
        2.0
    """
    serious = [f for f in diagnosis.findings if f.serious]
    out = {
        PREFIX + "healthy": 1.0 if diagnosis.verdict == "healthy" else 0.0,
        PREFIX + "findings": float(len(serious)),
        PREFIX + "critical": float(sum(f.severity == "critical" for f in serious)),
        PREFIX + "steps": float(diagnosis.steps),
    }
    steps = run.steps
    if len(steps):
        g = steps["grad_norm"].astype(float)
        finite = g[g.map(math.isfinite)]
        out[PREFIX + "grad_norm_last"] = float(g.iloc[-1])
        if len(finite):
            out[PREFIX + "grad_norm_median"] = float(finite.median())
        out[PREFIX + "loss_last"] = float(steps["loss"].astype(float).iloc[-1])
    for f in serious:
        out[PREFIX + f.kind] = 1.0
    return out


def finish(run_dir: str | os.PathLike, report: bool = True, quiet: bool = False) -> Summary:
    """Diagnose a finished (or crashed) run, write ``report.html`` into its directory, print
    the diagnosis unless ``quiet``.

    Example:
        >>> # finish(watcher.out).diagnosis.verdict
    """
    import gradwatch as gw

    run = gw.load(run_dir)
    diagnosis = gw.diagnose(run)
    path = None
    if report:
        from ..report.html import write_report

        path = write_report(run, diagnosis, Path(run_dir) / "report.html")
    if not quiet:
        from ..report.terminal import print_diagnosis

        print_diagnosis(diagnosis, run=run)
        if path is not None:
            print(f"gradwatch report: {path}")
    return Summary(diagnosis, path, headline(run, diagnosis))


__all__ = ["Summary", "finish", "headline"]
