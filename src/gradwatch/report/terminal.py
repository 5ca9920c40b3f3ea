"""The diagnosis in the terminal (rich): one line for a healthy run, else the root cause and
its first fix, then a compact panel per finding (each root followed by what follows from it),
and the per-layer gradient table.

Every string that comes from the model or the run goes into a ``rich.text.Text``, never into
markup, so a module named ``[bold]x[/]`` prints as itself.

Example:
    >>> from gradwatch.findings import Diagnosis
    >>> from rich.console import Console
    >>> print_diagnosis(Diagnosis(steps=150), console=Console(width=80))
    healthy: no problems in 150 steps
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .format import (count_by_severity, fmt, fmt_trial, fmt_value, layer_label, remedy_code, root_lines,
                     sorted_findings, truncate_layers)
from .layers import layer_rows, stats_step

STYLE = {"critical": "bold white on red", "warning": "bold black on yellow", "info": "bold white on blue"}
BORDER = {"critical": "red", "warning": "yellow", "info": "blue"}
MAX_EVIDENCE = 6


def print_diagnosis(diagnosis, console: Console | None = None, run=None) -> None:
    """Print a diagnosis: ``healthy: no problems in N steps``, or the root cause, its first fix
    and what follows from it, then one panel per finding, root causes first.

    Each panel shows severity, kind, first step, layers (long lists truncated), the summary,
    the key evidence numbers, the likely causes and the remedies in order, with the measured
    trial (before → after) where one was run.

    Args:
        diagnosis: a :class:`gradwatch.findings.Diagnosis`.
        console: where to print (default: a new ``rich.console.Console`` on stdout).
        run: the recorded run, when known; its directory is named in the header.

    Example:
        >>> # print_diagnosis(gw.diagnose("runs/x"), run=gw.load("runs/x"))
    """
    console = console or Console()
    n, findings = diagnosis.steps, list(diagnosis.findings)
    where = Text(f"  ({run.dir})", style="dim") if run is not None else Text("")
    serious = [f for f in sorted_findings(findings) if f.serious]
    notes = [f for f in sorted_findings(findings) if not f.serious]
    if not serious:
        line = Text.assemble(("healthy", "bold green"), f": no problems in {n} steps")
        if notes:
            kinds = ", ".join(dict.fromkeys(f.kind for f in notes))
            line.append(f" ({len(notes)} note{'s' if len(notes) > 1 else ''}: {kinds})", style="dim")
        console.print(line + where)
        return
    console.print(Text.assemble(("unhealthy", "bold red"),
                                f": {count_by_severity(serious)} in {n} steps") + where)
    lead = Table.grid(padding=(0, 1))
    lead.add_column(style="bold", no_wrap=True)
    lead.add_column(ratio=1)
    for label, text in root_lines(diagnosis):
        lead.add_row(Text(f"{label}:"), Text(text))
    console.print(lead)
    for f in serious:
        console.print(finding_panel(f))
    for f in notes:
        console.print(Text.assemble(("  note ", "bold blue"), (f.kind, "blue"), "  ", f.summary))


def finding_panel(f) -> Panel:
    """One finding as a rich Panel, bordered in its severity's colour."""
    parts: list = []
    head = Text.assemble(("from step ", "dim"), (str(f.first_step), "bold"))
    if f.layers:
        head.append(" · layer" + ("s " if len(f.layers) > 1 else " "), style="dim")
        head.append(truncate_layers(list(f.layers)))
    parts += [head, Text(f.summary)]
    if f.evidence:
        ev = Table.grid(padding=(0, 2))
        ev.add_column(style="dim")
        ev.add_column()
        items = list(f.evidence.items())
        for k, v in items[:MAX_EVIDENCE]:
            ev.add_row(Text(str(k)), Text(fmt_value(v)))
        if len(items) > MAX_EVIDENCE:
            ev.add_row(Text(f"(+{len(items) - MAX_EVIDENCE} more)"), Text(""))
        parts += [Text("evidence", style="bold"), ev]
    if f.causes:
        parts.append(Text("why", style="bold"))
        parts.append(_hanging([(Text("  •"), Text.assemble((c.id, "cyan"), " — ", c.because))
                               for c in f.causes]))
    if f.remedies:
        parts.append(Text("fix", style="bold"))
        items = []
        for i, r in enumerate(f.remedies, 1):
            body = Text.assemble((r.id, "green"), " — ", r.description)
            if r.trial is not None:
                body.append(f"  [{fmt_trial(r.trial)}]", style="green" if r.trial.improved else "red")
            items.append((Text(f"  {i}."), body))
            snippet = remedy_code(r) if i == 1 else ""  # the first remedy's code, ready to paste
            if snippet:
                items.append((Text(""), Syntax(snippet, "python", theme="ansi_dark", word_wrap=True,
                                               background_color="default")))
        parts.append(_hanging(items))
    title = Text.assemble((f" {f.severity.upper()} ", STYLE.get(f.severity, "bold")),
                          (f.kind, "bold"), " ")
    if getattr(f, "consequence_of", None):
        title.append_text(Text.assemble(("· follows from ", "dim"), (f.consequence_of, "bold"), " "))
    return Panel(Group(*parts), title=title, title_align="left", border_style=BORDER.get(f.severity, "white"),
                 box=box.ROUNDED, padding=(0, 1))


