"""Healthy: a 4-hidden-layer tanh MLP with Xavier (Glorot) init on digits, SGD with momentum.

Why it is healthy: Xavier init sets Var(w) = 2/(fan_in + fan_out), which keeps tanh
units in their near-linear range and the gradient scale roughly constant across
layers (Glorot & Bengio 2010); lr=0.05 with momentum 0.9 gives update/weight ~1e-3.
"""
# expect: healthy
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class TanhMLP(nn.Module):
    def __init__(self, sizes=(64, 96, 96, 96, 96, 10)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = nn.Tanh()
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
X = X - X.mean(0)
y = torch.tensor(digits.target)

model = TanhMLP()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()

print("final loss", round(loss.item(), 4))
