"""The gradient through time is the recurrence's per-step gain over the sequence, not where the
loss enters: real recurrent models, trained under the watcher, diagnosed from the record."""

import inspect
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import gradwatch as gw
from gradwatch.probes.modules import ModuleProbe


def through_time(d):
    return [f for f in d.findings if f.evidence.get("measured") == "through_time"]


def scaled_hh(module, radius):
    """Recurrent weights orthogonal × ``radius`` (every singular value = the spectral radius)."""
    with torch.no_grad():
        for name, w in module.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(w)
                w.mul_(radius)
    return module


# ------------------------------------------------------------ a character-level language model

TEXT = inspect.getsource(textwrap)  # text shipped with Python itself


class CharLM(nn.Module):
    """Embedding → fused RNN/GRU (or a cell called per step) → logits at every time step."""

    def __init__(self, vocab, kind, hidden=64):
        super().__init__()
        self.kind = kind
        self.emb = nn.Embedding(vocab, 16)
        if kind in ("RNN", "GRU"):
            self.rnn = getattr(nn, kind)(16, hidden, batch_first=True)
        else:
            self.cell = getattr(nn, kind)(16, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx):
        x = self.emb(idx)
        if self.kind in ("RNN", "GRU"):
            out, _ = self.rnn(x)
        else:
            h, outs = x.new_zeros(x.shape[0], self.cell.hidden_size), []
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
                outs.append(h)
            out = torch.stack(outs, 1)
        return self.head(out)


