"""``gradwatch lab``: list, run one experiment, or run them all into a gallery.

Every experiment is a sub-command named by its ``NAME`` (resolved lazily, so ``lab e04`` and
``lab 4`` work too). Mounted by the top-level CLI with ``app.add_typer(lab_app, name="lab")``.

Example:
    $ gradwatch lab list
    $ gradwatch lab deep-linear --seeds 3 --set steps=500
    $ gradwatch lab sigmoid-attenuation --seed 3      # one chosen seed
    $ gradwatch lab all --out lab-out        # writes lab-out/gallery.html
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any, List, Optional

import typer
import typer.main
from typer.core import TyperGroup


def _console():
    from rich.console import Console

    return Console()


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]gradwatch lab:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _run_one(mod: Any, seeds: int, full: bool, sets: list[str], out: Path, quiet: bool = False, seed: int = 0):
    from .config import ConfigError
    from .runner import run_experiment

    try:
        return run_experiment(mod, seeds=seeds, full=full, sets=sets, out=out, quiet=quiet, seed=seed)
    except (ConfigError, ValueError) as e:
        if isinstance(e, ConfigError) or str(e).startswith(("--seeds", "--seed ")):
            _fail(str(e))
        raise


def print_result(result: Any, out: Path) -> None:
    """The verdict, each check (✓/✗, criterion, numbers), figures and the result path."""
    con = _console()
    colour = "green" if result.verdict == "reproduced" else "red"
    con.print(f"[bold]{result.name}[/] — [bold {colour}]{result.verdict}[/] ({result.seconds:.1f} s)", highlight=False)
    con.print(f"  {result.claim}  [dim]({result.source})[/]", highlight=False)
    for c in result.checks:
        mark = "[green]✓[/]" if c.passed else "[red]✗ FAILED[/]"
        con.print(f"  {mark} {c.criterion}: {c.describe()}", highlight=False, markup=True)
    if result.notes:
        con.print(f"  [dim]notes: {result.notes}[/]", highlight=False)
    root = out / result.name
    for f in result.figures:
        con.print(f"  figure: {root / f}", highlight=False)
    con.print(f"  result: {root / 'result.json'}", highlight=False)


def print_summary(results: list[Any]) -> None:
    """The summary table: experiment, verdict, criterion, measured, seconds."""
    from rich.table import Table

    from .gallery import summary_rows

    ok = sum(r.verdict == "reproduced" for r in results)
    table = Table(title="gradwatch lab", show_lines=True,
                  caption=f"{ok} of {len(results)} reproduced · total {sum(r.seconds for r in results):.1f} s")
    for col in ("experiment", "verdict", "criterion", "measured", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left", overflow="fold")
    for row in summary_rows(results):
        colour = "green" if row["verdict"] == "reproduced" else "red"
        row["verdict"] = f"[{colour}]{row['verdict']}[/]"
        table.add_row(*row.values())
    _console().print(table)


def _experiment_command(mod: Any):
    """A typer command named ``mod.NAME`` that runs ``mod`` and prints its result."""
    single = typer.Typer(add_completion=False)

    @single.command(name=mod.NAME, help=f"{mod.CLAIM} [{mod.SOURCE}]")
    def command(
        seeds: int = typer.Option(1, "--seeds", help="run N seeds (S..S+N-1); N > 1 reports mean ± std"),
        seed: int = typer.Option(0, "--seed", help="the seed to run (with --seeds N: the first of N)"),
        full: bool = typer.Option(False, "--full", help="paper-scale config (the experiment's FULL overrides)"),
        sets: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                                 help="override a config field (repeatable)"),
        out: Path = typer.Option(Path("lab-out"), "--out", help="output folder; writes OUT/NAME/result.json"),
    ) -> None:
        print_result(_run_one(mod, seeds, full, list(sets or []), out, seed=seed), out)

    cmd = typer.main.get_command(single)
    cmd.name = mod.NAME
    return cmd


class LabGroup(TyperGroup):
    """A typer group whose unknown sub-commands are looked up as experiments."""

    def list_commands(self, ctx: Any) -> list[str]:
        from .registry import experiments

        return list(super().list_commands(ctx)) + list(experiments())

    def get_command(self, ctx: Any, name: str) -> Any:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        from .registry import UnknownExperiment, find

        try:
            return _experiment_command(find(name))
        except UnknownExperiment as e:
            _fail(str(e))


app = typer.Typer(cls=LabGroup, no_args_is_help=True, add_completion=False,
                  help="Reproduce classic results on unstable gradients: list | NAME | all.")


@app.command("list")
def list_() -> None:
    """List the experiments: number, name, claim, source.

    On a terminal, a table; piped into another program, one experiment per line, its fields
    separated by tabs. Example: gradwatch lab list | cut -f2   (the names)
    """
    from .registry import Broken, experiments

    rows = []
    for name, mod in experiments(include_broken=True).items():
        if isinstance(mod, Broken):
            rows.append((mod.module.rsplit(".", 1)[-1][1:3], name, f"cannot load: {mod.error}", "", True))
        else:
            rows.append((mod.__name__.rsplit(".", 1)[-1][1:3], name, mod.CLAIM, mod.SOURCE, False))
    if not sys.stdout.isatty():  # one write: a reader that stops early (head -1) gets it whole
        typer.echo("\n".join("\t".join(" ".join(str(f).split()) for f in row[:4]) for row in rows))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("#", "name", "claim", "source"):
        table.add_column(col, overflow="fold")
    for number, name, claim, source, broken in rows:
        table.add_row(number, name, f"[red]{escape(claim)}[/]" if broken else escape(claim), escape(source))
    _console().print(table)


@app.command("all")
def all_(
    out: Path = typer.Option(Path("lab-out"), "--out", help="output folder; the gallery is OUT/gallery.html"),
    seeds: int = typer.Option(1, "--seeds", help="seeds per experiment"),
    seed: int = typer.Option(0, "--seed", help="the (first) seed of every experiment"),
    full: bool = typer.Option(False, "--full", help="paper-scale configs"),
    only: Optional[List[str]] = typer.Option(None, "--only", help="run just these experiments (repeatable)"),
) -> None:
    """Run every experiment, write OUT/gallery.html, print the summary table."""
    from .core import Check, Result
    from .gallery import write_gallery
    from .registry import Broken, experiments, find

    mods = experiments(include_broken=True)
    if only:
        mods = {find(n).NAME: find(n) for n in only}
    results = []
    for name, mod in mods.items():
        t0 = time.perf_counter()
        try:
            if isinstance(mod, Broken):
                raise RuntimeError(mod.error)
            result = _run_one(mod, seeds, full, [], out, seed=seed)
        except Exception as e:  # noqa: BLE001 - one crash is reported as a failure, the rest still run
            detail = traceback.format_exc(limit=3)
            result = Result(checks=[Check("the experiment runs to completion", False,
                                          {"error": f"{type(e).__name__}: {e}"})],
                            name=name, claim=getattr(mod, "CLAIM", ""), source=getattr(mod, "SOURCE", ""),
                            notes=detail, seconds=time.perf_counter() - t0)
        print_result(result, out)
        results.append(result)
    path = write_gallery(results, out)
    print_summary(results)
    _console().print(f"gallery: {path}", highlight=False)


if __name__ == "__main__":
    app()
