"""Every prescribed snippet runs: pasted into a script with the user's ``model`` and ``opt``, it
applies its remedy and the model still trains; the snippets name what the recorded model has."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.diagnosis.prescriptions import KNOWN, facts, prescribe

RNN_IDS = {"use_lstm", "use_gru", "irnn_init"}
TRANSFORMER_IDS = {"use_pre_ln"}


class RNNNet(nn.Module):
    def __init__(self, nonlinearity="tanh"):
        super().__init__()
        self.rnn = nn.RNN(3, 8, batch_first=True, nonlinearity=nonlinearity)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.enc(x)[:, 0])


def setup(remedy_id):
    torch.manual_seed(0)
    if remedy_id in RNN_IDS:
        model, x = RNNNet("relu" if remedy_id == "irnn_init" else "tanh"), torch.randn(4, 5, 3)
    elif remedy_id in TRANSFORMER_IDS:
        model, x = TransformerNet(), torch.randn(4, 5, 8)
    elif remedy_id == "fixup_init":  # without a recorded run the snippet finds Residual wrappers
        from gradwatch.remedies import Residual

        block = lambda: Residual(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)))  # noqa: E731
        model, x = nn.Sequential(nn.Linear(6, 8), block(), block(), nn.Linear(8, 2)), torch.randn(4, 6)
    else:
        model = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8),
                              nn.ReLU(), nn.Linear(8, 2))
        x = torch.randn(4, 6)
    y = torch.tensor([0, 1, 0, 1])
    return model, torch.optim.SGD(model.parameters(), lr=0.1), x, y


@pytest.mark.parametrize("remedy_id", KNOWN)
def test_the_snippet_runs_and_the_model_still_trains(remedy_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the guard's snippet writes a run directory
    model, opt, x, y = setup(remedy_id)
    logits = model(x)
    scope = {"torch": torch, "nn": nn, "model": model, "opt": opt, "batches": [(x, y)] * 3,
             "loss_fn": nn.functional.cross_entropy, "logits": logits[:, 0], "y": y.float(), "labels": y}
    exec(prescribe(remedy_id).code, scope)  # noqa: S102 - the snippet is ours, that is the test
    model, opt = scope["model"], scope["opt"]
    assert isinstance(model, nn.Module) and isinstance(opt, torch.optim.Optimizer)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    assert not missing, f"{remedy_id}: parameters the optimizer does not train: {missing}"
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_snippets_name_what_the_recorded_model_has(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(16, 16), nn.Tanh())], nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(32, 16), torch.randint(0, 3, (32,))
    with gw.watch(model, opt, out=tmp_path / "run"):
        for _ in range(20):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    from gradwatch.diagnosis.context import Context

    f = facts(Context(gw.load(tmp_path / "run")))
    assert f["saturating"] == "nn.Tanh"
    assert f["opt_class"] == "torch.optim.SGD"
    assert "0.5 → 0.05" in f["lr_comment"]
    assert f["norm"] == "batch"
    assert "swap_activation(model, nn.Tanh, nn.ReLU)" in prescribe("use_relu_with_he_init", Context(gw.load(tmp_path / "run"))).code
