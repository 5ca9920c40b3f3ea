import json
import subprocess
import sys
import textwrap

from gradwatch.record import load

SCRIPT = """
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(60):
        x = torch.randn(32, 8)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    print("done")
"""


def run(tmp_path, *extra):
    p = tmp_path / "train.py"
    p.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / ("r" + "".join(e.strip("-") for e in extra))
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--out", str(out), *extra, str(p)],
                       capture_output=True, text=True, timeout=300)
    return r, load(out)


def test_reduce_lr_is_injected_and_steps_are_capped(tmp_path):
    r, run_ = run(tmp_path, "--remedy", "reduce_lr", "--steps", "25")
    assert r.returncode == 0 and "done" not in r.stdout  # stopped by the step budget, not a crash
    assert len(run_.steps) == 25
    assert run_.steps.lr.map(lambda v: v[0]).eq(0.05).all()


def test_clip_grad_norm_is_injected(tmp_path):
    r, run_ = run(tmp_path, "--remedy", "clip_grad_norm")
    assert r.returncode == 0
    # the watcher measures the gradients the optimizer uses: after clipping
    assert (run_.steps.grad_norm <= 1.0 + 1e-3).all()


def test_unknown_remedy_is_a_one_line_error(tmp_path):
    p = tmp_path / "t.py"
    p.write_text("print(1)")
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--remedy", "magic", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot apply 'magic'" in r.stderr and "Traceback" not in r.stderr
