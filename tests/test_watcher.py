import copy

import numpy as np
import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.watcher import WatchError
from gw_test_helpers import train


def sigmoid_mlp(depth=8, width=32, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(64, width), nn.Sigmoid()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def test_records_every_step_and_the_loss(tmp_path, digits):
    X, y = digits
    model = sigmoid_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path, every=5):
        last = train(model, opt, X, y, 12)
    run = gw.load(tmp_path)
    assert list(run.steps.index) == list(range(12))
    assert run.steps.loss.iloc[-1] == pytest.approx(float(last.detach()), rel=1e-6)
    assert run.steps.stats.tolist() == [s % 5 == 0 for s in range(12)]
    g = run.series("grad_norm")
    assert g.shape == (12, len(list(model.parameters())))
    # the global norm is the norm of the per-parameter norms (bf16 storage: ~3 digits)
    assert np.allclose(np.sqrt((g ** 2).sum(axis=1)), run.steps.grad_norm, rtol=1e-2)


def test_delta_shrinks_through_sigmoid_layers(tmp_path, digits):
    X, y = digits
    model = sigmoid_mlp(depth=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path):
        train(model, opt, X, y, 1)
    d = gw.load(tmp_path).series("delta").iloc[0]
    linear = [str(i) for i in range(0, 21, 2)]
    prof = d[linear].to_numpy()
    # each sigmoid layer multiplies δ by σ′ ≤ 1/4 times the weights: far below 1 overall
    assert prof[0] / prof[-1] < 1e-4
    ratios = prof[:-1] / prof[1:]
    assert np.median(ratios) < 0.5


