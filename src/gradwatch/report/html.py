"""The HTML report: one self-contained file (inline CSS, figures as data: URIs, no scripts,
no network) that opens from disk.

Order: title and verdict, the findings, the before/after comparison (when given), the
figures, then the run (command line, versions, model). A Content-Security-Policy forbids
every fetch, so a browser opening the file never touches the network.

Example:
    >>> # write_report(gw.load("runs/x"), gw.diagnose("runs/x"), "runs/x/report.html")
"""

from __future__ import annotations

import os
from pathlib import Path

from .figures import Rendered, render_figures
from .format import count_by_severity, fmt_trial, remedy_code, sorted_findings
from .html_sections import compare_section, consequence_note, root_cause_section, run_section
from .htmlkit import code, esc, kv_table, layer_list
from .style import CSS

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def render_html(run, diagnosis, compare=None, title: str | None = None) -> str:
    """Render the report of a run and its diagnosis as one HTML string.

    Args:
        run: the recorded :class:`gradwatch.record.Run`.
        diagnosis: its :class:`gradwatch.findings.Diagnosis` (the report never diagnoses).
        compare: optional ``(run_after, diagnosis_after, label)``: a before/after section with
            both runs' metrics (``meta["metrics"]`` or the last ``metrics`` event), verdicts
            and gradient flow side by side.
        title: the page title (default: ``gradwatch report — <run directory name>``).

    Returns:
        The complete document.

    Example:
        >>> # Path("report.html").write_text(render_html(run, diagnosis))
    """
    title = title or f"gradwatch report — {run.dir.name}"
    figures = render_figures(run)
    body = [
        _header(run, diagnosis, title),
        _verdict(diagnosis),
        root_cause_section(diagnosis),
        _findings(diagnosis),
        compare_section(run, diagnosis, compare) if compare is not None else "",
        _figures(figures),
        run_section(run),
        f'<footer>gradwatch {esc(_version())} · a self-contained file: no scripts, no network</footer>',
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
        + "\n".join(b for b in body if b)
        + "\n</main></body></html>\n"
    )


def write_report(run, diagnosis, path: str | os.PathLike, compare=None, title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` (parent directories created) and return the path.

    Raises:
        OSError: the file cannot be written.

    Example:
        >>> # write_report(run, diagnosis, run.dir / "report.html")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(run, diagnosis, compare=compare, title=title), encoding="utf-8")
    return path


def _version() -> str:
    from .. import __version__

    return __version__


def _header(run, diagnosis, title: str) -> str:
    bits = [esc(str(run.dir)), f"{diagnosis.steps} steps"]
    started = run.meta.get("started")
    if started:
        from .html_sections import when

        bits.append(esc(when(started)))
    return (f'<header><div class="brand">gradwatch</div><h1>{esc(title)}</h1>'
            f'<p class="sub">{" · ".join(bits)}</p></header>')


def _verdict(diagnosis) -> str:
    findings = sorted_findings(diagnosis.findings)
    serious = [f for f in findings if f.serious]
    if not serious:
        notes = f" · {len(findings)} note{'s' if len(findings) != 1 else ''}" if findings else ""
        return (f'<section class="verdict healthy"><div class="word">Healthy</div>'
                f'<div class="what">no problems in {diagnosis.steps} steps{notes}</div></section>')
    chips = "".join(f'<li><a class="chip sev-{esc(f.severity)}" href="#finding-{i}">{esc(f.kind)}</a></li>'
                    for i, f in enumerate(findings, 1) if f.serious)
    return (f'<section class="verdict unhealthy"><div class="word">Unhealthy</div>'
            f'<div class="what">{esc(count_by_severity(serious))} in {diagnosis.steps} steps</div>'
            f'<ul class="chips">{chips}</ul></section>')


def _findings(diagnosis) -> str:
    findings = sorted_findings(diagnosis.findings)
    if not findings:
        return ""
    return "<section id=\"findings\"><h2>Findings</h2>" + "".join(
        _finding(i, f) for i, f in enumerate(findings, 1)) + "</section>"


def _finding(i: int, f) -> str:
    sev = esc(f.severity)
    human = f.kind.replace("_", " ").capitalize()
    out = [f'<article class="finding sev-{sev}" id="finding-{i}"><header>'
           f'<span class="badge">{sev}</span><h3>{esc(human)}</h3><span class="kind">{esc(f.kind)}</span>'
           f'<span class="when">from step {esc(f.first_step)}</span></header>',
           f'<p class="summary">{esc(f.summary)}</p>', consequence_note(f)]
    if f.layers:
        word = "layers" if len(f.layers) > 1 else "layer"
        out.append(f'<p class="layers">{word} {layer_list(list(f.layers))}</p>')
    cols = []
    if f.evidence:
        cols.append(f"<div><h4>Evidence</h4>{kv_table(f.evidence)}</div>")
    if f.causes:
        items = "".join(f"<li>{code(c.id)} {esc(c.because)}</li>" for c in f.causes)
        cols.append(f'<div><h4>Likely causes</h4><ul class="causes">{items}</ul></div>')
    if cols:
        out.append(f'<div class="cols">{"".join(cols)}</div>')
    if f.remedies:
        out.append("<h4>Remedies, in order</h4><ol class=\"remedies\">"
                   + "".join(_remedy(r) for r in f.remedies) + "</ol>")
    out.append("</article>")
    return "".join(out)


def _remedy(r) -> str:
    trial = ""
    if r.trial is not None:
        ok = "ok" if r.trial.improved else "no"
        trial = f'<span class="trial {ok}" title="measured on a copy of the model">{esc(fmt_trial(r.trial))}</span>'
    text = remedy_code(r)
    snippet = f"<pre><code>{esc(text)}</code></pre>" if text else ""
    return (f'<li><div class="rhead">{code(r.id)}<span>{esc(r.description)}</span>{trial}</div>'
            f"{snippet}</li>")


def _figures(figures: list[Rendered]) -> str:
    drawn = [f for f in figures if f.uri]
    skipped = [f for f in figures if not f.uri]
    parts = ['<section id="figures"><h2>Figures</h2>']
    for f in drawn:
        parts.append(f'<figure id="fig-{esc(f.spec.name)}"><h3>{esc(f.spec.title)}</h3>'
                     f"<figcaption>{esc(f.spec.caption)}</figcaption>"
                     f'<img alt="{esc(f.spec.title)}" src="{f.uri}"></figure>')
    if not drawn:
        parts.append('<p class="none">This run recorded nothing to draw.</p>')
    if skipped:
        items = "".join(f"<li><strong>{esc(f.spec.title)}</strong>: {esc(f.note)}</li>" for f in skipped)
        parts.append(f'<ul class="skipped">{items}</ul>')
    parts.append("</section>")
    return "".join(parts)


__all__ = ["render_html", "write_report"]
