"""`gradwatch lab` commands and the gallery page."""

import base64
import json

import typer
from typer.testing import CliRunner

from gradwatch.lab import cli as lab_cli
from gradwatch.lab.core import Result, check
from gradwatch.lab.gallery import render, write_gallery

runner = CliRunner()
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_list_shows_every_experiment():
    result = runner.invoke(lab_cli.app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("deep-linear", "loss-choice", "clipping", "optimisers"):
        assert name in result.output


def test_mounted_under_a_parent_app():
    parent = typer.Typer()
    parent.add_typer(lab_cli.app, name="lab")

    @parent.command()
    def other() -> None:  # a second command so that "lab" is a sub-command
        pass

    result = runner.invoke(parent, ["lab", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "deep-linear" in result.output


def test_unknown_experiment_and_unknown_key_are_one_line_errors(tmp_path):
    result = runner.invoke(lab_cli.app, ["no-such-thing"])
    assert result.exit_code == 2 and "no experiment 'no-such-thing'" in result.output
    result = runner.invoke(lab_cli.app, ["e07", "--set", "nope=1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown config key 'nope'" in result.output and "lr_grid" in result.output


def test_run_one_by_number_with_sets(tmp_path):
    args = ["7", "--out", str(tmp_path), "--set", "lr_grid=0.5", "--set", "max_steps=20", "--set", "eval_every=10",
            "--set", "hidden=8"]
    result = runner.invoke(lab_cli.app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "loss-choice" / "result.json").read_text())
    assert stored["config"]["max_steps"] == 20 and stored["verdict"] in result.output
    assert len(stored["checks"]) == 4


def test_seed_option_same_seed_same_numbers(tmp_path):
    # a real experiment, shrunk with --set: `gradwatch lab sigmoid-attenuation --seed 3` twice
    shrink = ["--set", "hidden_layers=1,4", "--set", "width=8", "--set", "steps=6", "--set", "every=3"]
    stored = []
    for d in ("a", "b", "c"):
        seed = "5" if d == "c" else "3"
        args = ["sigmoid-attenuation", "--seed", seed, "--out", str(tmp_path / d), *shrink]
        result = runner.invoke(lab_cli.app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        stored.append(json.loads((tmp_path / d / "sigmoid-attenuation" / "result.json").read_text()))
    a, b, c = stored
    assert a["seeds"] == [3] and c["seeds"] == [5]
    assert a["measurements"] == b["measurements"] and a["checks"] == b["checks"]
    assert a["measurements"] != c["measurements"]
    result = runner.invoke(lab_cli.app, ["e01", "--seed", "-2", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--seed must be >= 0" in result.output


def test_gallery_inlines_figures_and_escapes_text(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f.png").write_bytes(PNG)
    r = Result(checks=[check("a < <b>", False, a="<script>")], figures=["f.png"], name="x",
               claim="<img src=x onerror=alert(1)>", source="S & T", tables={"t": {"confusion_matrix": [[1, 0], [0, 1]]}})
    page = render([r], tmp_path)
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in page
    assert "<script>" not in page and "&lt;script&gt;" in page and "<img src=x" not in page
    assert "S &amp; T" in page and "not reproduced" in page and "FAILED" in page
    assert "true \\ predicted" in page and '<a href="#x">x</a>' in page and "<th colspan='4'>total</th>" in page
    assert "<td class='failed'>✗ a &lt; &lt;b&gt;</td>" in page  # a failed check is shown failed, escaped
    path = write_gallery([r], tmp_path)
    assert path == tmp_path / "gallery.html" and "src=\"f.png\"" not in path.read_text()


def test_all_reports_a_crash_as_a_failure(tmp_path, monkeypatch):
    import types
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Config:
        n: int = 1  # nothing

    def boom(config, ctx):
        raise RuntimeError("kaboom")

    mod = types.ModuleType("gradwatch.lab.e98_boom")
    mod.NAME, mod.CLAIM, mod.SOURCE, mod.Config, mod.FULL, mod.run = "boom", "c", "s", Config, {}, boom
    monkeypatch.setattr("gradwatch.lab.registry.experiments", lambda include_broken=False: {"boom": mod})
    result = runner.invoke(lab_cli.app, ["all", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    page = (tmp_path / "gallery.html").read_text()
    assert "kaboom" in page and "not reproduced" in page and "0 of 1 claims reproduced" in page
