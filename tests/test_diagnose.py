"""Every rule fires on a small model built to show its pathology, and stays silent on healthy ones."""

import pytest
import torch
from torch import nn

import gradwatch as gw
from gw_test_helpers import train


def mlp(depth, act, width=48, init=None, bias=None, seed=0):
    torch.manual_seed(seed)
    layers, d_in = [], 64
    for _ in range(depth):
        lin = nn.Linear(d_in, width)
        if init is not None:
            init(lin.weight)
        if bias is not None:
            nn.init.constant_(lin.bias, bias)
        layers += [lin, act()]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, 10))


def diagnose_training(tmp_path, model, opt, X, y, steps, **kw):
    with gw.watch(model, opt, out=tmp_path, every=5):
        train(model, opt, X, y, steps, **kw)
    return gw.diagnose(tmp_path)


def serious(d):
    return {f.kind for f in d.findings if f.serious}


def test_vanishing_in_a_deep_sigmoid_net(tmp_path, digits):
    model = mlp(12, nn.Sigmoid)
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1), *digits, 30)
    assert "vanishing_gradients" in serious(d)
    f = next(f for f in d.findings if f.kind == "vanishing_gradients")
    assert "0" in f.layers and f.evidence["grad_ratio_first_to_last"] < 1e-3
    assert {c.id for c in f.causes} >= {"activation_sigmoid", "depth"}
    assert f.remedies[0].id == "use_relu_with_he_init"


def test_exploding_with_unit_variance_init(tmp_path, digits):
    model = mlp(10, nn.ReLU, init=lambda w: nn.init.normal_(w, 0, 1.0))
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=1e-12), *digits, 20)
    f = next(f for f in d.findings if f.kind == "exploding_gradients")
    assert f.evidence["grad_ratio_first_to_last"] > 1e3
    assert "init_scale_too_large" in {c.id for c in f.causes}


def test_nonfinite_names_the_first_step(tmp_path, digits):
    X, y = digits
    model = mlp(2, nn.ReLU)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path):
        for step in range(20):
            loss = nn.functional.cross_entropy(model(X[:32]), y[:32]) * (float("inf") if step == 12 else 1.0)
            opt.zero_grad(); loss.backward(); opt.step()
    d = gw.diagnose(tmp_path)
    f = next(f for f in d.findings if f.kind == "nonfinite")
    assert f.first_step == 12 and f.severity == "critical"
    assert "0.weight" in f.layers


def test_saturated_tanh_with_large_weights(tmp_path, digits):
    model = mlp(4, nn.Tanh, init=lambda w: nn.init.normal_(w, 0, 2.0))
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.01), *digits, 20)
    assert "saturated_activations" in serious(d)


def test_dead_relu_units_from_a_negative_bias(tmp_path, digits):
    model = mlp(3, nn.ReLU, bias=-3.0)
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.05), *digits, 30)
    f = next(f for f in d.findings if f.kind == "dead_units")
    assert "negative_bias" in {c.id for c in f.causes}
    assert f.remedies[0].id == "zero_bias_init"


def test_symmetric_zero_init(tmp_path, digits):
    model = mlp(3, nn.Tanh, init=nn.init.zeros_, bias=0.0)
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1), *digits, 30)
    f = next(f for f in d.findings if f.kind == "symmetric_weights")
    assert "2.weight" in f.layers and "zero_init" in {c.id for c in f.causes}


def test_zero_weights_with_random_biases_are_not_symmetric(tmp_path, digits):
    # PyTorch's random biases make tanh units differ, so the gradients differ: no symmetry
    model = mlp(3, nn.Tanh, init=nn.init.zeros_)
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1), *digits, 30)
    assert "symmetric_weights" not in serious(d)


def test_learning_rate_too_high(tmp_path, digits):
    model = mlp(3, nn.Tanh)
    d = diagnose_training(tmp_path, model, torch.optim.SGD(model.parameters(), lr=30.0), *digits, 60)
    assert "learning_rate_too_high" in serious(d) or "nonfinite" in serious(d)


