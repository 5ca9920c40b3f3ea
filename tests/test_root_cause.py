"""Root cause first: findings ordered by onset, consequences naming their root, the first step's
absolute scale as evidence, and loss changes judged against the loss's own noise."""

import json
import math

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.diagnosis.context import Context
from gradwatch.diagnosis.learning_rate import loss_trend, movement_bound
from gradwatch.diagnosis.onset import order_by_onset
from gradwatch.diagnosis.scale import initial_scale
from gradwatch.findings import Cause, Diagnosis, Finding
from gw_test_helpers import train


def relu_mlp(depth, std=None, width=48, d_in=64, seed=0):
    """A ReLU MLP; ``std`` None keeps PyTorch's init, else N(0, std²) hidden weights."""
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        lin = nn.Linear(d_in, width)
        if std is not None:
            nn.init.normal_(lin.weight, 0.0, std)
        layers += [lin, nn.ReLU()]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, 10))


def he_mlp(depth, seed=0):
    model = relu_mlp(depth, seed=seed)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def record(tmp_path, model, opt, X, y, steps, every=5, **kw):
    with gw.watch(model, opt, out=tmp_path, every=every):
        train(model, opt, X, y, steps, **kw)
    return gw.diagnose(tmp_path)


def kinds(d):
    return [f.kind for f in d.findings if f.serious]


# ---------------------------------------------------------------- ordering (no training)


def F(kind, step, causes=(), severity="critical"):
    return Finding(kind, severity, step, [], kind, causes=[Cause(c, c) for c in causes])


def test_the_earliest_pathology_is_the_root_and_later_ones_name_it():
    fs = order_by_onset([F("vanishing_gradients", 8), F("saturated_activations", 3), F("exploding_gradients", 0)])
    assert [f.kind for f in fs] == ["exploding_gradients", "saturated_activations", "vanishing_gradients"]
    assert [f.consequence_of for f in fs] == [None, "exploding_gradients", "exploding_gradients"]


@pytest.mark.parametrize("first, second", [("exploding_gradients", "saturated_activations"),
                                           ("saturated_activations", "vanishing_gradients"),
                                           ("learning_rate_too_high", "nonfinite"),
                                           ("learning_rate_too_high", "dead_units")])
def test_a_tie_goes_to_the_mechanism_that_produces_the_other(first, second):
    for given in ([F(first, 0), F(second, 0)], [F(second, 0), F(first, 0)]):
        fs = order_by_onset(given)
        assert [f.kind for f in fs] == [first, second]
        assert fs[1].consequence_of == first


def test_weights_left_unchanged_under_a_tiny_rate_follow_from_the_rate():
    # steps below half a float's spacing round away: that is the rate, not a skipped parameter
    fs = order_by_onset([F("parameters_not_updated", 0, severity="warning"), F("learning_rate_too_low", 0)])
    assert [(f.kind, f.consequence_of) for f in fs] == [("learning_rate_too_low", None),
                                                        ("parameters_not_updated", "learning_rate_too_low")]
    # a fault of the code itself leads, whatever it distorts
    fs = order_by_onset([F("exploding_gradients", 1), F("gradients_not_zeroed", 1)])
    assert [(f.kind, f.consequence_of) for f in fs] == [("gradients_not_zeroed", None),
                                                        ("exploding_gradients", "gradients_not_zeroed")]


def test_a_cause_in_the_initial_weights_comes_before_the_learning_rate():
    # exploded gradients at init make exploded updates: the update ratio is a symptom
    fs = order_by_onset([F("learning_rate_too_high", 0), F("exploding_gradients", 0, ["init_scale_too_large"])])
    assert [(f.kind, f.consequence_of) for f in fs] == [("exploding_gradients", None),
                                                        ("learning_rate_too_high", "exploding_gradients")]


def test_onsets_within_one_statistics_interval_tie():
    # saturation first seen at statistics step 5 may have begun at step 1: a NaN at step 3 does not precede it
    fs = order_by_onset([F("nonfinite", 3), F("saturated_activations", 5)], stats_steps=[0, 5, 10])
    assert [f.kind for f in fs] == ["saturated_activations", "nonfinite"]
    fs = order_by_onset([F("nonfinite", 3), F("saturated_activations", 5)], stats_steps=range(11))
    assert [f.kind for f in fs] == ["nonfinite", "saturated_activations"]
    assert fs[1].consequence_of is None  # NaN produces nothing: the saturation is its own root


def test_an_unrelated_problem_stays_a_root_and_notes_never_lead():
    fs = order_by_onset([F("learning_rate_too_low", 0, severity="info"), F("vanishing_gradients", 0),
                         F("learning_rate_too_high", 5), F("nonfinite", 9)])
    assert [(f.kind, f.consequence_of) for f in fs] == [
        ("vanishing_gradients", None), ("learning_rate_too_high", None),
        ("nonfinite", "learning_rate_too_high"), ("learning_rate_too_low", "vanishing_gradients")]
    d = Diagnosis(steps=10, findings=fs)
    assert d.root.kind == "vanishing_gradients"
    assert "independent of it: learning_rate_too_high" in d.summary


