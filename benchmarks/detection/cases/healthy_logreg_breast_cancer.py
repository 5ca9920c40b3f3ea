"""Healthy: logistic regression (a single nn.Linear) on standardised breast-cancer features, SGD.

Why it is healthy: a convex problem with standardised inputs; lr=0.1 is well
below 2/λ_max of the loss curvature, so the loss falls monotonically (up to batch
noise) to ~0.1.
"""
# expect: healthy
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
torch.set_num_threads(1)

data = load_breast_cancer()
X = torch.tensor(StandardScaler().fit_transform(data.data), dtype=torch.float32)
y = torch.tensor(data.target, dtype=torch.float32)

model = nn.Linear(30, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.BCEWithLogitsLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]).squeeze(1), y[idx])
    loss.backward()
    opt.step()

print(f"final loss {loss.item():.4f}")
