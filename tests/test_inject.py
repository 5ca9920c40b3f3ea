import json
import subprocess
import sys
import textwrap

import pytest
import torch

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
    lrs = run_.steps.lr.map(lambda v: v[0])
    assert lrs.nunique() == 1 and lrs.iloc[0] <= 0.05 + 1e-12  # a tenth, or less if that is still too large


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


def test_warmup_length_and_clip_threshold_are_given_after_a_colon(tmp_path):
    r, run_ = run(tmp_path, "--remedy", "add_warmup:10", "--steps", "20")
    assert r.returncode == 0, r.stderr
    lrs = run_.steps.lr.map(lambda v: v[0]).to_numpy()
    assert abs(lrs[0] - 0.05) < 1e-9 and abs(lrs[9] - 0.5) < 1e-9 and (lrs[9:] == 0.5).all()
    r, run_ = run(tmp_path, "--remedy", "clip_grad_norm:0.25", "--steps", "20")
    assert r.returncode == 0 and (run_.steps.grad_norm <= 0.25 + 1e-4).all()
    assert run_.steps.grad_norm.max() > 0.24  # the threshold given was the one used


@pytest.mark.parametrize("spec, message", [("add_warmup:x", "must be a positive int"),
                                           ("add_warmup:-3", "must be a positive int"),
                                           ("use_he_init:3", "takes no number")])
def test_a_bad_remedy_number_is_a_one_line_error(tmp_path, spec, message):
    p = tmp_path / "t.py"
    p.write_text("print(1)")
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--remedy", spec, str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr.replace("\n", " ") and "Traceback" not in r.stderr


def test_a_trial_injects_a_warmup_shorter_than_itself():
    from gradwatch.inject import parse_remedy, trial_spec

    rid, opts = parse_remedy(trial_spec("add_warmup", 100))
    assert rid == "add_warmup" and opts["warmup"] < 100  # the trial must see the rate it ramps up to


DEAD = """
    import torch
    from torch import nn
    import torch.nn.functional as F
    torch.manual_seed(0)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 32), nn.Linear(32, 1)
        def forward(self, x):
            return self.b(F.relu(self.a(x)))
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for step in range(30):
        x = torch.randn(32, 8)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
"""


def run_script_text(tmp_path, text, *extra):
    p = tmp_path / "train.py"
    p.write_text(textwrap.dedent(text))
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--out", str(out), *extra, str(p)],
                       capture_output=True, text=True, timeout=300)
    return r, load(out)


def test_reduce_lr_goes_below_a_tenth_when_a_tenth_is_still_far_too_large(tmp_path):
    r, run_ = run_script_text(tmp_path, DEAD.replace("LR", "50.0"), "--remedy", "reduce_lr", "--steps", "5")
    assert r.returncode == 0, r.stderr
    lr = run_.steps.lr.map(lambda v: v[0]).iloc[0]
    assert lr < 5.0 * 0.1  # the first step would have moved the weights by far more than 1e-2


def test_increase_lr_goes_beyond_tenfold_for_a_typo_sized_rate(tmp_path):
    r, run_ = run_script_text(tmp_path, DEAD.replace("LR", "1e-9"), "--remedy", "increase_lr", "--steps", "5")
    assert r.returncode == 0, r.stderr
    assert run_.steps.lr.map(lambda v: v[0]).iloc[0] > 1e-8


def test_use_leaky_relu_reaches_functional_relu_inside_the_model_only():
    import torch.nn.functional as F
    from torch import nn

    from gradwatch.inject import apply_to_model

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(2, 2), nn.Linear(2, 1)

        def forward(self, x):
            self.hidden = F.relu(self.fc(x))
            return self.out(self.hidden)

    torch.manual_seed(0)
    net, x = Net(), torch.randn(64, 2)
    apply_to_model("use_leaky_relu", net)
    net(x)
    assert (net.hidden < 0).any()  # leaky: negative inputs pass at slope 0.01
    assert torch.allclose(net.hidden[net.hidden < 0] / net.fc(x)[net.hidden < 0], torch.tensor(0.01))
    assert F.relu(torch.tensor([-1.0])).item() == 0.0  # outside the model's forward nothing changed

def test_predicted_first_ratio_matches_the_step_taken():
    import torch
    from torch import nn

    from gradwatch.inject import predicted_first_ratio

    for cls in (torch.optim.SGD, torch.optim.Adam):
        torch.manual_seed(0)
        m = nn.Linear(16, 16)
        opt = cls(m.parameters(), lr=1e-2)
        m(torch.randn(8, 16)).pow(2).mean().backward()
        pred, w0 = predicted_first_ratio(opt), m.weight.detach().clone()
        opt.step()
        actual = float((m.weight.detach() - w0).norm() / w0.norm())
        assert abs(pred / actual - 1) < 0.05, (cls, pred, actual)


@pytest.mark.parametrize("cls, kw, aim", [(torch.optim.SGD, {}, 3e-3), (torch.optim.SGD, {"momentum": 0.9}, 3e-4),
                                          (torch.optim.SGD, {"momentum": 0.5, "nesterov": True}, 1.5e-3),
                                          (torch.optim.Adam, {}, 2e-2), (torch.optim.RMSprop, {}, 2e-1)])
