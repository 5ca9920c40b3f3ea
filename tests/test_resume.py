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


# ---------------------------------------------------------------- resume


def _batch(step):
    g = torch.Generator().manual_seed(1000 + step)  # the data of a step depends on its number only
    x = torch.randn(16, 4, generator=g)
    return x, x.sum(1, keepdim=True)


def _steps(model, opt, w, start, stop, ckpt=None, at=()):
    for step in range(start, stop):
        x, y = _batch(step)
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        if ckpt is not None and step + 1 in at:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "next": step + 1,
                        "gradwatch": w.state_dict()}, ckpt)


def _adam(seed=0):
    model = _model(seed)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def _uninterrupted(out, n, **kw):
    model, opt = _adam()
    with gw.watch(model, opt, out=out, every=5, stats_budget=None, **kw) as w:
        _steps(model, opt, w, 0, n)
    return gw.load(out)


def _crash_then_resume(out, ckpt, crash_at, ckpt_at, n, use_state=False, **kw):
    model, opt = _adam()
    with gw.watch(model, opt, out=out, every=5, stats_budget=None, **kw) as w:
        _steps(model, opt, w, 0, crash_at, ckpt, ckpt_at)   # the process dies at crash_at
    state = torch.load(ckpt)
    model, opt = _adam()
    model.load_state_dict(state["model"]); opt.load_state_dict(state["opt"])
    with gw.watch(model, opt, out=out, every=5, stats_budget=None, resume=True, **kw) as w:
        if use_state:
            w.load_state_dict(state["gradwatch"])
        assert w.step == state["next"]
        _steps(model, opt, w, w.step, n)
    return gw.load(out)


def test_resume_from_a_checkpoint_continues_the_record_and_keeps_the_steps_trained_again(tmp_path):
    run = _crash_then_resume(tmp_path / "r", tmp_path / "c.pt", crash_at=27, ckpt_at=(10, 20), n=40)
    ref = _uninterrupted(tmp_path / "u", 40)
    assert list(run.steps.index) == list(range(40))
    # the record is the uninterrupted run's: same losses at the same step numbers
    np.testing.assert_allclose(run.steps.loss.to_numpy(), ref.steps.loss.to_numpy(), rtol=1e-5)
    sup = run.superseded
    assert list(sup.step) == list(range(20, 27)) and set(sup.restart) == {1}
    r = run.restarts
    assert len(r) == 1 and r.step[0] == 20 and r.source[0] == "optimizer state" and r.superseded[0] == 7
    assert r.last_recorded[0] == 26 and r.unrecorded[0] is None
    d, dref = gw.diagnose(run), gw.diagnose(ref)
    assert d.steps == 40 and [f.kind for f in d.findings] == [f.kind for f in dref.findings]
    assert set(run.series("grad_norm").index) == set(range(40))  # superseded vectors are not among them


def test_the_watcher_state_carries_the_statistics_schedule_on(tmp_path):
    with_state = _crash_then_resume(tmp_path / "s", tmp_path / "c.pt", 27, (20,), 40, use_state=True)
    ref = _uninterrupted(tmp_path / "u", 40)
    assert list(with_state.series("delta").index) == list(ref.series("delta").index)  # 0, 5, ..., 35
    assert with_state.restarts.source[0] == "watcher state"
    without = _crash_then_resume(tmp_path / "n", tmp_path / "c2.pt", 27, (22,), 40)
    assert 22 in without.series("delta").index  # without it the first resumed step is measured in full


def test_resume_without_optimizer_state_goes_on_from_the_record_or_a_given_step(tmp_path):
    _watched(tmp_path / "a", 6)
    w = _watched(tmp_path / "a", 4, resume=True)  # SGD: no step in its state
    run = gw.load(tmp_path / "a")
    assert list(run.steps.index) == list(range(10)) and run.restarts.source[0] == "record"
    assert w.restarted["superseded"] == 0
    _watched(tmp_path / "a", 2, resume=True, start_step=8)
    run = gw.load(tmp_path / "a")
    assert list(run.steps.index) == list(range(10))
    assert list(run.restarts.restart) == [1, 2] and list(run.superseded.step) == [8, 9]
    _watched(tmp_path / "a", 1, resume=True, start_step=15)  # a gap: steps trained, never written
    assert gw.load(tmp_path / "a").restarts.unrecorded.iloc[-1] == [10, 14]


def test_resume_into_an_empty_directory_starts_a_new_record(tmp_path):
    _watched(tmp_path, 3, resume=True)
    run = gw.load(tmp_path)
    assert list(run.steps.index) == [0, 1, 2] and len(run.restarts) == 0


def test_load_state_dict_after_a_step_is_refused(tmp_path):
    model, opt = _adam()
    with gw.watch(model, opt, out=tmp_path) as w:
        _steps(model, opt, w, 0, 2)
        state = w.state_dict()
        with pytest.raises(WatchError, match="before the first step"):
            w.load_state_dict(state)
    with gw.watch(_model(1), out=tmp_path / "b") as w:
        with pytest.raises(WatchError, match="state_dict"):
            w.load_state_dict({"step": 3})


