"""Records written by earlier gradwatch versions stay readable; a newer one's is refused clearly.

``tests/fixtures/records/schema-N/`` holds small runs written by the gradwatch of store schema N
(``tests/fixtures/make_records.py``) with what that version diagnosed (``expected.json``). They
are opened from copies: SQLite would put its WAL files next to the originals."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.store import SCHEMA_VERSION, StoreError, schema_of

ROOT = Path(__file__).parent / "fixtures" / "records"
GENERATIONS = sorted(ROOT.glob("schema-*"))
CASES = [(g, name) for g in GENERATIONS for name in json.loads((g / "expected.json").read_text())]


def _copy(generation: Path, name: str, tmp_path: Path) -> Path:
    dst = tmp_path / generation.name / name
    shutil.copytree(generation / name, dst)
    return dst


def test_there_are_old_records_to_read():
    assert GENERATIONS and any(g.name == "schema-1" for g in GENERATIONS)
    assert len(CASES) >= 3


@pytest.mark.parametrize("generation,name", CASES, ids=[f"{g.name}-{n}" for g, n in CASES])
def test_an_old_record_opens_and_diagnoses_as_it_did(generation, name, tmp_path):
    want = json.loads((generation / "expected.json").read_text())[name]
    out = _copy(generation, name, tmp_path)
    run = gw.load(out)
    assert run.n_steps == want["n_steps"]
    assert run.steps.loss.iloc[-1] == pytest.approx(want["loss_last"], rel=1e-6)
    assert len(run.series("grad_norm")) == run.n_steps
    d = gw.diagnose(run)
    assert d.steps == want["steps"] and d.verdict == want["verdict"]
    assert [f.kind for f in d.findings] == want["kinds"]
    assert run.superseded.empty and run.restarts.empty  # tables and events of later schemas: absent, not errors


def test_resuming_a_schema_1_record_brings_it_to_the_current_schema(tmp_path):
    out = _copy(ROOT / "schema-1", "healthy", tmp_path)
    with sqlite3.connect(out / "run.db") as con:
        assert schema_of(con)[0] == 1 and con.execute("PRAGMA user_version").fetchone()[0] == 0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=out, resume=True):
        for _ in range(3):
            x = torch.randn(32, 16)
            loss = nn.functional.cross_entropy(model(x), x[:, :4].argmax(1))
            opt.zero_grad(); loss.backward(); opt.step()
    run = gw.load(out)
    assert list(run.steps.index) == list(range(43))  # the 40 old steps, then 3 more
    assert run.meta["schema"] == SCHEMA_VERSION
    with sqlite3.connect(out / "run.db") as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _from_the_future(tmp_path) -> Path:
    out = _copy(ROOT / "schema-1", "healthy", tmp_path)
    with sqlite3.connect(out / "run.db") as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        con.execute("INSERT OR REPLACE INTO meta VALUES('gradwatch', '\"9.0.0\"')")
    return out


def test_a_newer_gradwatchs_record_is_refused_with_one_line(tmp_path):
    out = _from_the_future(tmp_path)
    for read in (lambda: gw.load(out).steps, lambda: gw.diagnose(out)):
        with pytest.raises(StoreError) as e:
            read()
        msg = str(e.value)
        assert "\n" not in msg and "newer gradwatch (9.0.0" in msg and "upgrade" in msg
    model = nn.Linear(16, 4)
    with pytest.raises(StoreError, match="newer gradwatch"):
        gw.watch(model, out=out, resume=True)
    with sqlite3.connect(out / "run.db") as con:  # untouched
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_cli_diagnose_of_a_newer_record_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    out = _from_the_future(tmp_path)
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "diagnose", str(out)], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, COLUMNS="300"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1 and "upgrade" in r.stderr
