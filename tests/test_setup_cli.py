"""The command line as a user meets it: --version, --help at 100 columns, `lab list` in a pipe,
shell completion."""

import os
import pty
import re
import subprocess
import sys

import pytest
import typer.main
from rich.cells import cell_len
from typer.testing import CliRunner

import gradwatch
from gradwatch.cli import app
from gradwatch.lab.registry import Broken, experiments

runner = CliRunner()
# run as the installed `gradwatch` script would be, under that name (completion keys on it)
GRADWATCH = [sys.executable, "-c", "from gradwatch.cli import app; app(prog_name='gradwatch')"]
BOX = re.compile(r"[│╭╮╰╯─┃━]")


def commands(cmd=None, path=(), parent=None):
    """(path, command) for the app and every command and sub-command below it, lab's
    experiments included."""
    cmd = cmd or typer.main.get_command(app)
    yield list(path), cmd
    if hasattr(cmd, "list_commands"):
        ctx = cmd.context_class(cmd, info_name=path[-1] if path else "gradwatch", parent=parent)
        for name in cmd.list_commands(ctx):
            yield from commands(cmd.get_command(ctx, name), (*path, name), ctx)


def flat(text: str) -> str:
    return " ".join(BOX.sub(" ", text).split())


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"gradwatch {gradwatch.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", gradwatch.__version__)


def test_the_walk_reaches_every_command():
    names = {" ".join(p) for p, _ in commands()}
    assert {"", "run", "diagnose", "report", "demo", "lab", "lab list", "lab all"} <= names
    assert {f"lab {n}" for n in experiments()} <= names


@pytest.mark.parametrize("path", [p for p, _ in commands()], ids=lambda p: " ".join(p) or "gradwatch")
def test_help_fits_100_columns_and_cuts_no_text(path):
    cmd = dict((" ".join(p), c) for p, c in commands())[" ".join(path)]
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    wide = [line for line in lines if cell_len(line) > 100]
    assert not wide, f"{len(wide)} line(s) wider than 100 columns:\n" + "\n".join(wide)
    assert "…" not in result.output, result.output  # rich's mark for a cut cell
    shown = flat(result.output)
    texts = [cmd.help or ""] + [p.help for p in cmd.params if getattr(p, "help", None)]
    for text in texts:
        assert flat(text) in shown, f"help text cut or re-flowed mid-word: {text!r}\n{result.output}"
    for p in cmd.params:
        for opt in getattr(p, "opts", []):
            if opt.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", shown), (opt, result.output)


def test_lab_list_into_a_pipe_prints_one_experiment_per_line():
    r = subprocess.run([*GRADWATCH, "lab", "list"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    found = experiments(include_broken=True)
    assert len(lines) == len(found), r.stdout
    for line, (name, mod) in zip(lines, found.items()):
        number, name_, claim, source = line.split("\t")
        assert not isinstance(mod, Broken), line
        assert name_ == name and number == mod.__name__.rsplit(".", 1)[-1][1:3]
        assert claim == " ".join(mod.CLAIM.split()) and source == " ".join(mod.SOURCE.split())
    assert not BOX.search(r.stdout)
    names = subprocess.run(["cut", "-f2"], input=r.stdout, capture_output=True, text=True).stdout
    assert names.split() == list(found)
    # a reader that stops after one line is no error (the list is written at once)
    head = subprocess.run(["bash", "-c", 'set -o pipefail; "$@" | head -1', "bash", *GRADWATCH, "lab", "list"],
                          capture_output=True, text=True, timeout=120)
    assert head.returncode == 0 and head.stdout == lines[0] + "\n", (head.returncode, head.stderr)


def test_lab_list_on_a_terminal_is_a_table():
    main, child = pty.openpty()
    proc = subprocess.Popen([*GRADWATCH, "lab", "list"], stdout=child, stderr=child,
                            env={**os.environ, "COLUMNS": "120", "TERM": "dumb"})
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=120) == 0
    out = b"".join(chunks).decode()
    assert "┃" in out and "│" in out and "sigmoid-attenuation" in out
    assert "\t" not in out


def test_shell_completion_completes_commands_options_and_experiments():
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_GRADWATCH_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        r = subprocess.run(GRADWATCH, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert complete("gradwatch r") == ["run", "report"]
    assert sorted(complete("gradwatch run --st")) == ["--start-step", "--stats-budget", "--steps"]
    assert complete("gradwatch lab deep") == ["deep-linear"]
    assert set(complete("gradwatch lab ")) >= {"list", "all", *experiments()}
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    assert "--install-completion" in result.output and "--show-completion" in result.output