def test_watched_training_is_bit_for_bit_the_same(tmp_path, digits):
    X, y = digits
    a = sigmoid_mlp(depth=4)
    b = copy.deepcopy(a)
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3)
    train(a, opt_a, X, y, 15)
    with gw.watch(b, opt_b, out=tmp_path, every=2, stats="all"):
        train(b, opt_b, X, y, 15)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_detach_removes_every_hook(tmp_path, digits):
    X, y = digits
    model = sigmoid_mlp(depth=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    original_backward = torch.Tensor.backward
    w = gw.watch(model, opt, out=tmp_path, every=1)
    train(model, opt, X, y, 2)
    assert w.hooks > 0
    w.detach()
    assert w.hooks == 0
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    assert torch.Tensor.backward is original_backward
    w.detach()  # twice is fine


def test_update_ratio_matches_sgd_step(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(10, 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(32, 10)
    with gw.watch(model, opt, out=tmp_path, every=1, precision="float32"):
        loss = model(x).pow(2).mean()
        opt.zero_grad(); loss.backward()
        expected = 0.1 * model.weight.grad.norm().item() / model.weight.norm().item()
        opt.step()
    r = gw.load(tmp_path).update_ratio()
    assert r["weight"].iloc[0] == pytest.approx(expected, rel=1e-4)


def test_without_optimizer_a_step_is_a_backward(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    with gw.watch(model, out=tmp_path, every=1) as w:
        for _ in range(3):
            model(torch.randn(8, 4)).sum().backward()
            w.log(loss=1.5)
    run = gw.load(tmp_path)
    assert len(run.steps) == 3 and (run.steps.loss == 1.5).all()


def test_log_attaches_extra_scalars_to_the_step_just_done(tmp_path):
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path) as w:
        for i in range(3):
            loss = model(torch.randn(4, 3)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            w.log(loss=loss, accuracy=i / 10)
    steps = gw.load(tmp_path).steps
    assert [e["accuracy"] for e in steps.extra] == pytest.approx([0.0, 0.1, 0.2])


@pytest.mark.parametrize("flush_seconds", [10.0, 0.0])  # flushes by count, or at every step by the clock
def test_log_after_a_step_that_flushed_still_lands_on_it(tmp_path, flush_seconds):
    # the store's thread makes the rows of what is handed over: the step just recorded stays
    # pending, so w.log() after opt.step() reaches it even when that step triggered a flush
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path, flush_every=2, flush_seconds=flush_seconds) as w:
        for i in range(9):
            loss = model(torch.randn(4, 3)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            w.log(accuracy=i / 10)
            if i == 4:
                w.flush()  # an explicit flush: what follows still lands or is dropped, never a race
    steps = gw.load(tmp_path).steps
    assert list(steps.index) == list(range(9))
    got = [e.get("accuracy") if isinstance(e, dict) else None for e in steps.extra]
    assert got[:4] == pytest.approx([0.0, 0.1, 0.2, 0.3]) and got[5:] == pytest.approx([0.5, 0.6, 0.7, 0.8])


def test_functional_activations_and_rnn_time_are_seen(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(6, 8)
            self.rnn = nn.RNN(8, 8, batch_first=True)
            self.cell = nn.RNNCell(8, 8)
            self.out = nn.Linear(8, 1)

        def forward(self, x):  # x: (N, T, 6)
            h = torch.sigmoid(self.fc1(x))
            seq, _ = self.rnn(h)
            s = torch.zeros(x.shape[0], 8)
            for t in range(seq.shape[1]):
                s = self.cell(seq[:, t], s)
            return self.out(s)

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gw.watch(model, opt, out=tmp_path, every=1):
        for _ in range(2):
            loss = model(torch.randn(4, 12, 6)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    run = gw.load(tmp_path)
    assert "fc1:sigmoid" in set(run.modules.name)
    assert np.isfinite(run.series("act_mean")["fc1:sigmoid"]).all()
    calls = run.calls()
    assert (calls.groupby(["step", "module"]).size().loc[0, "cell"]) == 12
    assert (calls.groupby(["step", "module"]).size().loc[0, "rnn"]) == 12  # one per time step


@pytest.mark.parametrize("bad, message", [
    (lambda: "not a model", "expects a torch.nn.Module"),
    (lambda: nn.ReLU(), "has no parameters"),
    (lambda: nn.Linear(2, 2, device="meta"), "meta device"),
    (lambda: nn.Linear(2, 2).requires_grad_(False), "frozen"),
])
def test_bad_models_get_one_line_errors(tmp_path, bad, message):
    with pytest.raises(WatchError, match=message) as e:
        gw.watch(bad(), out=tmp_path)
    assert "\n" not in str(e.value)


def test_optimizer_of_another_model_is_refused(tmp_path):
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    with pytest.raises(WatchError, match="not in the watched model"):
        gw.watch(a, torch.optim.SGD(b.parameters(), lr=0.1), out=tmp_path)


def test_two_watchers_on_one_model_are_refused(tmp_path):
    m = nn.Linear(2, 2)
    with gw.watch(m, out=tmp_path / "a"):
        with pytest.raises(WatchError, match="already watched"):
            gw.watch(m, out=tmp_path / "b")
    gw.watch(m, out=tmp_path / "c").detach()  # after detach it can be watched again


def test_partly_frozen_sparse_and_low_precision_parameters(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8, sparse=True)
            self.frozen = nn.Linear(8, 8).requires_grad_(False)
            self.low = nn.Linear(8, 1).to(torch.bfloat16)

        def forward(self, idx):
            return self.low(self.frozen(self.emb(idx)).to(torch.bfloat16)).float()

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path, every=1):
        for _ in range(3):
            loss = model(torch.randint(0, 50, (16,))).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    g = gw.load(tmp_path).series("grad_norm")
    assert np.isfinite(g["emb.weight"]).all() and np.isfinite(g["low.weight"]).all()
    assert g["frozen.weight"].isna().all()  # no gradient: missing, not zero


def test_complex_parameters(tmp_path):
    model = nn.Linear(4, 4, dtype=torch.complex64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path, every=1):
        loss = model(torch.randn(3, 4, dtype=torch.complex64)).abs().pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    assert np.isfinite(gw.load(tmp_path).series("grad_norm").to_numpy()).all()


def test_log_between_backward_and_step_lands_on_that_step(tmp_path):
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gw.watch(model, opt, out=tmp_path / "run") as w:
        for i in range(4):
            loss = model(torch.randn(5, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            w.log(accuracy=float(i))  # before opt.step(): belongs to step i
            opt.step()
    steps = gw.load(tmp_path / "run").steps
    assert [e.get("accuracy") for e in steps["extra"]] == [0.0, 1.0, 2.0, 3.0]


def test_two_watched_models_keep_their_own_losses(tmp_path):
    # a GAN-style loop: the discriminator's loss must not reach the generator's record, and the
    # generator's loss (whose graph runs through D) must not be averaged into D's next step
    torch.manual_seed(0)
    G, D = nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 1))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.01), torch.optim.SGD(D.parameters(), lr=0.01)
    want_g, want_d = [], []
    with gw.watch(G, opt_g, out=tmp_path / "g"), gw.watch(D, opt_d, out=tmp_path / "d"):
        for _ in range(6):
            real, z = torch.randn(8, 4) + 2, torch.randn(8, 4)
            opt_d.zero_grad()
            loss_d = D(real).pow(2).mean() + (D(G(z).detach()) - 1).pow(2).mean()
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = D(G(z)).pow(2).mean()
            loss_g.backward()
            opt_g.step()
            want_d.append(loss_d.item())
            want_g.append(loss_g.item())
    np.testing.assert_allclose(gw.load(tmp_path / "d").steps["loss"].to_numpy(), want_d, rtol=1e-6)
    np.testing.assert_allclose(gw.load(tmp_path / "g").steps["loss"].to_numpy(), want_g, rtol=1e-6)