def train_char_lm(tmp_path, kind, steps=30, T=40, B=16, ignored=0.3):
    """A loss at every time step; the last ``ignored`` of the positions are padding
    (``ignore_index=-1``), so the last states get no gradient from the loss at all."""
    torch.manual_seed(0)
    chars = sorted(set(TEXT))
    data = torch.tensor([chars.index(c) for c in TEXT])
    model = CharLM(len(chars), kind)
    if kind == "RNN":
        scaled_hh(model.rnn, 1.0)  # the usual healthy tanh RNN: orthogonal recurrent weights
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    pad = int(T * ignored)
    with gw.watch(model, opt, out=tmp_path, every=5):
        for _ in range(steps):
            start = torch.randint(0, len(data) - T - 1, (B,), generator=gen)
            seq = torch.stack([data[s:s + T + 1] for s in start])
            x, y = seq[:, :-1], seq[:, 1:].clone()
            y[:, T - pad:] = -1
            loss = nn.functional.cross_entropy(model(x).reshape(-1, len(chars)), y.reshape(-1), ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return gw.load(tmp_path), gw.diagnose(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind, module", [("GRU", "rnn"), ("RNN", "rnn"), ("GRUCell", "cell")])
def test_a_healthy_char_lm_with_a_padded_tail_has_no_through_time_finding(tmp_path, kind, module):
    run, d = train_char_lm(tmp_path, kind)
    # the trap: the gradient that the loss leaves at the sequence's end is zero (or ~1e-40)
    calls = run.calls()
    first = calls[(calls.module == module) & (calls.step == 0)].sort_values("call")["delta"].to_numpy()
    assert first[-1] < 1e-3 * first[0]
    assert not through_time(d), [f.summary for f in through_time(d)]
    assert "exploding_gradients" not in {f.kind for f in d.findings}
    gain = run.series("time_gain")[module].dropna()
    assert len(gain) >= 5 and ((gain > 0.1) & (gain < 1.5)).all(), gain.tolist()


# ------------------------------------------------------------ pathological recurrences


class SeqRegressor(nn.Module):
    """A fused tanh RNN, or an RNNCell called per step, read out from its last state."""

    def __init__(self, radius, fused, hidden=32, bias=True):
        super().__init__()
        self.fused = fused
        if fused:
            self.rnn = scaled_hh(nn.RNN(2, hidden, batch_first=True, bias=bias), radius)
        else:
            self.cell = scaled_hh(nn.RNNCell(2, hidden, bias=bias), radius)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        if self.fused:
            return self.out(self.rnn(x)[0][:, -1])
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.out(h)


def train_regressor(tmp_path, model, T, scale, steps=12):
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)  # small steps: the init's gain is what is judged
    gen = torch.Generator().manual_seed(0)
    with gw.watch(model, opt, out=tmp_path, every=4):
        for _ in range(steps):
            x = torch.randn(32, T, 2, generator=gen) * scale
            y = x[:, :, 0].sum(1, keepdim=True)
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return gw.diagnose(tmp_path)


@pytest.mark.parametrize("fused", [True, False], ids=["nn.RNN", "RNNCell"])
def test_spectral_radius_three_explodes_through_time(tmp_path, fused):
    # short sequences of small inputs, no bias: the states stay in tanh's linear part, so the
    # gradient grows ~3× per step back in time: ~3^9 over 10 steps
    torch.manual_seed(0)
    d = train_regressor(tmp_path, SeqRegressor(3.0, fused, bias=False), T=10, scale=1e-4)
    found = [f for f in through_time(d) if f.kind == "exploding_gradients"]
    assert found, [f.summary for f in d.findings]
    e = found[0].evidence
    assert 2.5 < e["gain_per_step"] < 3.05 and e["sequence_length"] == 10
    assert e["gain_over_sequence"] >= 1e3 and found[0].layers == ["rnn" if fused else "cell"]
    assert found[0].first_step == 0


@pytest.mark.parametrize("fused", [True, False], ids=["nn.RNN", "RNNCell"])
def test_spectral_radius_three_tenths_vanishes_over_a_hundred_steps(tmp_path, fused):
    torch.manual_seed(0)
    d = train_regressor(tmp_path, SeqRegressor(0.3, fused), T=100, scale=1.0, steps=5)
    found = [f for f in through_time(d) if f.kind == "vanishing_gradients"]
    assert found, [f.summary for f in d.findings]
    e = found[0].evidence
    assert e["gain_per_step"] <= 0.3 + 1e-3 and e["sequence_length"] == 100
    assert e["gain_over_sequence"] < 1e-30 and e["first_inputs_grad_vs_peak"] < 1e-3
    assert found[0].severity == "critical"


def test_the_same_vanishing_recurrence_with_a_loss_at_every_step_is_not_starved(tmp_path):
    # the gain is a property of the recurrence (0.3 per step in both runs); a loss next to every
    # input teaches each one, so only the run with a single loss at the end is starved
    torch.manual_seed(0)
    model = SeqRegressor(0.3, fused=True)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    with gw.watch(model, opt, out=tmp_path, every=2):
        for _ in range(4):
            x = torch.randn(16, 100, 2)
            loss = model.out(model.rnn(x)[0]).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    run, d = gw.load(tmp_path), gw.diagnose(tmp_path)
    assert float(run.series("time_gain")["rnn"].median()) < 0.31
    assert not [f for f in through_time(d) if f.kind == "vanishing_gradients"]


# ------------------------------------------------------------ the measured gain itself


class LinearCell(nn.Module):
    """h_t = W h_{t−1} + U x_t, no nonlinearity: ∂h_t/∂h_{t−1} = W at every step."""

    def __init__(self, W):
        super().__init__()
        self.W = nn.Linear(W.shape[0], W.shape[0], bias=False)
        self.U = nn.Linear(3, W.shape[0])
        with torch.no_grad():
            self.W.weight.copy_(W)

    def forward(self, x, h):
        return self.W(h) + self.U(x)


class Loop(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, h):
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return h


def probe_gain(model, run):
    probe = ModuleProbe(model)
    probe.arm()
    try:
        run()
        vectors, _ = probe.collect()
    finally:
        probe.disarm()
    names = [e["name"] for e in probe.entries]
    gains = vectors.get("time_gain", torch.tensor([]))
    return {names[i]: float(v) for i, v in enumerate(gains) if np.isfinite(float(v))}


@pytest.mark.parametrize("a", [0.5, 0.9, 1.7])
def test_a_linear_cell_with_w_equal_a_identity_has_gain_a_exactly(a):
    torch.manual_seed(0)
    model = Loop(LinearCell(a * torch.eye(8)))
    x = torch.randn(4, 12, 3)
    # a loss at every step, and none on the last three: the gain is still a
    gain = probe_gain(model, lambda: sum(model(x[:, :t], torch.zeros(4, 8)).pow(2).sum() for t in (3, 9)).backward())
    assert gain["cell"] == pytest.approx(a, rel=1e-5)


def test_a_linear_cell_gain_telescopes_to_the_analytic_product():
    # with one loss at the end, the product of the per-step gains is ‖(Wᵀ)^(T−1) c‖ / ‖c‖ exactly
    torch.manual_seed(1)
    W = torch.randn(6, 6) / 6 ** 0.5
    c = torch.randn(6)
    model, T = Loop(LinearCell(W)), 9
    x = torch.randn(1, T, 3)
    h0 = torch.zeros(1, 6)  # no gradient into h0: T − 1 steps are measured
    gain = probe_gain(model, lambda: (model(x, h0) @ c).sum().backward())["cell"]
    analytic = torch.linalg.vector_norm(torch.linalg.matrix_power(W.T, T - 1) @ c) / torch.linalg.vector_norm(c)
    assert gain ** (T - 1) == pytest.approx(float(analytic), rel=1e-4)


@pytest.mark.parametrize("a", [0.6, 1.3])
def test_a_fused_relu_rnn_with_w_equal_a_identity_has_gain_a_exactly(a):
    rnn = nn.RNN(3, 8, nonlinearity="relu", batch_first=True)
    with torch.no_grad():  # positive inputs, weights and biases: every ReLU is active, J = a·I
        rnn.weight_hh_l0.copy_(a * torch.eye(8))
        rnn.weight_ih_l0.uniform_(0.1, 1.0)
        rnn.bias_ih_l0.fill_(0.1)
        rnn.bias_hh_l0.zero_()
    x = torch.rand(5, 20, 3)
    gain = probe_gain(rnn, lambda: rnn(x)[0][:, :7].sum().backward())  # loss on the first 7 steps only
    assert gain[""] == pytest.approx(a, rel=1e-5)


def test_the_probe_changes_no_gradient_no_delta_and_no_random_stream():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 8, num_layers=2, batch_first=True)
            self.cell = LinearCell(0.5 * torch.eye(8))
            self.lstm_cell = nn.LSTMCell(3, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            y, _ = self.rnn(x)
            h, hc = torch.zeros(x.shape[0], 8), (torch.zeros(x.shape[0], 8),) * 2
            for t in range(x.shape[1]):
                h = self.cell(x[:, t, :3], h)
                hc = self.lstm_cell(x[:, t, :3], hc)
            return self.out(y[:, -1] + h + hc[0])

    def run(measure):
        torch.manual_seed(0)
        model, x = Net(), torch.randn(5, 9, 4)
        probe = ModuleProbe(model)
        if not measure:  # the same probe with the recurrence measurements switched off
            probe._rec.before = lambda *a: None
            probe._rec.after = lambda *a: None
            probe._rec.fused_state = lambda mid, m, args, kwargs: (args, kwargs)
        probe.arm()
        model(x).pow(2).sum().backward()
        vectors, calls = probe.collect()
        probe.disarm()
        return vectors, dict(calls), {n: p.grad for n, p in model.named_parameters()}, torch.rand(3)

    a, b = run(True), run(False)
    assert torch.equal(a[0]["delta"].nan_to_num(-1), b[0]["delta"].nan_to_num(-1))
    # per-call records: the same, except that a cell's are taken at its whole state ((h, c) for
    # the LSTM cell) rather than at its first output
    rnn, cell, linear_w, linear_u, lstm_cell = 1, 2, 3, 4, 5
    assert a[1].keys() == b[1].keys()
    assert all(torch.equal(a[1][k], b[1][k]) for k in (rnn, linear_w, linear_u))
    assert torch.allclose(a[1][cell], b[1][cell], rtol=1e-5)
    assert (a[1][lstm_cell] >= b[1][lstm_cell] * (1 - 1e-5)).all()
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])
    assert torch.equal(a[3], b[3])
    assert int(torch.isfinite(a[0]["time_gain"]).sum()) == 3 and "time_gain" not in b[0]


