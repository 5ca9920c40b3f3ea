"""Bundled data sets for the lab (no downloads): digits and breast cancer from scikit-learn.

Splits are stratified and fixed (``random_state=0``) so every experiment and every seed sees
the same train/test sets; seeds change initialisation and batch order only.

Example:
    >>> d = digits()
    >>> d.X_train.shape[1], d.classes
    (64, 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors (float32 inputs, int64 labels) and the number of classes."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def _split(X, y, test_size: float, standardize: bool) -> Dataset:
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, stratify=y, random_state=0)
    if standardize:
        mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
        Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    i = lambda a: torch.tensor(a, dtype=torch.int64)  # noqa: E731
    return Dataset(f(Xtr), i(ytr), f(Xte), i(yte), int(y.max()) + 1)


def digits(test_size: float = 0.25, standardize: bool = False) -> Dataset:
    """The 8×8 digits (1797 images, 10 classes); pixels scaled to [0, 1] or standardized."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return _split(X / 16.0, y, test_size, standardize)


def breast_cancer(test_size: float = 0.25) -> Dataset:
    """Wisconsin breast cancer (569 samples, 30 standardized features, 2 classes)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return _split(X, y, test_size, standardize=True)


def batches(n: int, batch: int, generator: torch.Generator):
    """Endless random mini-batch index tensors of size ``batch`` drawn from ``range(n)``."""
    while True:
        yield torch.randint(0, n, (batch,), generator=generator)
