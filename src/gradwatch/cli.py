"""The ``gradwatch`` command: run | demo | report | diagnose | lab.

Example:
    $ gradwatch run --out runs/t --json t.json train.py --lr 0.1
    $ gradwatch diagnose runs/t --json t.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Find, explain and repair unstable gradients in PyTorch training.",
)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    _stderr_console().print(f"[bold red]gradwatch:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _finish(run_dir: Path, json_path: Optional[Path], report: bool = True) -> None:
    """Diagnose a recorded run, print it, write report.html and the JSON."""
    from .diagnosis import diagnose
    from .record import load
    from .report.html import write_report
    from .report.terminal import print_diagnosis

    console = _stderr_console()
    run = load(run_dir)
    diagnosis = diagnose(run)
    print_diagnosis(diagnosis, console=console, run=run)
    if report:
        path = write_report(run, diagnosis, run_dir / "report.html")
        console.print(f"report: {path}", highlight=False)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(diagnosis.to_json())
        console.print(f"diagnosis JSON: {json_path}", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "allow_interspersed_args": False})
def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="the training script, run unchanged"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default gradwatch-runs/<script>-<time>)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the diagnosis as JSON here"),
    guard: bool = typer.Option(False, "--guard", help="skip exploding/non-finite steps, roll back on repeated failure"),
    every: int = typer.Option(10, "--every", help="steps between the slow statistics (δ, activations, updates)"),
) -> None:
    """Run SCRIPT [ARGS...] with every optimizer and module watched, then diagnose it."""
    from .runscript import ScriptNotFound, run_script

    if every < 1:
        _fail(f"--every must be at least 1, got {every}")
    out = out or Path("gradwatch-runs") / f"{script.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    kwargs = {"every": every}
    if guard:
        kwargs["guard"] = True
    try:
        status, watcher = run_script(script, list(ctx.args), out, **kwargs)
    except ScriptNotFound as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - e.g. an unwritable --out: one line, no trace
        _fail(str(e))
    if watcher is None:
        _stderr_console().print(
            "gradwatch: the script never stepped an optimizer, so there is nothing to diagnose", highlight=False)
        raise typer.Exit(status)
    try:
        _finish(out, json_path)
    except Exception as e:  # noqa: BLE001 - the script's status matters more than ours
        _stderr_console().print(f"[red]gradwatch: diagnosis failed: {e}[/]", highlight=False)
        if status == 0:
            status = 3
    raise typer.Exit(status)


@app.command()
def diagnose(
    run_dir: Path = typer.Argument(..., help="a run directory (holds run.db)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the diagnosis as JSON here"),
) -> None:
    """Diagnose a recorded run; print the findings (and write JSON with --json)."""
    from .store import StoreError

    try:
        _finish(run_dir, json_path, report=False)
    except StoreError as e:
        _fail(str(e))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="a run directory (holds run.db)"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)"),
) -> None:
    """Write the HTML report of a recorded run."""
    from .diagnosis import diagnose as _diagnose
    from .record import load
    from .report.html import write_report
    from .store import StoreError

    try:
        run_ = load(run_dir)
        path = write_report(run_, _diagnose(run_), out or run_dir / "report.html")
    except StoreError as e:
        _fail(str(e))
    typer.echo(str(path))


@app.command()
def demo(
    out: Path = typer.Option(Path("gradwatch-runs/demo"), "--out", help="where the runs and the report go"),
    steps: int = typer.Option(300, "--steps", help="training steps for each of the two runs"),
) -> None:
    """A 20-layer sigmoid network on digits: diagnosed, repaired, retrained, compared."""
    from .demo import run_demo

    run_demo(out, steps=steps)


def _mount_lab() -> None:
    try:
        from .lab.cli import app as lab_app
    except ImportError:
        return
    app.add_typer(lab_app, name="lab", help="Reproduce the classic results on unstable gradients.")


_mount_lab()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