@pytest.mark.parametrize("case", ["packed", "bidirectional", "proj_size", "unbatched", "hx", "hx_keyword",
                                  "hx_requires_grad", "eval_no_grad"])
def test_fused_rnns_in_every_form_are_measured_or_left_alone(case):
    torch.manual_seed(0)
    x = torch.randn(5, 10, 4)
    lengths = torch.tensor([10, 3, 7, 10, 1])
    rnn = {"bidirectional": nn.GRU(4, 16, num_layers=2, batch_first=True, bidirectional=True),
           "proj_size": nn.LSTM(4, 16, proj_size=8, batch_first=True),
           "packed": nn.LSTM(4, 16, batch_first=True, bidirectional=True)}.get(case, nn.LSTM(4, 16, batch_first=True))
    state = (torch.zeros(1, 5, 16), torch.zeros(1, 5, 16))
    calls = {
        "packed": lambda: rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[0].data,
        "unbatched": lambda: rnn(x[0])[0],
        "hx": lambda: rnn(x, state)[0],
        "hx_keyword": lambda: rnn(x, hx=state)[0],
        "hx_requires_grad": lambda: rnn(x, tuple(s.requires_grad_() for s in state))[0],
    }
    def go():
        if case == "eval_no_grad":
            with torch.no_grad():
                rnn(x)
            return
        out = calls.get(case, lambda: rnn(x)[0])()
        out.pow(2).sum().backward()
    gain = probe_gain(rnn, go)
    if case == "eval_no_grad":
        assert gain == {}
    else:
        assert 0.05 < gain[""] < 1.0  # PyTorch's default init forgets: a gain below 1 per step


# ------------------------------------------------------------ the loops real code writes


