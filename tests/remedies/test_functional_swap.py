"""Functional activations written in forward() are swapped on hidden layers only, and only while
the model runs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.inject import apply_to_model
from gradwatch.remedies import swap_functional_activation


class FunctionalNet(nn.Module):
    def __init__(self, fail=False):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 1)
        self.drop, self.fail = nn.Dropout(0.0), fail

    def forward(self, x):
        h = torch.sigmoid(self.fc1(x))
        h = self.drop(self.fc2(h)).tanh()          # through a pass-through module, Tensor method
        s = F.sigmoid(h.sum(1, keepdim=True))      # not a layer's output: a gate-like use, kept
        if self.fail:
            raise RuntimeError("boom")
        return torch.sigmoid(self.out(h)) * s      # the output layer's sigmoid (for BCE), kept


def test_hidden_calls_become_relu_and_the_rest_stays():
    torch.manual_seed(0)
    net, x = FunctionalNet(), torch.randn(16, 4)
    expect_relu = torch.relu(net.fc2(torch.relu(net.fc1(x))))
    want = torch.sigmoid(net.out(expect_relu)) * torch.sigmoid(expect_relu.sum(1, keepdim=True))
    swap = swap_functional_activation(net)
    try:
        assert torch.allclose(net(x), want)
        assert swap.swapped == ["fc1", "fc2"]
    finally:
        swap.remove()
    h = torch.sigmoid(net.fc1(x)).matmul(net.fc2.weight.T) + net.fc2.bias
    assert not torch.allclose(net(x), want) and torch.allclose(
        net(x), torch.sigmoid(net.out(h.tanh())) * torch.sigmoid(h.tanh().sum(1, keepdim=True)))


def test_outside_the_forward_pass_nothing_is_swapped_even_after_an_exception():
    net = FunctionalNet(fail=True)
    swap = swap_functional_activation(net)
    with pytest.raises(RuntimeError, match="boom"):
        net(torch.randn(2, 4))
    x = torch.tensor([-1.0])
    assert torch.sigmoid(x).item() == pytest.approx(0.2689, abs=1e-4)  # the mode did not leak
    swap.remove()


def test_unknown_activation_name_is_refused():
    with pytest.raises(ValueError, match="unknown functional activation"):
        swap_functional_activation(nn.Linear(2, 2), old=("sigmoidd",))


class DeepFunctionalSigmoid(nn.Module):
    def __init__(self, depth=12, width=16):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        for layer in self.layers:
            x = torch.sigmoid(layer(x))
        return self.head(x)


def _first_to_last_grad(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return float(model.layers[0].weight.grad.norm() / model.layers[-1].weight.grad.norm())


def test_injected_use_relu_with_he_init_reaches_functional_sigmoids_from_the_first_forward():
    # the mechanism the remedy is for: sigmoid's derivative <= 1/4 per layer vanishes the first
    # layer's gradient; ReLU with He init keeps it within a small factor of the last layer's
    torch.manual_seed(0)
    model, x, y = DeepFunctionalSigmoid(), torch.randn(64, 16), torch.randint(0, 3, (64,))
    before = _first_to_last_grad(model, x, y)

    def at_first_forward(module, args):  # where `gradwatch run --remedy` applies a model remedy
        handle.remove()
        apply_to_model("use_relu_with_he_init", module, example=args)

    handle = model.register_forward_pre_hook(at_first_forward)
    after = _first_to_last_grad(model, x, y)  # the first forward pass, already swapped
    assert before < 1e-4 and 0.05 < after < 20, (before, after)
    assert torch.sigmoid(torch.tensor([-1.0])).item() == pytest.approx(0.2689, abs=1e-4)  # swap ended with it
    assert _first_to_last_grad(model, x, y) == pytest.approx(after)  # and is back for the next one
