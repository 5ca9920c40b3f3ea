"""Healthy: a 2-layer MLP on standardised breast-cancer data, with argparse options (defaults are sane).

Why it is healthy: one hidden ReLU layer with default init on standardised inputs,
Adam at lr=1e-3 (update/weight ~1e-3), F.cross_entropy on two classes. The loss
falls from ~0.7 to ~0.1.

    python healthy_mlp_breast_cancer_argparse.py --lr 1e-3 --steps 200 --hidden 32
"""
# expect: healthy
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)

    data = load_breast_cancer()
    X = torch.tensor(StandardScaler().fit_transform(data.data), dtype=torch.float32)
    y = torch.tensor(data.target)

    model = nn.Sequential(nn.Linear(30, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 2))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    for step in range(args.steps):
        idx = torch.randint(0, len(X), (args.batch_size,))
        opt.zero_grad()
        loss = F.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f}")

    print(f"final loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
