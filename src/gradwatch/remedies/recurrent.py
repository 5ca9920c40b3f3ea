"""Replace plain RNNs by gated ones of the same size: ``rnn_to_lstm(model, cell="lstm"|"gru")``.

A tanh RNN multiplies the back-propagated error by W_hhᵀ·diag(φ′) at every step, so it
vanishes (or explodes) geometrically in time (Pascanu et al. 2013). The LSTM's cell state is
updated additively through a forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000),
the GRU's hidden state by interpolation (Cho et al. 2014): the error can pass many steps.

The new module keeps the RNN's sizes and options (input/hidden size, layers, bias,
batch_first, dropout, bidirectional, device, dtype). The RNN's weights go into the candidate
block — the LSTM's g gate, the GRU's n gate, which play the RNN's part — the other gates keep
PyTorch's init, and the LSTM's forget-gate bias starts at 1 (Jozefowicz et al. 2015). An
LSTM returns ``(out, (h, c))`` where the RNN returned ``(out, h)``: it is wrapped in
:class:`LSTMAsRNN`, which keeps the RNN's calling convention, so ``forward`` needs no change.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.RNN(3, 8, batch_first=True))
    >>> model = rnn_to_lstm(model, cell="gru")
    >>> out, h = model[0](torch.randn(2, 5, 3))
    >>> type(model[0]).__name__, out.shape, h.shape
    ('GRU', torch.Size([2, 5, 8]), torch.Size([1, 2, 8]))
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import set_module


class LSTMAsRNN(nn.Module):
    """An ``nn.LSTM`` that is called like ``nn.RNN``: ``(x, h0=None) -> (out, h_n)``.

    The cell state starts at zero on every call (an ``h0`` passed in sets the hidden state
    only); the LSTM itself is ``.lstm``.

    Example:
        >>> import torch
        >>> m = LSTMAsRNN(torch.nn.LSTM(3, 4))
        >>> out, h = m(torch.randn(5, 2, 3)); out.shape, h.shape
        (torch.Size([5, 2, 4]), torch.Size([1, 2, 4]))
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x, hx: torch.Tensor | None = None):
        state = None if hx is None else (hx, torch.zeros_like(hx))
        out, (h, _c) = self.lstm(x, state)
        return out, h


def _gated_like(rnn: nn.RNN, cell: str) -> nn.RNNBase:
    p = next(rnn.parameters())
    kw = dict(input_size=rnn.input_size, hidden_size=rnn.hidden_size, num_layers=rnn.num_layers, bias=rnn.bias,
              batch_first=rnn.batch_first, dropout=rnn.dropout, bidirectional=rnn.bidirectional,
              device=p.device, dtype=p.dtype)
    return nn.LSTM(**kw) if cell == "lstm" else nn.GRU(**kw)


@torch.no_grad()
def _carry_weights(rnn: nn.RNN, new: nn.RNNBase, cell: str) -> None:
    gates = 4 if cell == "lstm" else 3
    candidate = 2  # LSTM gates (i, f, g, o), GRU gates (r, z, n)
    for name, p in rnn.named_parameters():
        q = getattr(new, name)
        q.view(gates, -1, *q.shape[1:])[candidate].copy_(p)
    if cell == "lstm" and rnn.bias:
        for name, q in new.named_parameters():
            if name.startswith("bias_ih"):
                q.view(4, -1)[1].fill_(1.0)
            elif name.startswith("bias_hh"):
                q.view(4, -1)[1].zero_()


def rnn_to_lstm(model: nn.Module, cell: str = "lstm", keep_interface: bool = True, inplace: bool = True) -> nn.Module:
    """Replace every ``nn.RNN`` of the model by an ``nn.LSTM`` or ``nn.GRU`` of the same size.

    Args:
        model: the model (or an ``nn.RNN`` itself).
        cell: ``"lstm"`` or ``"gru"``.
        keep_interface: wrap an LSTM in :class:`LSTMAsRNN` so callers still get ``(out, h)``.
        inplace: False works on a deep copy.

    Returns:
        The model, or the new module when ``model`` was the RNN.

    Raises:
        ValueError: an unknown cell, or no ``nn.RNN`` in the model.

    Example:
        >>> m = rnn_to_lstm(nn.Sequential(nn.RNN(3, 8)))
        >>> type(m[0]).__name__, type(m[0].lstm).__name__, m[0].lstm.hidden_size
        ('LSTMAsRNN', 'LSTM', 8)
    """
    from .architecture import RewriteReport, _done

    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
    model = model if inplace else copy.deepcopy(model)
    report = RewriteReport(f"rnn_to_lstm({cell})", kept_weights=False, new_params=True)
    for name, m in list(model.named_modules()):
        if type(m) is not nn.RNN:
            continue
        new = _gated_like(m, cell)
        _carry_weights(m, new, cell)
        if m.nonlinearity != "tanh":
            report.notes.append(f"{name or 'the RNN'} used {m.nonlinearity}; its weights now feed a tanh candidate")
        model = set_module(model, name, LSTMAsRNN(new) if cell == "lstm" and keep_interface else new)
        report.changed.append(name)
    if not report.changed:
        raise ValueError("rnn_to_lstm found no nn.RNN module (RNNCell loops and hand-written recurrences must be "
                         "changed in code)")
    report.notes.append("the RNN's weights are in the candidate gate; the other gates are new")
    return _done(model, report)