class TutorialRNN(nn.Module):
    """The hand-written RNN of PyTorch's name-classification tutorial: called once per character
    by the training loop, it returns (output, hidden) and takes hidden back."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.hidden = hidden
        self.i2h = nn.Linear(n_in + hidden, hidden)
        self.i2o = nn.Linear(n_in + hidden, n_out)

    def forward(self, x, h):
        both = torch.cat((x, h), 1)
        return torch.log_softmax(self.i2o(both), 1), torch.tanh(self.i2h(both))


def test_a_module_fed_its_own_output_is_a_recurrence_whose_length_is_its_calls(tmp_path):
    torch.manual_seed(0)
    rnn = TutorialRNN(5, 16, 3)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.005)
    with gw.watch(rnn, opt, out=tmp_path, every=2):
        for _ in range(6):  # two sequences per step (accumulated), 12 characters each
            opt.zero_grad()
            for _ in range(2):
                h = torch.zeros(1, 16)
                for t in range(12):
                    out, h = rnn(torch.randn(1, 5), h)
                nn.functional.nll_loss(out, torch.tensor([1])).backward()
            opt.step()
    from gradwatch.diagnosis.context import Context
    from gradwatch.diagnosis.flow import through_time as spans

    (span,) = spans(Context(gw.load(tmp_path)))
    assert span.module == "" and set(span.lengths) == {12}  # two sequences of 12 calls each step
    assert all(0.05 < 10 ** g < 1.5 for g in span.logs)


def test_a_decoder_loop_of_one_step_gru_calls_is_measured_call_by_call(tmp_path):
    # seq2seq decoders call a fused GRU once per output token, on a sequence of length 1
    torch.manual_seed(0)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = scaled_hh(nn.GRU(4, 32, batch_first=True), 1.0)
            self.out = nn.Linear(32, 4)

        def forward(self, h, steps=20):
            x, outs = torch.zeros(h.shape[1], 1, 4), []
            for _ in range(steps):
                y, h = self.gru(x, h)
                x = torch.softmax(self.out(y), -1)
                outs.append(x)
            return torch.cat(outs, 1)

    model = Decoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=tmp_path, every=2):
        for _ in range(4):
            loss = model(torch.randn(1, 8, 32)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    from gradwatch.diagnosis.context import Context
    from gradwatch.diagnosis.flow import through_time as spans

    (span,) = spans(Context(gw.load(tmp_path)))
    assert span.module == "gru" and set(span.lengths) == {20}
    assert all(0.05 < 10 ** g < 1.5 for g in span.logs)


def test_a_state_changed_in_place_after_the_cell_trains_exactly_as_without_the_probe():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.out = nn.GRUCell(3, 8), nn.Linear(8, 1)

        def forward(self, x):
            h = torch.zeros(x.shape[0], 8)
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
                h[:, 0] = 0.0  # e.g. a reset of finished episodes
            return self.out(h)

    def run(measure):
        torch.manual_seed(0)
        model, x = Net(), torch.randn(4, 6, 3)
        probe = ModuleProbe(model)
        if not measure:
            probe._rec.before = lambda *a: None
            probe._rec.after = lambda *a: None
        probe.arm()
        model(x).pow(2).sum().backward()
        vectors, _ = probe.collect()
        probe.disarm()
        return vectors, {n: p.grad for n, p in model.named_parameters()}

    (va, ga), (vb, gb) = run(True), run(False)
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert torch.equal(va["delta"].nan_to_num(-1), vb["delta"].nan_to_num(-1))
    assert 0 < float(va["time_gain"][1]) < 1.5


@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_still_trains_exactly_as_without_the_probe(reentrant):
    # checkpointing re-runs the forward in the backward pass and insists it saves the same
    # tensors: nothing is measured inside it
    from torch.utils.checkpoint import checkpoint

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.cell, self.out = nn.GRU(3, 8, batch_first=True), nn.GRUCell(3, 8), nn.Linear(8, 1)

        def loop(self, x):
            h = torch.zeros(x.shape[0], 8)
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
            return h

        def forward(self, x):
            y = checkpoint(lambda z: self.gru(z)[0][:, -1], x, use_reentrant=reentrant)
            return self.out(y + checkpoint(self.loop, x, use_reentrant=reentrant))

    def run(measure):
        torch.manual_seed(0)
        model, x = Net(), torch.randn(4, 6, 3, requires_grad=reentrant)
        probe = ModuleProbe(model)
        if not measure:
            probe._rec.before = lambda *a: None
            probe._rec.after = lambda *a: None
            probe._rec.fused_state = lambda mid, m, args, kwargs: (args, kwargs)
        probe.arm()
        model(x).pow(2).sum().backward()
        probe.collect()
        probe.disarm()
        return {n: p.grad for n, p in model.named_parameters()}

    a, b = run(True), run(False)
    assert all(torch.equal(a[k], b[k]) for k in a)