def test_learning_rate_too_low(tmp_path, digits):
    model = mlp(3, nn.ReLU, init=lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    d = diagnose_training(tmp_path, model, torch.optim.Adam(model.parameters(), lr=1e-8), *digits, 60)
    assert serious(d) == {"learning_rate_too_low"}


def _he_scaled(factor):
    return lambda w: nn.init.normal_(w, 0.0, factor * (2.0 / w.shape[1]) ** 0.5)


def test_weights_a_tenth_of_he_vanish_at_the_first_step_before_adam_rescales_them(tmp_path, digits):
    # δ falls 10× per layer at step 0 (He et al. 2015: the per-layer gain is ½·n·Var[w]); Adam's
    # steps do not shrink with the weights, so within tens of steps the profile is flat again
    model = mlp(3, nn.ReLU, init=_he_scaled(0.1))
    d = diagnose_training(tmp_path, model, torch.optim.Adam(model.parameters(), lr=1e-3), *digits, 60)
    f = next(f for f in d.findings if f.kind == "vanishing_gradients")
    assert f.first_step == 0 and f.evidence["read_at"] == "first step"
    assert f.evidence["grad_ratio_first_to_last"] < 1e-2 and f.evidence["per_layer_factor"] < 0.2
    assert "init_scale_too_small" in {c.id for c in f.causes}
    assert d.findings[0].kind == "vanishing_gradients"


def test_weights_ten_times_he_explode_at_the_first_step(tmp_path, digits):
    model = mlp(4, nn.ReLU, init=_he_scaled(10.0))
    d = diagnose_training(tmp_path, model, torch.optim.Adam(model.parameters(), lr=1e-3), *digits, 40)
    f = next(f for f in d.findings if f.kind == "exploding_gradients")
    # the default-init output layer shrinks δ on its way in; the ×10 layers below grow it 10× each
    assert f.first_step == 0 and f.evidence["read_at"] == "first step"
    assert f.evidence["per_layer_factor"] > 5


def test_an_average_pool_is_not_read_as_a_per_layer_gain(tmp_path):
    # δ's norm falls √T at a global average pool over T positions while the conv layers below
    # keep theirs: one large change, not a steady factor per layer
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.GELU(), nn.Conv1d(16, 32, 5, padding=2), nn.GELU(),
                          nn.Conv1d(32, 32, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                          nn.Linear(32, 2))
    X = torch.randn(256, 1, 96)
    y = (X[:, 0, :48].mean(1) > X[:, 0, 48:].mean(1)).long()
    d = diagnose_training(tmp_path, model, torch.optim.AdamW(model.parameters(), lr=3e-3), X, y, 60)
    assert "vanishing_gradients" not in serious(d), [f.summary for f in d.findings]


@pytest.mark.parametrize("lr, flagged", [(0.1, True), (0.03, False)])
def test_a_loss_that_overshoots_and_recovers_under_hot_steps(tmp_path, digits, lr, flagged):
    # Adam at 0.1: steps rewrite ~40 % of the weights, the loss doubles, then learns anyway;
    # at 0.03 the steps are hot too, but the loss never rises above where it began
    model = mlp(3, nn.ReLU, init=lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    d = diagnose_training(tmp_path, model, torch.optim.Adam(model.parameters(), lr=lr), *digits, 80)
    f = next((f for f in d.findings if f.kind == "learning_rate_too_high"), None)
    assert (f is not None) == flagged, [x.summary for x in d.findings]
    if flagged:
        assert f.first_step == 0 and f.evidence["held_peak_over_initial"] >= 1.5 and d.findings[0] is f


def test_learning_rate_a_thousandth_of_adams_default_is_too_low(tmp_path, digits):
    # Adam's step is ~lr per entry: at lr 1e-6 about 1e-5 of a weight of scale 0.1 — below the
    # band's lower edge 1e-4 on every layer, and the loss does not move beyond its noise
    model = mlp(3, nn.ReLU, init=lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    d = diagnose_training(tmp_path, model, torch.optim.Adam(model.parameters(), lr=1e-6), *digits, 60)
    assert serious(d) == {"learning_rate_too_low"}


@pytest.mark.parametrize("depth, opt", [(6, "adam"), (3, "sgd")])
def test_healthy_relu_nets_are_healthy(tmp_path, digits, depth, opt):
    model = mlp(depth, nn.ReLU, init=lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    o = torch.optim.Adam(model.parameters(), lr=1e-3) if opt == "adam" else \
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    d = diagnose_training(tmp_path, model, o, *digits, 80)
    assert d.verdict == "healthy", [f.summary for f in d.findings]


def test_healthy_lstm_is_healthy(tmp_path):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 32, batch_first=True)
            self.out = nn.Linear(32, 1)

        def forward(self, x):
            return self.out(self.lstm(x)[0][:, -1])

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with gw.watch(model, opt, out=tmp_path, every=5):
        for _ in range(60):  # the adding problem, T = 10
            x = torch.rand(32, 10, 2)
            x[:, :, 1] = 0
            x[:, 0, 1] = x[:, 3, 1] = 1
            y = (x[:, 0, 0] + x[:, 3, 0]).unsqueeze(1)
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    d = gw.diagnose(tmp_path)
    assert d.verdict == "healthy", [f.summary for f in d.findings]


def test_learning_rate_too_high_when_the_loss_leaps_then_settles_where_it_began(tmp_path, digits):
    # RMSprop moves every weight by ~lr per step whatever its gradient: at 50× its usual rate
    # the loss leaps orders of magnitude, the ReLUs die, and the loss falls back to chance
    model = mlp(3, nn.ReLU, width=64)
    d = diagnose_training(tmp_path, model, torch.optim.RMSprop(model.parameters(), lr=0.05), *digits, 120)
    high = [f for f in d.findings if f.kind == "learning_rate_too_high"]
    assert high and high[0].serious, [f.kind for f in d.findings]
