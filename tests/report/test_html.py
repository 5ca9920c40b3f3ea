"""The HTML report: order, escaping, self-containment, the before/after section."""

from __future__ import annotations

import html
import re

from gradwatch.findings import Diagnosis
from gradwatch.report import render_html, write_report

from .fakes import DOLLAR, DROP, RICH, SCRIPT

_ATTR_URL = re.compile(r"""\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?([^"'\s>]*)""", re.I)


def test_written_where_asked_and_parent_made(report_html):
    assert report_html.is_file() and report_html.parent.name == "sub"
    text = report_html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")


def test_sections_in_order(report_html):
    text = report_html.read_text(encoding="utf-8")
    marks = ['class="verdict unhealthy"', 'id="findings"', 'id="compare"', 'id="figures"', 'id="run"']
    pos = [text.index(m) for m in marks]
    assert pos == sorted(pos)
    # findings most severe first, each with its parts
    assert text.index("finding-1") < text.index("Nonfinite") < text.index("Vanishing gradients")
    for part in ("Evidence", "Likely causes", "Remedies, in order", "1.3e-12", "from step 27",
                 "loss after 50 steps: 2.3 → 0.41 ✓", "accuracy: 0.1 → 0.05 ✗"):
        assert part in text


def test_every_name_from_the_model_is_escaped(report_html):
    text = report_html.read_text(encoding="utf-8")
    for raw in (SCRIPT, DROP, f"Net{SCRIPT}"):
        assert raw not in text
    assert html.escape(SCRIPT) in text and html.escape(DROP) in text
    assert html.escape(RICH) in text and html.escape(DOLLAR) in text
    # argv and code snippets too; and the document has no script element at all
    assert "&#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;" in text  # shlex-quoted argv
    assert "<script" not in text.lower()


def test_nothing_is_fetched(report_html):
    text = report_html.read_text(encoding="utf-8")
    urls = _ATTR_URL.findall(text)
    assert urls, "expected images and anchors"
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in urls), [u[:40] for u in urls]
    assert "http://" not in text and "https://" not in text
    assert "url(" not in text and "@import" not in text
    assert "default-src 'none'" in text  # the CSP forbids any fetch the markup might hide


def test_figures_embedded_and_skips_noted(report_html):
    text = report_html.read_text(encoding="utf-8")
    for name in ("gradient_flow", "grad_heatmap", "update_ratio", "activations", "loss", "through_time"):
        assert f'id="fig-{name}"' in text
    assert text.count("data:image/png;base64,") == 6 + 4  # + gradient flow before/after, two rows


def test_bare_run_notes_the_missing_figures(bare_run):
    text = render_html(bare_run, Diagnosis(steps=5))
    assert 'class="verdict healthy"' in text and "no problems in 5 steps" in text
    assert text.count("data:image/png;base64,") == 1  # the loss only
    assert text.count("skipped: this run did not record") == 5
    assert 'id="findings"' not in text


def test_compare_section(report_html):
    text = report_html.read_text(encoding="utf-8")
    section = text[text.index('id="compare"'):text.index('id="figures"')]
    assert '<p class="sub">after: ReLU + He</p>' in section
    row = section[section.index("<th>accuracy</th>"):].split("</tr>")[0]
    assert "0.1" in row and 'class="num better">0.93' in row
    row = section[section.index("<th>test loss</th>"):].split("</tr>")[0]
    assert 'class="num better">0.2' in row  # lower is better for a loss
    assert "nonfinite, vanishing_gradients" in section and ">none<" in section
    assert section.count('<div class="pair">') == 2


def test_run_info(report_html):
    text = report_html.read_text(encoding="utf-8")
    run = text[text.index('id="run"'):]
    for part in ("gradwatch 0.1.0, torch 2.13.0", "376 parameters", "SGD (lr=0.1)", "Events: 3",
                 "guard_skip", "Per-layer gradients at step 20", "All metadata"):
        assert part in run


def test_default_title_and_custom_title(bare_run, sick):
    assert f"<title>gradwatch report — {bare_run.dir.name}</title>" in render_html(bare_run, sick)
    assert "<title>a &lt;b&gt;</title>" in render_html(bare_run, sick, title="a <b>")


def test_write_report_returns_the_path(tmp_path, bare_run):
    p = write_report(bare_run, Diagnosis(steps=5), tmp_path / "a" / "r.html")
    assert p == tmp_path / "a" / "r.html" and p.stat().st_size > 1000


def test_compare_verdict_and_a_recorded_final_loss(tmp_path, sick):
    from gradwatch.record import load
    from gradwatch.report.html_sections import compare_section

    from .fakes import write_fake_run

    write_fake_run(tmp_path / "a", meta={"metrics": {"final_loss": 2.0}})
    write_fake_run(tmp_path / "b", meta={"metrics": {"final_loss": 3.0}})
    out = compare_section(load(tmp_path / "a"), sick, (load(tmp_path / "b"), Diagnosis(steps=30), "x"))
    assert 'class="num better">healthy' in out
    assert 'class="num worse">3' in out  # a higher loss is worse
    assert "final loss</th>" not in out  # the run's own final_loss is not repeated


def test_a_run_that_died_before_its_first_step(tmp_path):
    from rich.console import Console

    from gradwatch.record import load
    from gradwatch.report import print_diagnosis, print_layer_table
    from gradwatch.store import RunStore

    s = RunStore(tmp_path)
    s.write_layout([("w", "", (2, 2), 4, "float32")], [("", "Linear", "", "param")])
    s.event(None, "crash", {"error": "RuntimeError('<boom>')"})
    s.close()
    run = load(tmp_path)
    text = render_html(run, Diagnosis(steps=0))
    assert "no problems in 0 steps" in text and "This run recorded nothing to draw." in text
    assert "RuntimeError(&#x27;&lt;boom&gt;&#x27;)" in text  # the event, escaped
    c = Console(record=True, width=100)
    print_diagnosis(Diagnosis(steps=0), console=c, run=run)
    print_layer_table(run, console=c)
    assert "no per-layer data recorded" in c.export_text()


def test_a_remedy_measured_in_a_combination_says_how_to_apply_all_of_it(bare_run):
    from gradwatch.findings import Finding, Remedy, Trial

    d = Diagnosis(steps=5, findings=[Finding("exploding_gradients", "warning", 0, ["0"], "grows", remedies=[
        Remedy("use_he_init", "Re-initialise", "gw.init.apply(model, 'auto')",
               Trial("loss after 80 steps", 3.3e4, 0.74, applied="use_he_init+increase_lr")),
        Remedy("clip_grad_norm", "Clip", "gw.clip.attach(opt, ...)", Trial("loss after 80 steps", 3.3e4, 3.1e4))])])
    page = html.unescape(render_html(bare_run, d))
    assert "(as use_he_init+increase_lr)" in page
    assert "gradwatch run --remedy use_he_init+increase_lr train.py" in page
    # only where a combination was measured (the lead section repeats the root's first fix)
    assert page.count("gradwatch run --remedy") == page.count("gradwatch run --remedy use_he_init+increase_lr")
    assert page.index('id="root-cause"') < page.index("(as use_he_init+increase_lr)")  # the lead comes first
