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
    no_args_is_help=True,  # keeps typer's --install-completion / --show-completion
    help="Find, explain and repair unstable gradients in PyTorch training.",
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"gradwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print gradwatch's version and exit"),
) -> None:
    pass


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    _stderr_console().print(f"[bold red]gradwatch:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _finish(run_dir: Path, json_path: Optional[Path], report: bool = True, trial=None) -> None:
    """Diagnose a recorded run (trying remedies when ``trial`` = (script, args, steps)), print
    it, write report.html and the JSON."""
    from .diagnosis import diagnose
    from .record import load
    from .report.html import write_report
    from .report.terminal import print_diagnosis

    console = _stderr_console()
    run = load(run_dir)
    diagnosis = diagnose(run)
    if trial is not None and diagnosis.verdict == "unhealthy":
        _trial_remedies(diagnosis, run_dir, *trial, console=console)
    print_diagnosis(diagnosis, console=console, run=run)
    restarts = run.restarts
    if len(restarts):
        kept = int(restarts.superseded.sum())
        console.print(f"resumed {len(restarts)}× (at step{'s' if len(restarts) > 1 else ''} "
                      f"{', '.join(str(int(s)) for s in restarts.step)}); {kept} step(s) trained again kept apart "
                      "as superseded, not diagnosed", highlight=False)
    if report:
        path = write_report(run, diagnosis, run_dir / "report.html")
        console.print(f"report: {path}", highlight=False)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(diagnosis.to_json())
        console.print(f"diagnosis JSON: {json_path}", highlight=False)


def _trial_remedies(diagnosis, run_dir: Path, script: Path, args: list[str], steps: int, console) -> None:
    """Re-run the script once per candidate remedy (injected), K steps each, and rank them."""
    from rich.progress import Progress
    from rich.table import Table

    from .inject import INJECTABLE
    from .script_trials import rank_into, steps_to_cover, trial_script

    steps = steps_to_cover(diagnosis, steps)
    candidates = []
    for f in diagnosis.findings:
        if f.serious:
            candidates += [r.id for r in f.remedies if r.id in INJECTABLE][:3]
    candidates = list(dict.fromkeys(candidates))
    if not candidates:
        console.print("no remedy of these findings can be injected into a script; nothing to try")
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"trying {len(candidates)} remedies, {steps} steps each", total=len(candidates) + 1)
        arms = trial_script(script, args, candidates, steps, run_dir / "trials",
                            progress=lambda: progress.advance(task),
                            more=lambda n: progress.update(task, total=progress.tasks[0].total + n,
                                                           description=f"trying {n} combination(s) of the best"))
    rank_into(diagnosis, arms, steps)
    table = Table(title=f"remedies tried on the script ({steps} steps each)")
    for col in ("remedy", "loss at the end", "verdict", "still found", "seconds"):
        table.add_column(col)
    for a in arms:
        table.add_row(a.remedy, f"{a.loss:.4g}", a.verdict if not a.error else f"failed: {a.error}",
                      ", ".join(a.kinds) or "-", f"{a.seconds:.1f}")
    console.print(table)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "allow_interspersed_args": False})
def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="the training script, run unchanged"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default gradwatch-runs/<script>-<time>)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="write the diagnosis as JSON here"),
    guard: bool = typer.Option(False, "--guard", help="skip exploding/non-finite steps, roll back on repeated failure"),
    every: int = typer.Option(10, "--every", help="steps between the slow statistics (δ, activations, updates) "
                              "for the first ten of them"),
    stats_budget: float = typer.Option(0.005, "--stats-budget", help="then space them so they add at most this "
                                       "fraction of the training time; 0 = every --every steps throughout"),
    remedy: Optional[str] = typer.Option(None, "--remedy", help="apply a remedy to the running script (e.g. use_he_init, reduce_lr, add_warmup:25 = "
                                   "a 25-step warmup, clip_grad_norm:0.5)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="stop the script after this many optimizer steps"),
    trial: bool = typer.Option(False, "--trial", help="re-run the script with each top remedy injected and rank them"),
    trial_steps: int = typer.Option(200, "--trial-steps", help="optimizer steps per trial run"),
    resume: bool = typer.Option(False, "--resume", help="continue the run recorded in --out (the script restarted "
                                "from its checkpoint): step numbers carry on, steps it trains again are kept "
                                "as superseded"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run recorded in --out"),
    start_step: Optional[int] = typer.Option(None, "--start-step", help="with --resume: the checkpoint's step "
                                             "(default: the optimizer state's step, else the last recorded + 1)"),
) -> None:
    """Run SCRIPT [ARGS...] with every optimizer and module watched, then diagnose it."""
    from .runscript import ScriptNotFound, run_script

    if every < 1:
        _fail(f"--every must be at least 1, got {every}")
    if not 0 <= stats_budget <= 1:
        _fail(f"--stats-budget must be a fraction between 0 and 1 (e.g. 0.01 for 1 %), got {stats_budget}")
    if steps is not None and steps < 1:
        _fail(f"--steps must be at least 1, got {steps}")
    if resume and overwrite:
        _fail("--resume and --overwrite exclude each other: continue the recorded run or replace it")
    if start_step is not None and start_step < 0:
        _fail(f"--start-step must be a step number ≥ 0, got {start_step}")
    if resume and out is None:
        _fail("--resume needs --out: the directory of the run to continue")
    if out is None:
        from .watcher import fresh_dir

        out = fresh_dir(Path("gradwatch-runs") / f"{script.stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    from .store import StoreError, check_out

    try:
        check_out(out, resume=resume, overwrite=overwrite)  # before the script runs, not at its first step
    except StoreError as e:
        _fail(str(e))
    kwargs = {"every": every, "stats_budget": stats_budget or None, "remedy": remedy, "max_steps": steps}
    if guard:
        kwargs["guard"] = True
    if resume:
        kwargs["resume"] = True
    if overwrite:
        kwargs["overwrite"] = True
    if start_step is not None:
        kwargs["start_step"] = start_step
    try:
        status, watcher = run_script(script, list(ctx.args), out, **kwargs)
    except ScriptNotFound as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - e.g. an unwritable --out: one line, no trace
        _fail(str(e))
    if watcher is None:
        _stderr_console().print(
            "gradwatch: no training step was watched: no nn.Module with trainable parameters ran with gradients "
            "enabled, and no optimizer stepped one (tensors trained outside any nn.Module are not seen: keep "
            "them in a module, e.g. nn.ParameterList); nothing to diagnose", highlight=False)
        raise typer.Exit(status)
    if watcher.step == 0:
        _stderr_console().print(
            f"gradwatch: {type(watcher.model).__name__} was watched but no training step completed "
            f"(no backward pass through it{', no optimizer step' if watcher.optimizers else ''}); "
            "nothing to diagnose", highlight=False)
        raise typer.Exit(status)
    try:
        _finish(out, json_path, trial=(script, list(ctx.args), min(trial_steps, watcher.step)) if trial else None)
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
