"""The report in a real browser: headless Chromium renders it without console errors, and the
screenshot is not blank. Skipped when Chromium is not installed (``make browser``).

Set ``GRADWATCH_SCREENSHOT=/path/shot.png`` to keep the screenshot for a look.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser)")]


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=90)


def _console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs for the page: console output, uncaught errors, blocked loads."""
    keys = (":CONSOLE", "Uncaught", "Refused to", "Failed to load resource", "net::ERR_")
    return [line for line in stderr.splitlines() if any(k in line for k in keys)]


def test_console_capture_sees_errors(tmp_path):
    # the check below is only worth something if a console error would show up here
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('probe'); nope();</script></body></html>")
    res = _chromium(tmp_path, "--dump-dom", page.as_uri())
    messages = _console_messages(res.stderr)
    assert any("probe" in m for m in messages) and any("Uncaught" in m for m in messages)


def test_report_renders_without_errors_and_is_not_blank(tmp_path, report_html):
    shot = tmp_path / "report.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report_html.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    assert _console_messages(res.stderr) == []
    if os.environ.get("GRADWATCH_SCREENSHOT"):
        shutil.copy(shot, os.environ["GRADWATCH_SCREENSHOT"])

    import matplotlib.image as mpimg

    px = mpimg.imread(shot)[..., :3]  # floats in [0, 1]
    assert px.shape[:2] == (2000, 1280)
    assert px.std() > 0.05
    background = np.median(px.reshape(-1, 3), axis=0)
    ink = np.abs(px - background).sum(axis=-1) > 0.3
    assert ink.mean() > 0.03  # text, cards and figures, not an empty page
    # the unhealthy verdict and critical badge are drawn in red
    red = (px[..., 0] > 0.6) & (px[..., 1] < 0.35) & (px[..., 2] < 0.35)
    assert red.sum() > 200


def test_report_dom_parses_and_keeps_names_as_text(tmp_path, report_html):
    res = _chromium(tmp_path, "--dump-dom", report_html.as_uri())
    dom = res.stdout
    assert _console_messages(res.stderr) == []
    assert dom.rstrip().endswith("</html>")
    assert 'id="findings"' in dom and 'id="figures"' in dom and 'id="run"' in dom
    assert "<script" not in dom.lower()  # the module named <script>… stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert dom.count("<img") == 10


def test_lab_gallery_renders_without_errors_with_its_figures(tmp_path):
    # two real quick experiments (seconds each), one forced to fail a check, through the gallery writer
    import dataclasses

    from gradwatch.lab import e07_loss_choice as e07
    from gradwatch.lab import e15_greedy_pretraining as e15
    from gradwatch.lab.gallery import write_gallery
    from gradwatch.lab.runner import run_experiment

    results = [run_experiment(e15, out=tmp_path, quiet=True), run_experiment(e07, out=tmp_path, quiet=True)]
    failed = results[1].checks[0]
    results[1].checks[0] = dataclasses.replace(failed, passed=False)
    page = write_gallery(results, tmp_path)
    shot = tmp_path / "gallery.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    assert _console_messages(res.stderr) == []
    if os.environ.get("GRADWATCH_SCREENSHOT"):
        shutil.copy(shot, os.environ["GRADWATCH_SCREENSHOT"].replace(".png", "-gallery.png"))
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.count('src="data:image/png;base64,') == sum(len(r.figures) for r in results) > 0

    import matplotlib.image as mpimg

    px = mpimg.imread(shot)[..., :3]
    assert px.std() > 0.05
    colour = px.max(axis=-1) - px.min(axis=-1) > 0.35  # plot lines and verdicts, not grey text
    assert colour.mean() > 0.002
    green = (px[..., 1] > px[..., 0] + 0.15) & (px[..., 1] > px[..., 2] + 0.1)  # "reproduced"
    red = (px[..., 0] > 0.55) & (px[..., 1] < 0.35) & (px[..., 2] < 0.35)     # "not reproduced", ✗
    assert green.sum() > 50 and red.sum() > 50
