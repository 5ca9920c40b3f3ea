"""The HTML report's lead: the root cause, its first fix and what follows from it, escaped."""

from gradwatch.findings import Diagnosis, Finding, Remedy
from gradwatch.report.html_sections import consequence_note, root_cause_section

from .fakes import SCRIPT


def test_the_section_names_the_root_its_first_fix_and_its_code():
    root = Finding("exploding_gradients", "critical", 0, [SCRIPT], f"δ grows 1e6× towards {SCRIPT}",
                   remedies=[Remedy("use_he_init", "Re-initialise with He init", "gw.init.apply(model, 'auto')"),
                             Remedy("clip_grad_norm", "Clip", "clip()")])
    nan = Finding("nonfinite", "critical", 1, [], "NaN at step 1", consequence_of="exploding_gradients")
    html = root_cause_section(Diagnosis(steps=4, findings=[nan, root]))
    assert "<dt>root cause</dt>" in html and "exploding_gradients from step 0" in html
    assert "use_he_init — Re-initialise with He init" in html and "clip_grad_norm" not in html
    assert "gw.init.apply(model, &#x27;auto&#x27;)" in html
    assert "nonfinite (step 1)" in html
    assert SCRIPT not in html  # names from the run are escaped


def test_healthy_runs_and_roots_carry_no_lead_or_note():
    assert root_cause_section(Diagnosis(steps=4)) == ""
    note = Finding("learning_rate_too_low", "info", 0, [], "small steps")
    assert root_cause_section(Diagnosis(steps=4, findings=[note])) == ""
    assert consequence_note(note) == ""
    follows = Finding("dead_units", "warning", 5, [], "dead", consequence_of="learning_rate_too_high")
    assert "learning_rate_too_high" in consequence_note(follows)
