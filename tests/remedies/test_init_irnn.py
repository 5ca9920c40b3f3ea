"""IRNN (Le et al. 2015): ReLU recurrences start at the identity; the rules prescribe it first."""

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.diagnosis.causes import relu_recurrence_first
from gradwatch.inject import apply_to_model


def test_irnn_sets_identity_and_zero_biases_and_keeps_the_rest():
    torch.manual_seed(0)
    model = nn.ModuleDict({"rnn": nn.RNN(3, 6, num_layers=2, nonlinearity="relu"), "tanh": nn.RNN(3, 6),
                           "head": nn.Linear(6, 1)})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = gw.init.irnn(model)
    for layer in (0, 1):
        assert torch.equal(model["rnn"].get_parameter(f"weight_hh_l{layer}"), torch.eye(6))
        assert not model["rnn"].get_parameter(f"bias_hh_l{layer}").any()
        assert not model["rnn"].get_parameter(f"bias_ih_l{layer}").any()
    unchanged = [n for n in before if "weight_ih" in n or n.startswith(("tanh.", "head."))]
    assert all(torch.equal(before[n], model.get_parameter(n)) for n in unchanged)
    assert {e.param for e in report.entries} == {f"rnn.{k}_l{i}" for k in ("weight_hh", "bias_ih", "bias_hh")
                                                 for i in (0, 1)}


def test_irnn_refuses_a_model_without_a_relu_recurrence():
    with pytest.raises(ValueError, match="nonlinearity='relu'"):
        gw.init.irnn(nn.LSTM(3, 4))


def test_auto_uses_the_identity_for_relu_recurrences_only():
    relu, tanh = nn.RNN(2, 5, nonlinearity="relu"), nn.RNN(2, 5)
    gw.init.apply(relu, "auto")
    gw.init.apply(tanh, "auto")
    assert torch.equal(relu.weight_hh_l0, torch.eye(5))
    w = tanh.weight_hh_l0.detach()
    assert not torch.equal(w, torch.eye(5)) and torch.allclose(w @ w.T, torch.eye(5), atol=1e-5)  # orthogonal


def test_identity_carries_a_relu_state_unchanged_through_time():
    # the mechanism: with W_hh = I, zero biases and no input the state is copied forward exactly
    rnn = nn.RNN(1, 4, nonlinearity="relu", batch_first=True)
    apply_to_model("irnn_init", rnn)
    h0 = torch.rand(1, 1, 4)
    out, h = rnn(torch.zeros(1, 50, 1), h0)
    assert torch.equal(h, h0)


def test_rules_put_irnn_first_for_relu_rnns():
    class Ctx:
        model = {"recurrent": [{"type": "RNN", "nonlinearity": "relu"}]}

    class TanhCtx:
        model = {"recurrent": [{"type": "RNN", "nonlinearity": "tanh"}, {"type": "LSTM", "nonlinearity": "lstm"}]}

    assert relu_recurrence_first(Ctx(), ["clip_grad_norm"]) == ["irnn_init", "clip_grad_norm"]
    assert relu_recurrence_first(TanhCtx(), ["clip_grad_norm"]) == ["clip_grad_norm"]
