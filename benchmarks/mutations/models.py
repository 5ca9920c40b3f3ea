"""The layers of the base models, written as a user would: each reads its shape, activation
and normalisation from the base's configuration, so a fault that rewrites the configuration
(``act``, ``depth``, ``norm``, ``norm_first``) rebuilds the same model with that one change.

Example:
    >>> m = MLP(64, 10, width=32, depth=2, act="relu")
    >>> m(torch.zeros(3, 64)).shape
    torch.Size([3, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from .common import activation


def _norm1d(kind: str | None, width: int) -> nn.Module:
    return {None: nn.Identity, "bn": nn.BatchNorm1d, "ln": nn.LayerNorm}[kind](width) if kind else nn.Identity()


class MLP(nn.Sequential):
    """``depth`` hidden layers of ``width`` units: Linear → [norm] → activation, then a Linear head."""

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, act: str, norm: str | None = None):
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(d_in if i == 0 else width, width)]
            if norm:
                layers += [_norm1d(norm, width)]
            layers += [activation(act)]
        layers += [nn.Linear(width if depth else d_in, d_out)]
        super().__init__(*layers)


class CNN(nn.Module):
    """``depth`` 3×3 convolutions (``channels`` each) with ReLU-like activations, a 2×2 max-pool
    after the first, then a linear head on the flattened 4×4 map (8×8 digits)."""

    def __init__(self, channels: int, depth: int, act: str, classes: int = 10):
        super().__init__()
        convs: list[nn.Module] = []
        for i in range(depth):
            convs += [nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1), activation(act)]
            if i == 0:
                convs += [nn.MaxPool2d(2)]
        self.features = nn.Sequential(*convs)
        self.head = nn.Linear(channels * 16, classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """conv → [BN] → act → conv → [BN], plus the identity, then act (He et al. 2016)."""

    def __init__(self, channels: int, act: str, norm: str | None):
        super().__init__()
        bias = norm is None
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.act1 = activation(act)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.act2 = activation(act)

    def forward(self, x):
        h = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(h)) + x)


class ResNet(nn.Module):
    """A stem convolution, ``depth`` basic blocks, global average pooling, a linear head."""

    def __init__(self, channels: int, depth: int, act: str, norm: str | None, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1, bias=norm is None)
        self.bn = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.act = activation(act)
        self.blocks = nn.Sequential(*[BasicBlock(channels, act, norm) for _ in range(depth)])
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        h = self.blocks(self.act(self.bn(self.stem(x))))
        return self.head(h.mean((2, 3)))


class Conv1dNet(nn.Module):
    """One-hot tokens → ``depth`` 1-D convolutions (kernel 5) → global max-pool → linear head."""

    def __init__(self, vocab: int, channels: int, depth: int, act: str, classes: int):
        super().__init__()
        self.vocab = vocab
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv1d(vocab if i == 0 else channels, channels, 5, padding=2), activation(act)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, tokens):
        x = nn.functional.one_hot(tokens, self.vocab).float().transpose(1, 2)
        return self.head(self.features(x).amax(2))


class RecurrentClassifier(nn.Module):
    """One-hot tokens → ``nn.RNN``/``LSTM``/``GRU`` (``depth`` layers) → linear head on the last state."""

    def __init__(self, cell: str, vocab: int, hidden: int, depth: int, classes: int):
        super().__init__()
        self.vocab = vocab
        self.rnn = getattr(nn, cell)(vocab, hidden, num_layers=depth, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        out, _ = self.rnn(nn.functional.one_hot(tokens, self.vocab).float())
        return self.head(out[:, -1])


class CharRNN(nn.Module):
    """Embedding → recurrent layers → linear head on every position (a character language model)."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int, depth: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = getattr(nn, cell)(embed, hidden, num_layers=depth, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


class Block(nn.Module):
    """A transformer block: pre-LN (``norm_first``; Xiong et al. 2020) or post-LN (Vaswani et al.
    2017); ``norm=None`` leaves the normalisation out."""

    def __init__(self, d: int, heads: int, ff: int, act: str, norm: str | None, norm_first: bool):
        super().__init__()
        self.norm_first = norm_first
        self.ln1 = nn.LayerNorm(d) if norm else nn.Identity()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d) if norm else nn.Identity()
        self.ff = nn.Sequential(nn.Linear(d, ff), activation(act), nn.Linear(ff, d))

    def forward(self, x, mask=None):
        if self.norm_first:
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.ff(self.ln2(x))
        x = self.ln1(x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0])
        return self.ln2(x + self.ff(x))


class Transformer(nn.Module):
    """Token + learned position embeddings, ``depth`` blocks; ``causal``: a next-token head on every
    position (a decoder-only language model), else mean-pooled into a classifier head."""

    def __init__(self, vocab: int, length: int, d: int, heads: int, ff: int, depth: int, act: str,
                 norm: str | None, norm_first: bool, causal: bool, classes: int | None = None):
        super().__init__()
        self.causal = causal
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads, ff, act, norm, norm_first) for _ in range(depth)])
        self.norm = nn.LayerNorm(d) if norm and norm_first else nn.Identity()
        self.head = nn.Linear(d, vocab if causal else classes)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos[:, :t]
        mask = torch.triu(torch.full((t, t), float("-inf")), 1) if self.causal else None
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        return self.head(x if self.causal else x.mean(1))
