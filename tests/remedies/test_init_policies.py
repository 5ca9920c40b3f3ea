"""Init policies: the weights follow the formula's distribution (KS test), orthogonal is
orthogonal, the report says what was touched, and ``auto`` reads the following activation."""

import math

import pytest
import torch
from scipy import stats
from torch import nn

from gradwatch.probes.model_info import following_activation as probe_following
from gradwatch.remedies import init
from gradwatch.remedies.layers import following_activation

FAN_IN, FAN_OUT = 300, 200
ALPHA = 1e-3  # KS significance: a correct formula fails this about once in a thousand runs


def _big():
    return nn.Linear(FAN_IN, FAN_OUT)


def _ks(w: torch.Tensor, dist) -> float:
    return stats.kstest(w.detach().flatten().numpy(), dist.cdf).pvalue


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy, kw, dist", [
    ("normal", {"scale": 0.02}, stats.norm(0, 0.02)),
    ("uniform", {"scale": 0.05}, stats.uniform(-0.05, 0.1)),
    ("xavier_normal", {}, stats.norm(0, math.sqrt(2 / (FAN_IN + FAN_OUT)))),
    ("xavier_normal", {"gain": 5 / 3}, stats.norm(0, 5 / 3 * math.sqrt(2 / (FAN_IN + FAN_OUT)))),
    ("xavier_uniform", {}, stats.uniform(-math.sqrt(6 / (FAN_IN + FAN_OUT)), 2 * math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    ("he_normal", {}, stats.norm(0, math.sqrt(2 / FAN_IN))),
    ("he_normal", {"mode": "fan_out"}, stats.norm(0, math.sqrt(2 / FAN_OUT))),
    ("he_uniform", {"a": 0.2}, stats.uniform(-math.sqrt(2 / 1.04) * math.sqrt(3 / FAN_IN),
                                             2 * math.sqrt(2 / 1.04) * math.sqrt(3 / FAN_IN))),
])
def test_weights_follow_the_formula(policy, kw, dist):
    layer = _big()
    report = init.apply(layer, policy, generator=_gen(), **kw)
    assert _ks(layer.weight, dist) > ALPHA
    assert report.touched == ["weight", "bias"] and torch.count_nonzero(layer.bias) == 0


def test_ks_rejects_the_wrong_formula():
    """The KS check above can fail: Xavier weights are not He-distributed (std ratio √(5/6)…)."""
    layer = _big()
    init.apply(layer, "xavier_normal", generator=_gen())
    assert _ks(layer.weight, stats.norm(0, math.sqrt(2 / FAN_IN))) < ALPHA


def test_conv_fans_include_the_receptive_field():
    conv = nn.Conv2d(16, 32, 5)
    init.apply(conv, "he_normal", generator=_gen())
    assert _ks(conv.weight, stats.norm(0, math.sqrt(2 / (16 * 25)))) > ALPHA


@pytest.mark.parametrize("shape, gain", [((64, 64), 1.0), ((32, 96), 1.7), ((96, 32), 0.5)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(shape, gain):
    layer = nn.Linear(shape[1], shape[0])
    init.apply(layer, "orthogonal", gain=gain)
    w = layer.weight.detach().double()
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    assert torch.allclose(gram, gain ** 2 * torch.eye(min(shape), dtype=torch.float64), atol=1e-5)


def test_auto_reads_the_activation_that_follows_each_layer():
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.Dropout(0.1), nn.LeakyReLU(0.2),
                          nn.Linear(256, 256), nn.BatchNorm1d(256), nn.Tanh(), nn.Linear(256, 256), nn.Sigmoid(),
                          nn.Linear(256, 10))
    report = init.apply(model, "auto", generator=_gen())
    gain_tanh = nn.init.calculate_gain("tanh")
    expected = {
        "0": math.sqrt(2 / 256),
        "2": math.sqrt(2 / (1 + 0.2 ** 2)) / math.sqrt(256),
        "5": gain_tanh * math.sqrt(2 / 512),
        "8": math.sqrt(2 / 512),
        "10": math.sqrt(2 / 266),
    }
    for name, std in expected.items():
        assert _ks(model.get_submodule(name).weight, stats.norm(0, std)) > ALPHA, name
    assert "leaky_relu" in report.rule_of("2.weight") and "a=0.2" in report.rule_of("2.weight")
    assert report.rule_of("5.weight").startswith("xavier_normal_(gain=1.667")
    assert [n for n, _ in report.skipped] == ["6.weight", "6.bias"]  # BatchNorm left alone


def test_following_activation_agrees_with_the_watchers_model_description():
    models = [
        nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2)),
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.MaxPool2d(2), nn.GELU(), nn.Flatten(), nn.Linear(4, 2)),
        nn.Sequential(nn.Sequential(nn.Linear(3, 3), nn.Dropout()), nn.Sequential(nn.Tanh(), nn.Linear(3, 1))),
    ]
    for m in models:
        assert following_activation(m) == probe_following(m)
    assert following_activation(models[1]) == {"0": "gelu", "5": None}


def test_zeros_policy_makes_every_unit_identical():
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
    init.apply(model, "zeros")
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())


def test_bias_option_and_layers_option():
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
    before = model[2].weight.detach().clone()
    old_bias = model[0].bias.detach().clone()
    report = init.apply(model, "he_normal", layers=["0"], bias=None)
    assert report.touched == ["0.weight"]
    assert torch.equal(model[2].weight, before) and torch.equal(model[0].bias, old_bias)
    init.apply(model, "auto", bias=0.1)
    assert torch.allclose(model[2].bias, torch.full((2,), 0.1))


def test_same_generator_same_weights():
    a, b = _big(), _big()
    init.apply(a, "orthogonal", generator=_gen(7))
    init.apply(b, "orthogonal", generator=_gen(7))
    assert torch.equal(a.weight, b.weight)


def test_recurrent_auto_orthogonal_per_gate_and_forget_gate_open():
    lstm = nn.LSTM(6, 16, num_layers=2)
    report = init.apply(lstm, "auto")
    for gate in lstm.weight_hh_l1.detach().view(4, 16, 16):
        assert torch.allclose(gate @ gate.T, torch.eye(16), atol=1e-5)
    b = lstm.bias_ih_l0.detach().view(4, 16)
    assert torch.all(b[1] == 1) and torch.count_nonzero(b[[0, 2, 3]]) == 0
    assert "forget gate 1" in report.rule_of("bias_ih_l0")


def test_attention_in_projection_is_initialised_per_block():
    layer = nn.TransformerEncoderLayer(32, 4, 64)
    report = init.apply(layer, "orthogonal")
    for block in layer.self_attn.in_proj_weight.detach().view(3, 32, 32):
        assert torch.allclose(block @ block.T, torch.eye(32), atol=1e-5)
    assert "self_attn.in_proj_weight" in report.touched


def test_report_is_printable_and_names_every_layer():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    text = str(init.apply(model, "he_normal"))
    for name in ("0.weight", "0.bias", "2.weight", "kaiming_normal_"):
        assert name in text


def test_bad_input_messages_say_what_to_do():
    with pytest.raises(ValueError, match="choose one of"):
        init.apply(nn.Linear(2, 2), "glorot")
    with pytest.raises(ValueError, match="takes no option"):
        init.apply(nn.Linear(2, 2), "orthogonal", scale=2.0)
    with pytest.raises(ValueError, match="data="):
        init.apply(nn.Linear(2, 2), "lsuv")
    with pytest.raises(ValueError, match="named_modules"):
        init.apply(nn.Linear(2, 2), "auto", layers=["fc9"])
