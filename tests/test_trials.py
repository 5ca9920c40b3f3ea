import math

import torch
from torch import nn

import gradwatch as gw
from gradwatch.trials import rank_remedies, trial


def setup(lr):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    batches = [(X[i], y[i]) for i in (torch.randint(0, len(X), (64,), generator=g) for _ in range(8))]
    return model, opt, batches


def test_trial_leaves_the_model_and_optimizer_untouched():
    model, opt, batches = setup(lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    state = opt.state_dict()
    res = trial(model, opt, batches, ["reduce_lr", "clip_grad_norm", "no_such_remedy"], steps=10)
    assert [r.remedy for r in res] == ["baseline", "reduce_lr", "clip_grad_norm", "no_such_remedy"]
    assert res[3].error and math.isnan(res[3].loss)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.state_dict() == state


def test_same_arm_twice_gives_the_same_numbers():
    model, opt, batches = setup(lr=0.1)
    a = trial(model, opt, batches, [], steps=10)[0]
    b = trial(model, opt, batches, [], steps=10)[0]
    assert a.losses == b.losses


def test_diagnosis_ranks_remedies_by_measured_effect(tmp_path):
    model, opt, batches = setup(lr=20.0)
    with gw.watch(model, opt, out=tmp_path, every=2):
        for i in range(40):
            x, y = batches[i % len(batches)]
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
    fresh, fresh_opt, _ = setup(lr=20.0)
    d = gw.diagnose(tmp_path)
    assert d.verdict == "unhealthy"
    rank_remedies(d, fresh, fresh_opt, batches, steps=30)
    tried = [r for f in d.findings for r in f.remedies if r.trial is not None]
    assert tried, "some remedy was trialled"
    for f in d.findings:
        t = [r.trial for r in f.remedies if r.trial is not None]
        improved = [x.after for x in t if x.improved]
        assert improved == sorted(improved)  # improvements first, best first
    lr_fix = next(r for f in d.findings for r in f.remedies if r.id == "reduce_lr")
    assert lr_fix.trial.improved
    assert "trial" in d.to_json()


def test_script_trial_end_loss_judges_the_end_of_the_run():
    import types

    import numpy as np
    import pandas as pd

    from gradwatch.script_trials import end_loss

    def run(losses, nonfinite):
        return types.SimpleNamespace(steps=pd.DataFrame({"loss": losses, "nonfinite": nonfinite}))

    n = 100
    ok = np.linspace(2.0, 0.5, n)
    assert end_loss(run(ok, [""] * n)) == np.median(ok[-10:])
    skipped = ok.copy()
    skipped[[23, 95]] = np.nan  # a guarded run: two NaN batches skipped, the run went on
    flags = ["" if np.isfinite(v) else "loss" for v in skipped]
    assert np.isfinite(end_loss(run(skipped, flags)))
    dead = ok.copy()
    dead[23:] = np.nan  # the weights went NaN at step 23 and stayed
    assert end_loss(run(dead, ["" if np.isfinite(v) else "loss" for v in dead])) == float("inf")


def test_trial_length_covers_a_late_nan():
    from gradwatch.findings import Diagnosis, Finding
    from gradwatch.script_trials import steps_to_cover

    late = Finding(kind="nonfinite", severity="critical", first_step=207, layers=[], summary="NaN")
    assert steps_to_cover(Diagnosis(steps=207, findings=[late]), 100) == 207
    assert steps_to_cover(Diagnosis(steps=400, findings=[late]), 100) == 227
    early = Finding(kind="nonfinite", severity="critical", first_step=23, layers=[], summary="NaN")
    assert steps_to_cover(Diagnosis(steps=200, findings=[early]), 100) == 100


def test_a_combined_arm_applies_its_model_remedy_and_its_step_remedies():
    # 3x He gain on a ReLU MLP and a rate tiny enough not to overflow: He alone stops the
    # explosion but cannot learn at 1e-9; He with the rate raised does
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu"); m.weight.data.mul_(3)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    _, _, batches = setup(lr=0.1)
    base, he, both = trial(model, opt, batches, ["use_he_init", "use_he_init+increase_lr"], steps=30)
    assert both.error is None and he.error is None
    assert both.loss < he.loss - 0.3 < base.loss
    bad = trial(model, opt, batches, ["use_he_init+irnn_init"], steps=2)[1]
    assert bad.error and "two model remedies" in bad.error


def test_rank_remedies_writes_a_better_combination_into_the_remedy_it_starts_from(monkeypatch):
    # the ranking logic on measured losses (the arms themselves are exercised above)
    from gradwatch import trials as T
    from gradwatch.findings import Diagnosis, Finding, Remedy

    nan = float("nan")
    measured = {"baseline": 22.0, "use_he_init": 2.4, "clip_grad_norm": 9.0, "increase_lr": 30.0,
                "use_he_init+clip_grad_norm": 1.1}
    ran = []

    def fake_attempt(remedy, *args, **kwargs):
        ran.append(remedy)
        return T.TrialResult(remedy, measured[remedy], nan, nan)

    monkeypatch.setattr(T, "_attempt", fake_attempt)
    d = Diagnosis(steps=30, findings=[Finding("exploding_gradients", "warning", 0, ["0"], "…", remedies=[
        Remedy("increase_lr", "…"), Remedy("clip_grad_norm", "…"), Remedy("use_he_init", "…")])])
    rank_remedies(d, nn.Linear(2, 2), None, [(None, None)], steps=30)
    # the second round: the best (He) with the other arm that beat the baseline (clip), not with
    # increase_lr, which made things worse
    assert ran == ["baseline", "increase_lr", "clip_grad_norm", "use_he_init", "use_he_init+clip_grad_norm"]
    first, second, last = d.findings[0].remedies
    assert first.id == "use_he_init" and first.trial.after == 1.1
    assert first.trial.applied == "use_he_init+clip_grad_norm"
    assert second.id == "clip_grad_norm" and second.trial.applied is None
    assert last.id == "increase_lr" and not last.trial.improved