def test_schema_2_json_round_trips_and_schema_1_json_still_loads():
    fs = order_by_onset([F("nonfinite", 7), F("learning_rate_too_high", 0)])
    d = Diagnosis(steps=10, findings=fs)
    data = json.loads(d.to_json())
    assert data["schema"] == 2 and data["summary"].startswith("root cause: learning_rate_too_high from step 0")
    assert [f["consequence_of"] for f in data["findings"]] == [None, "learning_rate_too_high"]
    back = Diagnosis.from_json(d.to_json())
    assert back.to_dict() == d.to_dict()
    old = {"schema": 1, "verdict": "unhealthy", "steps": 3,
           "findings": [{"kind": "nonfinite", "severity": "critical", "first_step": 2, "layers": [],
                         "summary": "NaN", "evidence": {"x": "nan"}, "causes": [], "remedies": []}]}
    d1 = Diagnosis.from_dict(old)
    assert d1.findings[0].consequence_of is None and d1.root.kind == "nonfinite"
    with pytest.raises(ValueError, match="schema 3 is not supported"):
        Diagnosis.from_dict({**old, "schema": 3})


# ---------------------------------------------------------------- the first step's absolute scale


@pytest.mark.parametrize("std", [1.0, 0.5])
def test_relu_activations_grow_by_hes_factor_per_layer(tmp_path, digits, std):
    # He et al. 2015, eq. 10: a ReLU layer of fan-in n multiplies the signal's mean square by ½·n·Var[w]
    X, y = digits
    model = relu_mlp(8, std=std)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with gw.watch(model, opt, out=tmp_path):
        train(model, opt, X, y, 1)
    s = initial_scale(Context(gw.load(tmp_path)))
    assert s.step == 0 and len(s.layers) == 8 and s.fit > 0.98
    assert s.activation_growth == pytest.approx(math.sqrt(48 * std ** 2 / 2), rel=0.15)


def test_a_healthy_start_is_in_scale(tmp_path, digits):
    X, y = digits
    model = he_mlp(6)
    d = record(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.05), X, y, 3, every=1)
    s = initial_scale(Context(gw.load(tmp_path)))
    assert abs(s.decades) < 1 and s.loss_over_chance < 3 and s.grad_over_unit < 10
    assert not s.too_large() and not s.too_small() and d.verdict == "healthy"


def test_summed_cross_entropy_is_read_per_sample(tmp_path, digits):
    # reduction='sum' multiplies the loss by the batch (64): still a start at chance
    X, y = digits
    model = relu_mlp(2)
    loss_fn = lambda out, t: nn.functional.cross_entropy(out, t, reduction="sum")  # noqa: E731
    record(tmp_path, model, torch.optim.SGD(model.parameters(), lr=1e-4), X, y, 2, every=1, loss_fn=loss_fn)
    s = initial_scale(Context(gw.load(tmp_path)))
    assert s.loss > 20 * math.log(10)
    assert s.output_delta > math.sqrt(2) and 0.5 < s.loss_over_chance < 3


def test_unit_variance_relu_mlp_names_the_init_not_a_sudden_nan(tmp_path, digits):
    # N(0, 1) weights: the signal grows √(48/2) ≈ 4.9× per layer, the loss is ~1e6, NaN from step 1
    X, y = digits
    model = relu_mlp(10, std=1.0)
    d = record(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.01), X, y, 12)
    root = d.root
    assert root.kind == "exploding_gradients" and root.first_step == 0 and root.consequence_of is None
    assert "init_scale_too_large" in {c.id for c in root.causes}
    assert root.remedies[0].id == "use_he_init"
    assert root.evidence["initial_loss_over_chance"] > 1e3
    nan = next(f for f in d.findings if f.kind == "nonfinite")
    assert nan.first_step == 1 and nan.consequence_of == "exploding_gradients"
    assert "suddenly" not in nan.summary and "too large" in nan.summary
    assert nan.remedies[0].id == "use_he_init"
    assert d.summary.startswith("root cause: exploding_gradients from step 0")
    assert "first fix: use_he_init" in d.summary


def test_a_nan_from_a_learning_rate_far_too_large_has_the_learning_rate_as_root(tmp_path, digits):
    X, y = digits
    model = he_mlp(3)
    d = record(tmp_path, model, torch.optim.SGD(model.parameters(), lr=5.0), X, y, 20)
    nan = next(f for f in d.findings if f.kind == "nonfinite")
    assert nan.first_step < 15  # the NaN comes before a loss trend could be read
    assert d.root.kind == "learning_rate_too_high" and d.root.first_step == 0
    assert nan.consequence_of == "learning_rate_too_high"
    assert nan.remedies[0].id == "reduce_lr"