def _hanging(rows) -> Table:
    """Marker + text rows whose wrapped lines stay indented under the text."""
    g = Table.grid(padding=(0, 1))
    g.add_column(no_wrap=True)
    g.add_column(ratio=1)
    for marker, body in rows:
        g.add_row(marker, body)
    return g


def print_layer_table(run, console: Console | None = None, step: int | None = None,
                      max_rows: int | None = 60) -> None:
    """Print the per-layer gradient table of a run at ``step`` (default: last measured step).

    Columns: module (or parameter) name and type, weight gradient norm, δ = ‖∂L/∂h‖ at the
    module's output, update/weight ratio, and activation mean / saturated / dead fractions.
    A dash means not recorded; red marks NaN or inf.

    Example:
        >>> # print_layer_table(gw.load("runs/x"), step=100)
    """
    console = console or Console()
    step, rows = layer_rows(run, step)
    if not rows:
        console.print(Text("no per-layer data recorded", style="dim"))
        return
    slow = stats_step(run, step)
    caption = "δ = ‖∂L/∂h‖ at the module's output · upd/w = ‖ΔW‖/‖W‖, ≈ 1e-3 is healthy"
    if slow is not None and slow != step:
        caption += f"\nδ, update/weight and activations from step {slow}, the last measured"
    t = Table(title=Text(f"Per-layer gradients at step {step}", style="bold"), box=box.SIMPLE_HEAD,
              caption=Text(caption, style="dim"), header_style="bold", pad_edge=False)
    t.add_column("layer", overflow="fold", ratio=1, min_width=8)
    t.add_column("type", style="dim", overflow="ellipsis", no_wrap=True, max_width=14)
    for name, width in (("‖∂L/∂W‖", 8), ("δ", 8), ("upd/w", 8), ("act mean", 8), ("sat", 4), ("dead", 4)):
        t.add_column(name, justify="right", no_wrap=True, min_width=width)
    shown = rows
    if max_rows is not None and len(rows) > max_rows:
        shown = rows[: max_rows // 2] + [None] + rows[-(max_rows - max_rows // 2):]
    for r in shown:
        if r is None:
            t.add_row(Text(f"… {len(rows) - max_rows} more", style="dim"), *[""] * 7)
            continue
        label = Text("  ↳ " + r["name"].rsplit(".", 1)[-1]) if r["param"] else Text(layer_label(r["name"]))
        t.add_row(label, Text(r["type"]), _num(r["grad_norm"]), _num(r["delta"]),
                  _num(r["update_ratio"]), _num(r["act_mean"]), _pct(r["act_sat"]), _pct(r["act_dead"]))
    console.print(t)


def _num(x: float) -> Text:
    if math.isnan(x):
        return Text("—", style="dim")
    if math.isinf(x):
        return Text("NaN/inf", style="bold red")
    return Text(fmt(x))


def _pct(x: float) -> Text:
    if math.isnan(x):
        return Text("—", style="dim")
    return Text(f"{100 * x:.0f}%")
