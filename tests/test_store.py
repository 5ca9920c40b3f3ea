import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gradwatch.record import load
from gradwatch.store import RunStore, StoreError, pack, unpack


def test_bfloat16_packing_keeps_range_and_three_digits():
    v = np.array([1.0, 3.14159, 1e-30, 7e30, -2.5e-12, 0.0], dtype=np.float32)
    back = unpack(pack(v, "bfloat16"), "bfloat16")
    rel = np.abs(back[v != 0] - v[v != 0]) / np.abs(v[v != 0])
    assert rel.max() < 2 ** -8
    assert back[-1] == 0.0
    nan = unpack(pack(np.array([np.nan, np.inf, -np.inf]), "bfloat16"), "bfloat16")
    assert np.isnan(nan[0]) and nan[1] == np.inf and nan[2] == -np.inf


def test_float32_packing_is_exact():
    v = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    assert np.array_equal(unpack(pack(v, "float32"), "float32"), v)


def test_unwritable_directory_is_a_clear_error(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    if os.access(target, os.W_OK):  # root ignores permissions: use a path under a file
        target = tmp_path / "file"
        target.write_text("x")
        target = target / "sub"
    with pytest.raises(StoreError, match="cannot write the run directory"):
        RunStore(target)


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no gradwatch run"):
        load(tmp_path).steps


def test_nonfinite_step_values_survive_sqlite(tmp_path):
    s = RunStore(tmp_path)
    s.write_layout([], [])
    s.write_steps([dict(step=0, loss=float("nan"), grad_norm=float("inf")), dict(step=1, loss=1.0, grad_norm=2.0)])
    s.close()
    steps = load(tmp_path).steps
    assert np.isnan(steps.loss[0]) and steps.grad_norm[0] == np.inf
    assert steps.nonfinite[0] == "loss:nan,grad_norm:inf" and steps.nonfinite[1] == ""


SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch import nn
    import gradwatch as gw
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gw.watch(model, opt, out=sys.argv[1], flush_every=1, every=3) as w:
        step = 0
        while True:
            x = torch.randn(16, 8)
            loss = model(x).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            step += 1
            if step == 20:
                print("ready", flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.37, 1.1])
def test_kill_9_keeps_every_flushed_step(tmp_path, delay):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = load(out)
    steps = run.steps.index.to_numpy()
    assert len(steps) >= 15
    assert np.array_equal(steps, np.arange(len(steps)))  # no hole: every flushed step is there
    assert run.steps.loss.notna().all()
    assert len(run.series("grad_norm")) == len(steps)