def test_the_guard_state_survives_a_checkpoint(tmp_path):
    model, opt = _adam()
    with gw.watch(model, opt, out=tmp_path, guard=True) as w:
        _steps(model, opt, w, 0, 12)
        torch.save({"gw": w.state_dict()}, tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt")["gw"]  # weights_only loading
    model, opt = _adam()
    with gw.watch(model, opt, out=tmp_path, guard=True, resume=True) as w2:
        w2.load_state_dict(state)
        assert list(w2.guard.norms) == list(w.guard.norms) and len(w2.guard.norms) == 12
        assert w2.guard._snapshot is not None and w2.step == 12


def test_a_checkpoint_commits_the_record(tmp_path):
    model, opt = _adam()
    with gw.watch(model, opt, out=tmp_path / "r", flush_seconds=1e9, flush_every=10**6) as w:
        _steps(model, opt, w, 0, 7)
        assert gw.load(tmp_path / "r").n_steps == 0  # nothing flushed yet
        torch.save(model.state_dict(), tmp_path / "m.pt")
        assert gw.load(tmp_path / "r").n_steps == 7  # every step before the checkpoint
    assert torch.save.__name__ == "save"  # put back once no watcher is live


CKPT_TRAIN = """
    import os, sys, torch
    from torch import nn
    torch.set_num_threads(1); torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = 0
    if os.path.exists("ckpt.pt"):
        c = torch.load("ckpt.pt"); model.load_state_dict(c["model"]); opt.load_state_dict(c["opt"]); start = c["next"]
    stop, crash = int(sys.argv[1]), int(sys.argv[2])
    for step in range(start, stop):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(32, 8, generator=g)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        if (step + 1) % 10 == 0:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "next": step + 1}, "ckpt.pt")
        if step + 1 == crash:
            raise SystemExit("preempted")
"""


def test_cli_resume_continues_a_script_restarted_from_its_checkpoint(tmp_path):
    s = tmp_path / "train.py"
    s.write_text(textwrap.dedent(CKPT_TRAIN))
    r = _cli(["run", "--out", "r", str(s), "40", "25"], tmp_path)
    assert r.returncode == 1, r.stderr
    r = _cli(["run", "--resume", "--out", "r", str(s), "40", "0"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resumed 1× (at step 20); 5 step(s) trained again kept apart" in r.stderr
    run = gw.load(tmp_path / "r")
    assert list(run.steps.index) == list(range(40)) and list(run.superseded.step) == list(range(20, 25))
    assert run.restarts.source[0] == "optimizer state"


def test_a_restart_made_again_by_the_same_store_is_one_restart(tmp_path):
    s = RunStore(tmp_path)
    s.write_steps([dict(step=i, loss=float(i)) for i in range(10)])
    s.event(8, "note", {})
    s.close()
    s = RunStore(tmp_path, resume=True)
    s.restart(6, source="optimizer state")
    s.event(6, "mine", {})  # written by the resumed run: never superseded
    s.restart(3, source="watcher state")  # learnt later: earlier than first thought
    s.restart(7, source="watcher state")  # or later: steps 3..6 come back
    s.close()
    run = gw.load(tmp_path)
    assert list(run.steps.index) == list(range(7)) and list(run.superseded.step) == [7, 8, 9]
    assert len(run.restarts) == 1 and run.restarts.step[0] == 7 and run.restarts.superseded[0] == 3
    assert set(run.events.kind) == {"restart", "mine"}  # the old note at step 8 is superseded with its step


def test_the_diagnosis_json_names_the_restarts(tmp_path):
    from gradwatch.findings import Diagnosis

    _watched(tmp_path, 6)
    _watched(tmp_path, 2, resume=True, start_step=4)
    d = gw.diagnose(tmp_path)
    assert d.steps == 6 and d.restarts == [{"step": 4, "superseded": 2, "unrecorded": None}]
    assert Diagnosis.from_json(d.to_json()).restarts == d.restarts
    assert "restarts" not in gw.diagnose(_watched(tmp_path / "plain", 2).out).to_dict()


def test_a_script_that_starts_over_with_a_fresh_adam_starts_the_numbering_over(tmp_path):
    model, opt = _adam()
    with gw.watch(model, opt, out=tmp_path, resume=True) as w:  # killed before its first checkpoint
        _steps(model, opt, w, 0, 5)
    model, opt = _adam()  # no checkpoint to load: training starts over
    with gw.watch(model, opt, out=tmp_path, resume=True) as w:
        assert w.step == 0
        _steps(model, opt, w, 0, 8)
    run = gw.load(tmp_path)
    assert list(run.steps.index) == list(range(8)) and list(run.superseded.step) == list(range(5))
    assert run.restarts.step.tolist() == [0] and run.restarts.source[0] == "optimizer state"