def test_a_nan_without_history_is_not_called_sudden(tmp_path, digits):
    # healthy weights, the loss made infinite at step 1: too early to say that nothing grew
    X, y = digits
    model = relu_mlp(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gw.watch(model, opt, out=tmp_path):
        for step in range(4):
            loss = nn.functional.cross_entropy(model(X[:32]), y[:32]) * (math.inf if step == 1 else 1.0)
            opt.zero_grad(); loss.backward(); opt.step()
    d = gw.diagnose(tmp_path)
    nan = next(f for f in d.findings if f.kind == "nonfinite")
    assert nan.first_step == 1 and "suddenly" not in nan.summary and "too early" in nan.summary
    assert "learning_rate_too_high" not in kinds(d)


# ---------------------------------------------------------------- loss changes against their noise


def _fine_tune_with_a_tiny_rate(path, X, y, seed, lr=1e-6):
    """A net trained a little (so its minibatch loss is small and noisy), then steps of ~1e-7."""
    model = he_mlp(3, seed=seed)
    train(model, torch.optim.Adam(model.parameters(), lr=1e-3), X, y, 150, seed=seed)
    return record(path, model, torch.optim.SGD(model.parameters(), lr=lr), X, y, 60, batch=4, seed=seed + 1)


@pytest.mark.slow
def test_a_noisy_loss_under_a_tiny_learning_rate_neither_diverges_nor_learns(tmp_path, digits):
    X, y = digits
    for seed in range(5):
        d = _fine_tune_with_a_tiny_rate(tmp_path / str(seed), X, y, seed)
        trend = loss_trend(Context(gw.load(tmp_path / str(seed))))
        assert not trend["diverged"] and not trend["learned"], (seed, trend)
        assert kinds(d) == ["learning_rate_too_low"], (seed, [f.summary for f in d.findings])


def test_the_movement_bound_holds_the_loss_change_on_a_fixed_batch(tmp_path, digits):
    # full batch, small steps: |L_T − L_0| ≤ Σ‖g‖·‖Δw‖ to first order (Cauchy–Schwarz)
    X, y = digits
    X, y = X[:256], y[:256]
    model = relu_mlp(2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=tmp_path, every=1):
        for _ in range(20):
            loss = nn.functional.cross_entropy(model(X), y)
            opt.zero_grad(); loss.backward(); opt.step()
    ctx = Context(gw.load(tmp_path))
    change = abs(float(ctx.loss.iloc[-1] - ctx.loss.iloc[0]))
    bound = movement_bound(ctx)
    assert 0 < change <= bound * 1.05
    assert bound < 100 * change  # and it is not vacuous


def test_a_tanh_rnn_whose_recurrence_explodes_has_that_as_root_not_the_vanishing_that_follows(tmp_path):
    # spectral radius 3: δ grows back through time at step 0; the exploded updates saturate the
    # units, after which the gradient through time vanishes (Pascanu et al. 2013)
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(1, 32, batch_first=True)
            self.out = nn.Linear(32, 1)
            with torch.no_grad():
                q, _ = torch.linalg.qr(torch.randn(32, 32))
                self.rnn.weight_hh_l0.copy_(3.0 * q)

        def forward(self, x):
            return self.out(self.rnn(x)[0][:, -1])

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gw.watch(model, opt, out=tmp_path, every=5):
        for _ in range(20):
            x = torch.randn(32, 30, 1)
            loss = (model(x) - x[:, :3].sum(1)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    d = gw.diagnose(tmp_path)
    assert d.root.kind == "exploding_gradients" and d.root.first_step == 0
    assert "recurrent_spectral_radius" in {c.id for c in d.root.causes}
    later = [f for f in d.findings if f.serious and f is not d.root]
    assert "vanishing_gradients" in {f.kind for f in later}
    assert all(f.consequence_of == "exploding_gradients" for f in later), [(f.kind, f.consequence_of) for f in later]


def test_a_shallow_net_ten_times_too_large_is_read_from_its_loss_against_chance(tmp_path, digits):
    # three hidden layers: too few to fit a growth per layer, but the logits are ~10³× too large,
    # so the per-sample cross-entropy sits orders of magnitude above ln 10 (Adam keeps the steps in band)
    X, y = digits
    model = he_mlp(3)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(10.0)
    d = record(tmp_path, model, torch.optim.Adam(model.parameters(), lr=1e-3), X, y, 20)
    assert d.root.kind == "exploding_gradients" and d.root.first_step == 0
    assert d.root.evidence["initial_loss_over_chance"] > 100
    assert "init_scale_too_large" in {c.id for c in d.root.causes} and d.root.remedies[0].id == "use_he_init"
