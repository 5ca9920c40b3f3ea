"""Reports of a diagnosed run: the terminal summary (rich) and a self-contained HTML file.

The report only renders what it is given, a recorded run and its diagnosis; it never
diagnoses anything itself.

Example:
    >>> # from gradwatch.report import print_diagnosis, write_report
    >>> # run, d = gw.load("runs/x"), gw.diagnose("runs/x")
    >>> # print_diagnosis(d, run=run); write_report(run, d, "runs/x/report.html")
"""

from __future__ import annotations

from .html import render_html, write_report
from .terminal import print_diagnosis, print_layer_table

__all__ = ["print_diagnosis", "print_layer_table", "render_html", "write_report"]
