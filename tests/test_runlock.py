"""One writer per run: a second is refused while the first lives; a killed writer leaves no lock."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.store import RunLocked, RunStore

WRITER = textwrap.dedent("""
    import os, sys, time, torch
    from torch import nn
    import gradwatch as gw
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gw.watch(model, opt, out=sys.argv[1], flush_every=1, resume=True) as w:
        for step in range(100000):
            loss = model(torch.randn(16, 8)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            if step == 20:
                w.flush()
                if len(sys.argv) > 2 and os.fork() == 0:   # a forked helper that outlives its parent
                    time.sleep(60); os._exit(0)
                print("ready", flush=True)
            time.sleep(0.002)
""")


def _start_writer(tmp_path, out, fork=False):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(out)] + (["fork"] if fork else []),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _watch_once(out, **kw):
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gw.watch(model, opt, out=out, **kw):
        loss = model(torch.randn(4, 8)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()


def test_a_second_store_in_the_same_process_is_refused_until_the_first_closes(tmp_path):
    first = RunStore(tmp_path)
    with pytest.raises(RunLocked, match="this process"):
        RunStore(tmp_path, overwrite=True)
    first.close()
    RunStore(tmp_path, overwrite=True).close()


@pytest.mark.slow
def test_a_second_writer_is_refused_readers_are_not_and_kill_9_frees_the_run(tmp_path):
    out = tmp_path / "run"
    proc = _start_writer(tmp_path, out)
    try:
        for kw in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(RunLocked) as e:
                _watch_once(out, **kw)
            assert f"pid {proc.pid}" in str(e.value) and "\n" not in str(e.value)
        seen = gw.load(out).n_steps  # a reader, during the writes
        assert seen >= 21
        time.sleep(0.3)
        assert gw.load(out).n_steps > seen  # the first writer is unharmed and goes on
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    held = gw.load(out).n_steps
    _watch_once(out, resume=True)  # no stale lock after kill -9
    run = gw.load(out)
    assert run.n_steps == held + 1


@pytest.mark.slow
def test_a_forked_child_does_not_keep_a_dead_writers_lock(tmp_path):
    out = tmp_path / "run"
    proc = _start_writer(tmp_path, out, fork=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _watch_once(out, resume=True)  # the forked child still sleeps; the run is free
    assert gw.load(out).n_steps >= 22


def test_cli_run_into_a_run_being_written_is_one_line(tmp_path):
    out = tmp_path / "run"
    store = RunStore(out)
    try:
        script = tmp_path / "t.py"
        script.write_text("print('script ran')\n")
        r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--resume", "--out", str(out), str(script)],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="300"))
    finally:
        store.close()
    assert r.returncode == 2 and "script ran" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is being written by another process" in lines[0]
