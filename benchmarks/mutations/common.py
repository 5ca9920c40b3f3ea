"""Pieces the base models share: bundled and synthetic data, activations, He/Xavier init, losses.

Everything here is ordinary training code of the kind a user writes; the faults in
``faults.py`` change it only through the configuration it reads (``act``, ``loss_impl``,
``init``...) or through the model it builds.

Example:
    >>> xs, ys, xt, yt = digits()
    >>> tuple(xs.shape), int(ys.max())
    ((1400, 64), 9)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: the seed of every data set and train/test split: seeds vary the model and the batches only
DATA_SEED = 1234


def _split(x: torch.Tensor, y: torch.Tensor, n_train: int):
    g = torch.Generator().manual_seed(DATA_SEED)
    idx = torch.randperm(len(x), generator=g)
    return x[idx[:n_train]], y[idx[:n_train]], x[idx[n_train:]], y[idx[n_train:]]


def _standardise(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (x - ref.mean(0)) / ref.std(0).clamp_min(1e-6)


def digits(images: bool = False):
    """scikit-learn's 8×8 digits, pixels in [0, 1]: 1400 train / 397 test (images: N×1×8×8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    if images:
        x = x.view(-1, 1, 8, 8)
    return _split(x, torch.tensor(d.target), 1400)


def tabular(name: str):
    """A bundled tabular set (breast_cancer, wine, diabetes), features standardised on the train part.

    Regression targets (diabetes) are standardised too, so an MSE of 1 is the mean predictor.
    """
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")()
    x = torch.tensor(d.data, dtype=torch.float32)
    y = torch.tensor(d.target)
    y = y.float() if name == "diabetes" else y.long()
    n = int(0.75 * len(x))
    xs, ys, xt, yt = _split(x, y, n)
    xs, xt = _standardise(xs, xs), _standardise(xt, xs)
    if name == "diabetes":
        mu, sd = ys.mean(), ys.std()
        ys, yt = (ys - mu) / sd, (yt - mu) / sd
    return xs, ys, xt, yt


def majority_tokens(n: int = 1600, length: int = 16, vocab: int = 4):
    """Synthetic sequences of ``vocab`` tokens; the label is the token drawn with a raised
    probability (0.4 against 0.2 each): a counting task that needs the whole sequence."""
    g = torch.Generator().manual_seed(DATA_SEED)
    label = torch.randint(0, vocab, (n,), generator=g)
    probs = torch.full((n, vocab), (1 - 0.4) / (vocab - 1))
    probs[torch.arange(n), label] = 0.4
    tokens = torch.multinomial(probs, length, replacement=True, generator=g)
    return _split(tokens, label, int(0.8 * n))


def text_corpus() -> str:
    """English text shipped with scikit-learn: the descriptions of its data sets (~100 kB),
    lower-cased, letters, space, full stop, comma and newline only."""
    import re
    from pathlib import Path

    import sklearn.datasets as ds

    descr = sorted((Path(ds.__file__).parent / "descr").glob("*.rst"))
    text = "\n".join(p.read_text() for p in descr).lower()
    return re.sub(r" +", " ", re.sub(r"[^a-z .,\n]", " ", text))


def char_windows(length: int = 32):
    """The corpus as (input, next-character) windows: (tokens N×T, targets N×T, vocab size)."""
    text = text_corpus()
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    n = (len(ids) - 1) // length
    x = ids[: n * length].view(n, length)
    y = ids[1: n * length + 1].view(n, length)
    return x, y, len(chars)


def ring_of_gaussians(n: int = 2048, modes: int = 8, radius: float = 2.0, sd: float = 0.05):
    """Points from ``modes`` Gaussians on a circle, the classic 2-D GAN target."""
    g = torch.Generator().manual_seed(DATA_SEED)
    k = torch.randint(0, modes, (n,), generator=g).float()
    centre = torch.stack([torch.cos(2 * math.pi * k / modes), torch.sin(2 * math.pi * k / modes)], 1) * radius
    return centre + sd * torch.randn(n, 2, generator=g)


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (relu, tanh, sigmoid, gelu)."""
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[name]()


def init_(model: nn.Module, scheme: str) -> nn.Module:
    """He (``he``, for ReLU networks; He et al. 2015) or Xavier (``xavier``, for tanh;
    Glorot & Bengio 2010) normal init of every Linear/Conv weight, zero biases; recurrent
    weights: Xavier for the input, orthogonal for the recurrence (Saxe et al. 2014)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_normal_(p)
                elif name.startswith("weight_hh"):
                    for block in p.data.split(m.hidden_size, 0):
                        nn.init.orthogonal_(block)
                else:
                    nn.init.zeros_(p)
    return model


def class_loss(logits: torch.Tensor, y: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """Cross-entropy over the last dimension.

    ``impl="manual"`` is the hand-written form seen in the wild: binary cross-entropy of the
    softmax probabilities against one-hot targets, ``-(t·log p + (1−t)·log(1−p))``. In fp32
    ``p`` rounds to exactly 1 (or 0) once a logit leads the others by ~17 (or trails by ~104),
    and ``0·log 0`` is NaN.
    """
    logits = logits.reshape(-1, logits.shape[-1])
    y = y.reshape(-1)
    if impl == "torch":
        return F.cross_entropy(logits, y)
    p = torch.softmax(logits, -1)
    t = F.one_hot(y, logits.shape[-1]).float()
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).sum(-1).mean()


def binary_loss(logit: torch.Tensor, y: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """Binary cross-entropy of a logit; ``impl="manual"`` writes it through ``sigmoid`` and
    ``log``, which gives ``0·log 0`` = NaN once σ(z) rounds to 0 or 1 (|z| ≳ 17 in fp32)."""
    logit, y = logit.reshape(-1), y.reshape(-1).float()
    if impl == "torch":
        return F.binary_cross_entropy_with_logits(logit, y)
    p = torch.sigmoid(logit)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
