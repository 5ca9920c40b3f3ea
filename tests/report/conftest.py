"""Fixtures: fake runs written through the store, and their rendered report (made once)."""

from __future__ import annotations

import pytest

from gradwatch.findings import Diagnosis
from gradwatch.record import load

from .fakes import sick_diagnosis, write_bare_run, write_fake_run


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fake")
    write_fake_run(d, meta={"metrics": {"accuracy": 0.1, "test loss": 2.3}})
    return load(d)


@pytest.fixture(scope="session")
def fixed_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixed")
    write_fake_run(d, meta={"metrics": {"accuracy": 0.93, "test loss": 0.2}}, scale=100.0)
    return load(d)


@pytest.fixture(scope="session")
def bare_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bare")
    write_bare_run(d)
    return load(d)


@pytest.fixture(scope="session")
def sick():
    return sick_diagnosis()


@pytest.fixture(scope="session")
def report_html(tmp_path_factory, fake_run, fixed_run, sick):
    """The fake run's report with a before/after section, written to disk once."""
    from gradwatch.report import write_report

    path = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    write_report(fake_run, sick, path, compare=(fixed_run, Diagnosis(steps=30), "after: ReLU + He"))
    return path