def test_reduce_lr_lands_the_first_step_on_its_aim(cls, kw, aim):
    # a rate 1000x too large: the measured first step lands on the optimizer's aim (RMSprop's first
    # step is 1/sqrt(1-alpha) = 10x a bias-corrected one, so 10x the adaptive aim of 2e-2; momentum
    # beta makes later steps 1/(1-beta) first steps, so the first aims that much lower)
    from gradwatch.inject import StepRemedy

    torch.manual_seed(0)
    m = torch.nn.Linear(32, 32)
    opt = cls(m.parameters(), lr=50.0, **kw)
    m(torch.randn(16, 32)).pow(2).mean().backward()
    w0 = m.weight.detach().clone()
    StepRemedy("reduce_lr").before_step(opt)
    opt.step()
    ratio = float((m.weight.detach() - w0).norm() / w0.norm())
    assert abs(ratio / aim - 1) < 0.05, (cls.__name__, ratio)


@pytest.mark.parametrize("momentum, lands", [(0.9, 3e-4), (0.0, 7e-3)])
def test_reduce_lr_judges_the_band_by_the_steps_momentum_makes(momentum, lands):
    # a first step of 7e-2: a tenth of the rate makes it 7e-3, inside the band for plain SGD (so a
    # tenth it is), but momentum 0.9 grows the steps to 10 first steps, 7e-2: then the aim, 3e-4
    from gradwatch.inject import StepRemedy, predicted_first_ratio

    torch.manual_seed(0)
    m = torch.nn.Linear(32, 32)
    opt = torch.optim.SGD(m.parameters(), lr=1.0, momentum=momentum)
    m(torch.randn(16, 32)).pow(2).mean().backward()
    for g in opt.param_groups:  # set the rate so that the first step is 7e-2 of the weights
        g["lr"] = 7e-2 / predicted_first_ratio(opt)
    w0 = m.weight.detach().clone()
    StepRemedy("reduce_lr").before_step(opt)
    opt.step()
    ratio = float((m.weight.detach() - w0).norm() / w0.norm())
    assert abs(ratio / lands - 1) < 0.05, ratio

def test_a_model_remedy_and_a_step_remedy_combine(tmp_path):
    p = tmp_path / "tiny_rate.py"
    p.write_text(textwrap.dedent("""
        import torch
        from torch import nn
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
        nn.init.normal_(model[0].weight, std=3.0)
        opt = torch.optim.SGD(model.parameters(), lr=1e-7)
        for step in range(5):
            x = torch.randn(32, 8)
            loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        print("std", float(model[0].weight.std()), "lr", opt.param_groups[0]["lr"])
    """))
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--out", str(tmp_path / "r"),
                        "--remedy", "increase_lr+use_he_init", str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    std, lr = (float(v) for v in r.stdout.split()[1::2])
    assert abs(std / (2 / 8) ** 0.5 - 1) < 0.25   # He, no longer std 3 (the weights barely move at this rate)
    assert lr >= 1e-6                             # and the rate raised, at least tenfold


@pytest.mark.parametrize("spec, message", [("use_he_init+irnn_init", "two model remedies"),
                                           ("reduce_lr+reduce_lr", "names a remedy twice"),
                                           ("use_he_init+magic", "cannot apply 'magic'")])
def test_a_bad_combination_says_what_combines(spec, message):
    from gradwatch.inject import parse_combination

    with pytest.raises(ValueError, match=message):
        parse_combination(spec)


def test_a_second_round_combination_that_does_better_is_written_into_its_first_remedy():
    from gradwatch.findings import Diagnosis, Finding, Remedy
    from gradwatch.script_trials import ScriptTrial, rank_into
    from gradwatch.trials import second_round

    arms = [ScriptTrial("baseline", 1800.0, "unhealthy", ["exploding_gradients"], 1, 0),
            ScriptTrial("use_he_init", 2.3, "unhealthy", ["learning_rate_too_low"], 1, 0,
                        prescribed=["increase_lr", "use_adam"]),
            ScriptTrial("clip_grad_norm", 7e4, "unhealthy", ["exploding_gradients"], 1, 0,
                        prescribed=["use_he_init"])]
    assert second_round(arms, 80) == ["use_he_init+increase_lr"]  # use_adam is not injectable
    arms.append(ScriptTrial("use_he_init+increase_lr", 0.2, "healthy", [], 1, 0))
    d = Diagnosis(steps=80, findings=[Finding(
        "exploding_gradients", "critical", 0, ["0"], "…",
        remedies=[Remedy("clip_grad_norm", "…"), Remedy("use_he_init", "…")])])
    rank_into(d, arms, 80)
    first = d.findings[0].remedies[0]
    assert first.id == "use_he_init" and first.trial.after == 0.2 and first.trial.applied == "use_he_init+increase_lr"
    assert d.findings[0].remedies[1].trial.applied is None
    # nothing to add once the best arm's run is healthy
    arms[1].verdict = "healthy"
    assert second_round(arms[:3], 80) == []



