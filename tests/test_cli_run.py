import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GRADWATCH = [sys.executable, "-m", "gradwatch.cli"]


def script(tmp_path, body, name="train.py"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


TRAIN = """
    import sys, torch
    from torch import nn
    torch.manual_seed(0); torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(int(sys.argv[1])):
        x = torch.randn(32, 8)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    print("trained", sys.argv[1:])
    print("to stderr", file=sys.stderr)
    sys.exit(int(sys.argv[2]))
"""


def run(args, cwd):
    return subprocess.run(GRADWATCH + args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_run_keeps_the_scripts_output_and_status_and_writes_json(tmp_path):
    s = script(tmp_path, TRAIN)
    r = run(["run", "--out", "rundir", "--json", "d.json", str(s), "30", "3", "--its-own-flag"], tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines()[0] == "trained ['30', '3', '--its-own-flag']"
    assert "to stderr" in r.stderr
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["schema"] >= 1 and d["steps"] == 30 and d["verdict"] in ("healthy", "unhealthy")
    assert (tmp_path / "rundir" / "report.html").exists()
    from gradwatch.record import load

    run_ = load(tmp_path / "rundir")
    assert set(run_.modules.name) >= {"", "0", "1", "2"}  # names inside the root model
    assert run_.meta["model"]["optimizer"]["class"] == "SGD"
    assert run_.steps["loss"].notna().all()
    assert run_.steps.stats.iloc[0] and run_.series("delta").index[0] == 0  # step 0 measured in full


def test_a_crashing_script_still_leaves_a_record_and_a_diagnosis(tmp_path):
    s = script(tmp_path, """
        import torch
        from torch import nn
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(100):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            if step == 25:
                loss = loss * float("nan")
            assert torch.isfinite(loss), f"loss is {loss.item()}"
            opt.zero_grad(); loss.backward(); opt.step()
    """)
    r = run(["run", "--out", "r", "--json", "d.json", str(s)], tmp_path)
    assert r.returncode == 1
    assert "AssertionError: loss is nan" in r.stderr
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["steps"] == 25
    kinds = {f["kind"]: f for f in d["findings"]}
    assert kinds["nonfinite"]["first_step"] == 25


def test_missing_script_is_a_one_line_error(tmp_path):
    r = run(["run", "nope.py"], tmp_path)
    assert r.returncode == 2
    assert "no such script" in r.stderr and "Traceback" not in r.stderr


def test_a_bad_stats_budget_is_a_one_line_error_and_zero_keeps_the_fixed_spacing(tmp_path):
    train = script(tmp_path, TRAIN)
    r = run(["run", "--stats-budget", "1.5", str(train), "5", "0"], tmp_path)
    assert r.returncode == 2 and "--stats-budget" in r.stderr and "Traceback" not in r.stderr
    r = run(["run", "--stats-budget", "0", "--every", "3", "--out", "fixed", str(train), "140", "0"], tmp_path)
    assert r.returncode in (0, 3), r.stderr
    from gradwatch.record import load

    run_ = load(tmp_path / "fixed")
    assert run_.meta["config"]["stats_budget"] is None
    # the watcher exists before the first forward: step 0 is a statistics step
    assert run_.steps.stats.tolist() == [t % 3 == 0 for t in range(140)]


def test_diagnose_of_a_missing_run_is_a_one_line_error(tmp_path):
    r = run(["diagnose", str(tmp_path / "missing")], tmp_path)
    assert r.returncode == 2 and "no gradwatch run" in r.stderr and "Traceback" not in r.stderr


LONG = """
    import torch
    from torch import nn
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    step = 0
    while True:
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        step += 1
        if step == 30:
            print("ready", flush=True)
"""


@pytest.mark.parametrize("sig, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_script_keeps_its_record(tmp_path, sig, status):
    import signal
    import time

    s = script(tmp_path, LONG)
    # a shell without job control starts background jobs with SIGINT ignored, and Python then keeps
    # it ignored (no KeyboardInterrupt): give the child the default disposition, as a terminal would
    proc = subprocess.Popen(GRADWATCH + ["run", "--out", "r", "--json", "d.json", str(s)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    proc.communicate(timeout=120)
    assert proc.returncode == status
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["steps"] >= 30


@pytest.mark.parametrize("layout", ["moduledict", "separate", "loose"])
def test_an_optimizer_over_several_parts_is_watched_under_the_scripts_names(tmp_path, layout):
    # parts called one by one (head(enc(emb(x)))): in a ModuleDict, as separate variables, or
    # with a parameter outside every module. The first two are watched with every parameter
    # named; the third cannot be, and the script must run on all the same.
    s = script(tmp_path, f"""
        import torch
        from torch import nn
        torch.manual_seed(0)
        encoder, decoder = nn.Sequential(nn.Linear(4, 8), nn.Tanh()), nn.Linear(8, 1)
        scale = nn.Parameter(torch.ones(()))
        layout = "{layout}"
        if layout == "moduledict":
            model = nn.ModuleDict({{"encoder": encoder, "decoder": decoder}})
            params = model.parameters()
        else:
            params = [*encoder.parameters(), *decoder.parameters()] + ([scale] if layout == "loose" else [])
        opt = torch.optim.SGD(params, lr=0.05)
        for step in range(12):
            x = torch.randn(16, 4)
            loss = (decoder(encoder(x)) * scale - x.sum(1, keepdim=True)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        print("done", step)
    """)
    r = run(["run", "--out", "rundir", str(s)], tmp_path)
    assert r.returncode == 0 and "done 11" in r.stdout, r.stderr
    from gradwatch.record import load

    if layout == "loose":
        assert "not watched" in r.stderr and "Traceback" not in r.stderr
        return
    names = set(load(tmp_path / "rundir").params.name)
    assert names == {"encoder.0.weight", "encoder.0.bias", "decoder.weight", "decoder.bias"}


def test_a_script_that_trains_nothing_says_so_instead_of_healthy(tmp_path):
    s = script(tmp_path, """
        import torch
        from torch import nn
        model = nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        print(model(torch.randn(2, 3)).shape)   # a forward, never a backward or a step
    """)
    r = run(["run", "--out", "r", "--json", "d.json", str(s)], tmp_path)
    assert r.returncode == 0 and "no training step completed" in r.stderr
    assert "healthy" not in r.stderr and not (tmp_path / "d.json").exists()
