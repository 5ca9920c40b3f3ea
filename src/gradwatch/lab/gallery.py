"""The gallery: one self-contained HTML page with every experiment's verdict, checks and figures.

Figures are inlined as ``data:image/png;base64`` URIs, so the page can be mailed or archived
alone. Every string from a result goes through :func:`html.escape`.

Example:
    >>> from gradwatch.lab.core import Result, check
    >>> r = Result(checks=[check("a < b", True, a=1, b=2)], name="demo", seconds=1.0)
    >>> '<a href="#demo">demo</a>' in render([r], root=".")
    True
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any, Iterable

from .core import REPRODUCED, Result

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:14px} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .ok{color:#17723a;font-weight:600} .bad{color:#b3261e;font-weight:600}
section{border-top:2px solid #eee;margin-top:2em;padding-top:.5em}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} .claim{font-size:1.05em}
details{margin:.4em 0} pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.summary td.failed{color:#b3261e} table.summary tr.first td{border-top:2px solid #bbb}
table.cm th{font-weight:400;color:#666;text-align:right} a{color:inherit}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def summary_rows(results: Iterable[Result]) -> list[dict[str, str]]:
    """One row per result: experiment, verdict, criterion, measured, seconds (all text)."""
    return [{"experiment": r.name, "verdict": r.verdict, "criterion": r.criterion,
             "measured": r.measured, "seconds": f"{r.seconds:.1f}"} for r in results]


def _verdict(v: str) -> str:
    return f'<span class="{"ok" if v == REPRODUCED else "bad"}">{_e(v)}</span>'


def _image(path: Path) -> str:
    if not path.is_file():
        return f"<p class='bad'>missing figure: {_e(path)}</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(path.name)}" src="data:image/png;base64,{data}">'


def _value_html(v: Any, depth: int = 0) -> str:
    if isinstance(v, dict) and "confusion_matrix" in v and depth < 3:
        rest = {k: x for k, x in v.items() if k not in ("confusion_matrix", "labels")}
        rows = f"<tr><th>confusion_matrix</th><td>{_confusion_html(v['confusion_matrix'], v.get('labels'))}</td></tr>"
        rows += "".join(f"<tr><th>{_e(k)}</th><td>{_value_html(x, depth + 1)}</td></tr>" for k, x in rest.items())
        return f"<table>{rows}</table>"
    if isinstance(v, dict) and depth < 3:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value_html(x, depth + 1)}</td></tr>" for k, x in v.items())
        return f"<table>{rows}</table>"
    if isinstance(v, list) and v and all(isinstance(r, list) for r in v):  # a matrix
        rows = "".join("<tr>" + "".join(f"<td class='num'>{_e(_num(c))}</td>" for c in r) + "</tr>" for r in v)
        return f"<table>{rows}</table>"
    return _e(_num(v))


def _confusion_html(matrix: Any, labels: Any) -> str:
    """A confusion matrix with its labels: rows = true class, columns = predicted class."""
    if not (isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix)):
        return _value_html(matrix, 3)
    if not (isinstance(labels, list) and len(labels) == len(matrix)):
        labels = list(range(len(matrix)))
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{_e(lab)}</th>" for lab in labels) + "</tr>"
    rows = "".join(f"<tr><th>{_e(lab)}</th>" + "".join(f"<td class='num'>{_e(_num(c))}</td>" for c in r) + "</tr>"
                   for lab, r in zip(labels, matrix))
    return f"<table class='cm'>{head}{rows}</table>"


def _num(v: Any) -> Any:
    return f"{v:.4g}" if isinstance(v, float) else v


def _section(r: Result, root: Path) -> str:
    checks = "".join(
        f"<tr><td>{'✓' if c.passed else '✗'}</td><td>{_e(c.criterion)}</td><td>{_e(c.describe())}</td>"
        f"<td class='{'ok' if c.passed else 'bad'}'>{'passed' if c.passed else 'FAILED'}</td></tr>"
        for c in r.checks)
    figures = "".join(_image(root / r.name / f if not Path(f).is_absolute() else Path(f)) for f in r.figures)
    tables = "".join(f"<details><summary>{_e(k)}</summary>{_value_html(v)}</details>" for k, v in r.tables.items())
    notes = f"<p><b>Notes.</b> {_e(r.notes)}</p>" if r.notes else ""
    return (
        f'<section id="{_e(r.name)}"><h2>{_e(r.name)} — {_verdict(r.verdict)}</h2>'
        f'<p class="claim">{_e(r.claim)}</p><p class="sub">Source: {_e(r.source)} · seeds {_e(r.seeds)}'
        f' · {r.seconds:.1f} s</p>'
        f"<table><tr><th></th><th>criterion</th><th>measured</th><th></th></tr>{checks}</table>{notes}{figures}"
        f"{('<h3>Metrics</h3>' + tables) if tables else ''}"
        f"<details><summary>config and measurements</summary>{_value_html({'config': r.config})}"
        f"<pre>{_e(_json(r.measurements))}</pre></details></section>"
    )


def _json(v: Any) -> str:
    import json

    return json.dumps(v, indent=1, default=str)[:20000]


def _summary_html(results: list[Result]) -> str:
    """The summary table: one line per check (criterion next to its numbers, failed ones in red)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in ("experiment", "verdict", "criterion", "measured", "seconds"))
    rows = []
    for r in results:
        checks = r.checks or [None]
        span = f" rowspan='{len(checks)}'" if len(checks) > 1 else ""
        for i, c in enumerate(checks):
            cells = ""
            if i == 0:
                cells += (f"<td{span}><a href=\"#{_e(r.name)}\">{_e(r.name)}</a></td>"
                          f"<td{span}>{_verdict(r.verdict)}</td>")
            if c is None:
                cells += "<td class='failed'>✗ no check</td><td></td>"
            else:
                cls = "" if c.passed else " class='failed'"
                cells += (f"<td{cls}>{'✓' if c.passed else '✗'} {_e(c.criterion)}</td>"
                          f"<td{cls}>{_e(c.describe())}{'' if c.passed else ' — FAILED'}</td>")
            if i == 0:
                cells += f"<td{span} class='num'>{r.seconds:.1f}</td>"
            rows.append(f"<tr{' class=first' if i == 0 else ''}>{cells}</tr>")
    total = sum(r.seconds for r in results)
    rows.append(f"<tr class=first><th colspan='4'>total</th><td class='num'><b>{total:.1f}</b></td></tr>")
    return f"<table class='summary'><tr>{head}</tr>{''.join(rows)}</table>"


def render(results: list[Result], root: str | Path, title: str = "gradwatch lab") -> str:
    """The gallery page for ``results`` whose figures live under ``root/NAME/``."""
    root = Path(root)
    ok = sum(r.verdict == REPRODUCED for r in results)
    body = "".join(_section(r, root) for r in results)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
        f"</head><body><h1>{_e(title)}</h1><p class='sub'>{ok} of {len(results)} claims reproduced · "
        f"{sum(r.seconds for r in results):.0f} s · {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>"
        f"{_summary_html(results)}{body}</body></html>"
    )


def write_gallery(results: list[Result], root: str | Path, path: str | Path | None = None) -> Path:
    """Write the gallery to ``path`` (default ``root/gallery.html``); returns the path."""
    path = Path(path) if path is not None else Path(root) / "gallery.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, root), encoding="utf-8")
    return path
