"""Architecture rewrites: the change is made, weights are kept where promised, the output
keeps its shape, and the rewritten model trains."""

import copy

import pytest
import torch
from scipy import stats
from torch import nn

from gradwatch.remedies.architecture import (LSTMAsRNN, add_residual, insert_norm, rewrites, rnn_to_lstm,
                                             swap_activation, use_pre_ln)
from gradwatch.remedies.residual import Residual, ReZero


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid())
        self.act = nn.Sigmoid()
        self.head = nn.Linear(64, 3)

    def forward(self, x):
        return self.head(self.act(self.body(x)))


def test_swap_keeps_weights_without_reinit():
    model = Net()
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = {n: id(p) for n, p in model.named_parameters()}
    out = swap_activation(model, nn.Sigmoid, nn.ReLU, reinit=False)
    assert out is model and not any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 3
    assert all(torch.equal(weights[n], p) and ids[n] == id(p) for n, p in model.named_parameters())
    assert rewrites(model)[-1].changed == ["body.1", "body.3", "act"]


def test_swap_with_reinit_gives_the_layers_before_he_init():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 10))
    head = model[2].weight.detach().clone()
    swap_activation(model, nn.Tanh, nn.ReLU)
    assert stats.kstest(model[0].weight.detach().flatten().numpy(), stats.norm(0, (2 / 200) ** 0.5).cdf).pvalue > 1e-3
    assert torch.equal(model[2].weight, head)                 # not before a swapped activation
    assert not rewrites(model)[-1].kept_weights


def test_swap_copies_an_instance_per_site_and_can_work_on_a_copy():
    model = Net()
    new = swap_activation(model, nn.Sigmoid, nn.LeakyReLU(0.1), inplace=False)
    assert any(isinstance(m, nn.Sigmoid) for m in model.modules())     # the original is untouched
    leaky = [m for m in new.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 3 and len({id(m) for m in leaky}) == 3 and leaky[0].negative_slope == 0.1
    assert isinstance(swap_activation(nn.Sigmoid(), nn.Sigmoid, nn.GELU), nn.GELU)   # the root itself


def test_insert_norm_after_every_hidden_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    w0 = model[0].weight
    insert_norm(model, norm="batch")
    assert isinstance(model[0][1], nn.BatchNorm1d) and isinstance(model[2][1], nn.BatchNorm1d)
    assert isinstance(model[4], nn.Linear)                    # the output layer is left alone
    assert model[0][0].weight is w0
    out = model(torch.randn(8, 4))
    assert out.shape == (8, 3)
    insert_norm(model, norm="batch")                          # already normalised: nothing doubles
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2


def test_insert_layer_norm_after_named_conv():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    insert_norm(model, after=["0"], norm="layer")
    assert isinstance(model[0][1], nn.GroupNorm) and model[0][1].num_groups == 1
    assert model(torch.randn(2, 1, 5, 5)).shape == (2, 2)
    with pytest.raises(ValueError, match="not Linear/Conv"):
        insert_norm(model, after=["1"])


def test_add_residual_wraps_same_shape_blocks_and_keeps_the_output_shape():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.Dropout(0.0), nn.ReLU(),
                          nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    x = torch.randn(6, 4)
    ids = {id(p) for p in model.parameters()}
    add_residual(model)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Residual", "Residual", "Linear"]
    assert {id(p) for p in model.parameters()} == ids
    assert model(x).shape == (6, 2)
    with torch.no_grad():
        h = model[1](model[0](x))
        assert torch.allclose(model[2](h), h + model[2].fn(h))
    with pytest.raises(ValueError, match="same-shape"):
        add_residual(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))


def test_add_residual_conv_blocks_and_rezero_wrapper():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                          nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
    add_residual(model, wrapper=ReZero)
    assert [type(m).__name__ for m in model] == ["Conv2d", "ReLU", "ReZero", "Conv2d", "ReLU"]
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 8, 4, 4)
    assert rewrites(model)[-1].new_params


def test_use_pre_ln_equals_a_pre_ln_layer_with_the_same_weights():
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2,
                                enable_nested_tensor=False)
    ref = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
    use_pre_ln(enc)
    ref.load_state_dict(enc.layers[0].state_dict())
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        assert torch.allclose(enc.layers[0](x), ref(x), atol=1e-6)
        assert isinstance(enc.norm, nn.LayerNorm) and enc(x).shape == x.shape
    assert rewrites(enc)[-1].changed == ["layers.0", "layers.1"]
    with pytest.raises(ValueError, match="TransformerEncoderLayer"):
        use_pre_ln(nn.Linear(2, 2))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_to_gated_keeps_sizes_and_interface_and_trains(cell):
    torch.manual_seed(0)

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(3, 12, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(24, 1)

        def forward(self, x):
            out, h = self.rnn(x)
            return self.head(out[:, -1]) + 0 * h.sum()

    model = Seq()
    old = model.rnn.weight_hh_l1.detach().clone()
    rnn_to_lstm(model, cell=cell)
    gated = model.rnn.lstm if cell == "lstm" else model.rnn
    assert isinstance(model.rnn, LSTMAsRNN if cell == "lstm" else nn.GRU)
    assert (gated.hidden_size, gated.num_layers, gated.batch_first, gated.bidirectional) == (12, 2, True, True)
    gates = 4 if cell == "lstm" else 3
    assert torch.equal(gated.weight_hh_l1.detach().view(gates, 12, 12)[2], old)
    x, y = torch.randn(8, 7, 3), torch.randn(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = copy.deepcopy(model.state_dict())
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    loss = float(loss.detach())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert float(nn.functional.mse_loss(model(x), y)) < loss


def test_rnn_to_lstm_on_a_bare_rnn_and_without_one():
    new = rnn_to_lstm(nn.RNN(2, 4), cell="lstm", keep_interface=False)
    assert isinstance(new, nn.LSTM)
    with pytest.raises(ValueError, match="no nn.RNN"):
        rnn_to_lstm(nn.LSTM(2, 4))
