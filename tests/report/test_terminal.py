"""The terminal renderer: one line when healthy, a panel per finding, the layer table."""

from __future__ import annotations

from rich.console import Console

from gradwatch.findings import Diagnosis, Finding
from gradwatch.report import print_diagnosis, print_layer_table

from .fakes import DROP, RICH, SCRIPT


def _console() -> Console:
    return Console(record=True, width=110, force_terminal=False, color_system=None)


def _text(c: Console) -> str:
    return c.export_text(clear=False)


def test_healthy_run_is_one_line():
    c = _console()
    print_diagnosis(Diagnosis(steps=150), console=c)
    assert _text(c).strip().splitlines() == ["healthy: no problems in 150 steps"]


def test_healthy_run_with_notes_stays_one_line():
    c = _console()
    note = Finding("learning_rate_too_low", "info", 3, ["fc"], "updates are small")
    print_diagnosis(Diagnosis(steps=7, findings=[note, note]), console=c)
    lines = _text(c).strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("healthy: no problems in 7 steps") and "learning_rate_too_low" in lines[0]


def test_healthy_line_names_the_run(fake_run):
    c = _console()
    print_diagnosis(Diagnosis(steps=30), console=c, run=fake_run)
    assert len(_text(c).strip().splitlines()) == 1
    assert str(fake_run.dir) in _text(c)


def test_unhealthy_panels_carry_the_finding(sick):
    c = _console()
    print_diagnosis(sick, console=c)
    out = _text(c)
    assert out.splitlines()[0].startswith("unhealthy: 1 critical, 1 warning in 30 steps")
    # most severe first
    assert out.index("CRITICAL") < out.index("WARNING") < out.index("learning_rate_too_low")
    assert "from step 27" in out and "from step 0" in out
    # 19 layers: the first three named, the rest counted
    assert f"{SCRIPT}, {DROP}, layer0 … (16 more)" in out
    assert "layer16" not in out
    assert "1.3e-12" in out and "3.2e+04" in out  # evidence numbers
    assert "activation_sigmoid" in out
    assert out.index("1. use_relu_with_he_init") < out.index("2. add_batchnorm")
    assert "loss after 50 steps: 2.3 → 0.41 ✓" in out
    assert "accuracy: 0.1 → 0.05 ✗" in out  # a trial that did not help says so
    assert "model.apply(gw.init.he_)" in out  # the first remedy's code


def test_markup_in_names_is_printed_literally(fake_run):
    f = Finding("dead_units", "warning", 1, [RICH, "[/]"], f"{RICH} never fires [/bold]")
    c = _console()
    print_diagnosis(Diagnosis(steps=2, findings=[f]), console=c)  # must not raise on "[/]"
    out = _text(c)
    assert RICH in out and "[/bold]" in out


def test_layer_table_rows_and_values(fake_run):
    c = _console()
    print_layer_table(fake_run, console=c)
    out = _text(c)
    assert "Per-layer gradients at step 20" in out  # the last step with slow statistics
    for name in (RICH, DROP, "(model)", "head", "↳ weight_hh", "↳ weight_ih"):
        assert name in out.replace("\n", "")
    head = next(line for line in out.splitlines() if line.strip().startswith("head"))
    # head.weight's gradient ≈ 1 (1.0–1.1), δ = 1, update/weight = 1e-5
    assert "1e-05" in head and head.split()[2].startswith("1")


def test_layer_table_marks_nonfinite_gradients(fake_run):
    c = _console()
    print_layer_table(fake_run, console=c, step=28)
    out = _text(c)
    assert "NaN/inf" in out
    assert "from step 20" in out  # slow statistics come from the last measured step


def test_layer_table_without_layers(bare_run):
    c = _console()
    print_layer_table(bare_run, console=c)
    assert _text(c).strip() == "no per-layer data recorded"


def _rooted():
    from gradwatch.findings import Remedy

    root = Finding("learning_rate_too_high", "warning", 0, ["fc"], "each step rewrites 40% of the weights",
                   remedies=[Remedy("reduce_lr", "Lower the learning rate 10×", "lr *= 0.1")])
    nan = Finding("nonfinite", "critical", 7, ["fc.weight"], "NaN at step 7",
                  consequence_of="learning_rate_too_high")
    other = Finding("dead_units", "warning", 3, ["relu"], "40% of the units never fire")
    return Diagnosis(steps=9, findings=[root, nan, other])


def test_unhealthy_output_leads_with_the_root_cause_and_its_first_fix():
    c = _console()
    print_diagnosis(_rooted(), console=c)
    lines = [ln.strip() for ln in _text(c).splitlines() if ln.strip()]
    assert lines[0].startswith("unhealthy: 1 critical, 2 warnings in 9 steps")
    assert lines[1].startswith("root cause:") and "learning_rate_too_high from step 0" in lines[1]
    assert lines[2].startswith("first fix:") and "reduce_lr" in lines[2]
    assert lines[3].startswith("it leads to:") and "nonfinite (step 7)" in lines[3]
    assert lines[4].startswith("independent of it:") and "dead_units (step 3)" in lines[4]


def test_a_consequence_follows_its_root_whatever_its_severity():
    c = _console()
    print_diagnosis(_rooted(), console=c)
    out = _text(c)
    # the root's panel (a warning) before its critical consequence, then the independent problem
    assert out.index("WARNING learning_rate_too_high") < out.index("CRITICAL nonfinite") < out.index("WARNING dead_units")
    assert "nonfinite · follows from learning_rate_too_high" in out
    assert "dead_units · follows from" not in out
