"""Functional activations are seen by the initialisations when an example input is given."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradwatch as gw
from gradwatch.inject import apply_to_model
from gradwatch.probes.traced_activations import traced_following_modules


class FunctionalNet(nn.Module):
    def __init__(self, depth=6, width=256, act="relu"):
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.norm = nn.BatchNorm1d(width)
        self.out = nn.Linear(width, 10)
        self.act = act

    def forward(self, x):
        f = {"relu": F.relu, "tanh": torch.tanh, "leaky": lambda h: F.leaky_relu(h, 0.2)}[self.act]
        h = f(self.norm(self.inp(x)))  # through a BatchNorm, as the module rule allows
        for lin in self.hidden:
            h = f(lin(h))
        return self.out(h)


def test_functional_activations_fill_what_module_order_cannot_see():
    net = FunctionalNet(depth=2)
    follow = traced_following_modules(net, (torch.randn(8, 64),))
    assert {k: type(v).__name__ if v is not None else None for k, v in follow.items()} == \
        {"inp": "ReLU", "hidden.0": "ReLU", "hidden.1": "ReLU", "out": None}
    leaky = traced_following_modules(FunctionalNet(depth=1, act="leaky"), torch.randn(8, 64))
    assert leaky["hidden.0"].negative_slope == 0.2


def test_the_traced_pass_leaves_no_trace_on_training():
    net = FunctionalNet(depth=2)
    net.train()
    mean = net.norm.running_mean.clone()
    x = torch.randn(8, 64)
    state = torch.random.get_rng_state()
    traced_following_modules(net, x)
    assert torch.equal(net.norm.running_mean, mean) and net.norm.num_batches_tracked == 0
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(m.training for m in net.modules())


def test_a_model_that_cannot_run_keeps_the_module_order_answer():
    net = FunctionalNet(depth=1)
    assert traced_following_modules(net, torch.randn(8, 3)) == {"inp": None, "hidden.0": None, "out": None}


@pytest.mark.parametrize("act,gain2", [("relu", 2.0), ("tanh", (5 / 3) ** 2)])
def test_auto_init_with_an_example_gives_the_gain_of_the_functional_activation(act, gain2):
    torch.manual_seed(0)
    net = FunctionalNet(depth=4, act=act)
    x = torch.randn(32, 64)
    gw.init.apply(net, "auto", example=x)
    fan_in = 256
    for lin in net.hidden:
        assert float(lin.weight.std()) == pytest.approx(math.sqrt(gain2 / fan_in), rel=0.05)
    plain = FunctionalNet(depth=4, act=act)
    gw.init.apply(plain, "auto")  # module order alone: a linear output, Xavier gain 1
    assert float(plain.hidden[0].weight.std()) == pytest.approx(math.sqrt(2 / (2 * fan_in)), rel=0.05)


def test_the_injected_he_init_keeps_a_functional_relu_net_alive():
    torch.manual_seed(0)
    net = FunctionalNet(depth=20)
    x = torch.randn(128, 64)
    apply_to_model("use_he_init", net, example=(x,))
    net.eval()
    with torch.no_grad():
        h = F.relu(net.norm(net.inp(x)))
        for lin in net.hidden:
            h = F.relu(lin(h))
    # He keeps the second moment of a ReLU stack; Xavier would halve it 20 times (≈ 1e-6)
    assert 0.1 < float(h.pow(2).mean()) < 10
