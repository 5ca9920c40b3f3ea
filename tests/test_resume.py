"""Runs that outlive their process: a record is never replaced silently, and a run restarted
from a checkpoint continues its record."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.store import RunExists, RunStore, StoreError
from gradwatch.watcher import WatchError, fresh_dir

GRADWATCH = [sys.executable, "-m", "gradwatch.cli"]


def _train(model, opt, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=g)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _watched(out, steps, seed=0, **kw):
    model = _model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gw.watch(model, opt, out=out, every=2, **kw) as w:
        _train(model, opt, steps, seed)
    return w


# ---------------------------------------------------------------- never lose a record


def test_a_second_run_into_a_recorded_directory_is_refused_and_the_first_kept(tmp_path):
    _watched(tmp_path, 5)
    before = gw.load(tmp_path).steps.loss.to_numpy()
    with pytest.raises(RunExists) as e:
        _watched(tmp_path, 3, seed=1)
    msg = str(e.value)
    assert "\n" not in msg and "--resume" in msg and "--overwrite" in msg and "resume=True" in msg
    assert "5 steps" in msg
    np.testing.assert_array_equal(gw.load(tmp_path).steps.loss.to_numpy(), before)


def test_overwrite_replaces_the_record_without_a_trace_of_the_old_one(tmp_path):
    _watched(tmp_path, 6)
    _watched(tmp_path, 3, seed=1, overwrite=True)
    run = gw.load(tmp_path)
    assert list(run.steps.index) == [0, 1, 2]
    assert not list(tmp_path.glob("*.previous*"))


def test_a_record_without_steps_is_started_again(tmp_path):
    RunStore(tmp_path).close()  # a run that died before its first write
    _watched(tmp_path, 2)
    assert gw.load(tmp_path).n_steps == 2


def test_a_foreign_run_db_is_not_touched(tmp_path):
    (tmp_path / "run.db").write_text("my own notes")
    with pytest.raises(StoreError, match="not a gradwatch run"):
        _watched(tmp_path, 2)
    assert (tmp_path / "run.db").read_text() == "my own notes"


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(WatchError, match="exclude each other"):
        _watched(tmp_path, 1, resume=True, overwrite=True)


def test_a_watcher_refused_after_its_store_opened_leaves_the_directory_usable(tmp_path):
    a, b = _model(), _model()
    with pytest.raises(WatchError):
        gw.watch(a, torch.optim.SGD(b.parameters(), lr=0.1), out=tmp_path)
    _watched(tmp_path, 2)
    assert gw.load(tmp_path).n_steps == 2


def test_default_run_directories_never_collide(tmp_path):
    first = fresh_dir(tmp_path / "t")
    first.mkdir()
    assert fresh_dir(tmp_path / "t") == first  # a directory without a run is free
    RunStore(first).close()  # a run just started in the same second: taken
    assert fresh_dir(tmp_path / "t").name == "t-2"


TRAIN = """
    import sys, torch
    from torch import nn
    torch.manual_seed(0); torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    print("script started")
    for step in range(int(sys.argv[1])):
        x = torch.randn(32, 8)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
"""


def _cli(args, cwd):
    env = dict(os.environ, COLUMNS="300")  # rich wraps at the terminal's width
    return subprocess.run(GRADWATCH + args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_cli_run_into_a_recorded_directory_is_one_line_and_the_script_does_not_run(tmp_path):
    s = tmp_path / "train.py"
    s.write_text(textwrap.dedent(TRAIN))
    assert _cli(["run", "--out", "r", str(s), "12"], tmp_path).returncode == 0
    r = _cli(["run", "--out", "r", str(s), "5"], tmp_path)
    assert r.returncode == 2 and "script started" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--resume" in lines[0] and "--overwrite" in lines[0], r.stderr
    assert gw.load(tmp_path / "r").n_steps == 12
    r = _cli(["run", "--overwrite", "--out", "r", str(s), "5"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert gw.load(tmp_path / "r").n_steps == 5