def test_a_model_remedy_that_diverged_gets_one_rescue_with_what_its_run_prescribes():
    from gradwatch.script_trials import ScriptTrial
    from gradwatch.trials import second_round

    inf = float("inf")
    arms = [ScriptTrial("baseline", 1.1, "unhealthy", ["vanishing_gradients"], 1, 0),
            ScriptTrial("use_relu_with_he_init", inf, "unhealthy", ["nonfinite"], 1, 0,
                        prescribed=["guard_free_id", "reduce_lr", "clip_grad_norm"]),
            ScriptTrial("use_he_init", 1.09, "unhealthy", ["vanishing_gradients"], 1, 0,
                        prescribed=["use_relu_with_he_init"]),
            ScriptTrial("increase_lr", inf, "unhealthy", ["nonfinite"], 1, 0, prescribed=["reduce_lr"])]
    # the best (use_he_init) has nothing combinable; the diverged swap is retried at a lower rate;
    # a step remedy that diverged is not "rescued" by undoing itself
    assert second_round(arms, 100) == ["use_relu_with_he_init+reduce_lr"]
    # the rescue comes on top of the best arm's combinations, and only once
    arms[2].prescribed = ["clip_grad_norm", "increase_lr"]
    arms.append(ScriptTrial("use_leaky_relu", inf, "unhealthy", ["nonfinite"], 1, 0, prescribed=["clip_grad_norm"]))
    assert second_round(arms, 100) == ["use_he_init+clip_grad_norm", "use_he_init+increase_lr",
                                       "use_relu_with_he_init+reduce_lr"]

def test_script_and_library_trials_order_remedies_alike():
    """Helped (lowest loss first), then untried, then harmful (least harm first); an arm that
    could not run counts as untried. One ordering for both paths (trials.write_ranked)."""
    from gradwatch.findings import Diagnosis, Finding, Remedy
    from gradwatch.script_trials import ScriptTrial, rank_into
    from gradwatch.trials import TrialResult, write_ranked

    def diagnosis():
        return Diagnosis(steps=50, findings=[Finding("vanishing_gradients", "critical", 0, ["0"], "…", remedies=[
            Remedy(i, "…") for i in ("reduce_lr", "use_he_init", "add_warmup", "clip_grad_norm", "use_adam",
                                     "increase_lr")])])

    losses = {"baseline": 2.0, "reduce_lr": 9.0, "use_he_init": 0.5, "add_warmup": 3.0, "clip_grad_norm": 1.0,
              "increase_lr": 1.5}
    nan = float("nan")
    script = [ScriptTrial(r, v, "unhealthy", [], 1, 0) for r, v in losses.items()]
    script.append(ScriptTrial("use_adam", nan, "failed", [], 1, 1, "boom"))
    library = [TrialResult(r, v, nan, nan) for r, v in losses.items()]
    library.append(TrialResult("use_adam", nan, nan, nan, error="cannot apply"))
    d1, d2 = diagnosis(), diagnosis()
    rank_into(d1, script, 50)
    write_ranked(d2, library, "loss after 50 steps")
    order = ["use_he_init", "clip_grad_norm", "increase_lr", "use_adam", "add_warmup", "reduce_lr"]
    assert [r.id for r in d1.findings[0].remedies] == order
    assert [r.id for r in d2.findings[0].remedies] == order
    assert d1.findings[0].remedies[3].trial is None

GAIN = """
    import torch
    from torch import nn
    torch.manual_seed(0)
    layers = []
    for i in range(8):
        layers += [nn.Linear(16 if i == 0 else 64, 64), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(64, 4))
    for m in model:  # 3x He: the signal grows ~3x per layer; a rate tiny enough not to overflow
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu"); m.weight.data.mul_(3)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    x = torch.randn(512, 16); y = x[:, :4].argmax(1)
    for step in range(80):
        i = torch.randint(0, 512, (64,))
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad(); loss.backward(); opt.step()
"""


def test_script_trial_combines_the_best_remedy_with_what_its_run_still_needs(tmp_path):
    # He init ends the explosion; its own run then shows the rate, set tiny to survive the
    # explosion, as too low — and the second round tries both together
    p = tmp_path / "gain.py"
    p.write_text(textwrap.dedent(GAIN))
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", "--trial", "--trial-steps", "80", "--out", str(out),
                        "--json", str(out) + ".json", str(p)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    arms = {q.name for q in (out / "trials").iterdir() if q.is_dir()}
    assert {"baseline", "use_he_init", "use_he_init+increase_lr"} <= arms
    he = json.loads((out / "trials" / "use_he_init.json").read_text())
    assert "learning_rate_too_low" in {f["kind"] for f in he["findings"] if f["severity"] != "info"}
    d = json.loads((out.parent / "r.json").read_text())
    tried = {rem["id"]: rem["trial"] for f in d["findings"] for rem in f["remedies"] if rem["trial"]}
    assert tried["use_he_init"]["applied"] == "use_he_init+increase_lr"
    from gradwatch.script_trials import end_loss

    he_alone = end_loss(load(out / "trials" / "use_he_init"))
    assert tried["use_he_init"]["after"] < 0.8 * he_alone  # better than He alone at the tiny rate
