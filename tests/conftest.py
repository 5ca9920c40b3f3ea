import os
import sys

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


def train(model, opt, X, y, steps, watcher=None, batch=64, seed=0, loss_fn=None):
    """A plain loop on fixed batches (same seed → same batches)."""
    gen = torch.Generator().manual_seed(seed)
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch,), generator=gen)
        loss = loss_fn(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss


sys.modules.setdefault("gw_test_helpers", type(sys)("gw_test_helpers"))
sys.modules["gw_test_helpers"].train = train
