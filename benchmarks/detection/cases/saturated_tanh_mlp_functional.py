"""A 4-layer tanh MLP (torch.tanh called functionally) on breast-cancer data, init N(0, 1).

Why it is pathological: hidden layers of width 128 with unit-variance weights give
pre-activations with std ≈ sqrt(128) ≈ 11, so ~77% of the units of hidden layers
2-3 (and half of layer 1's) sit at ±1 where tanh' < 0.01: the hidden layers are
saturated from the first step and barely move (update/weight ~1e-5); only the output
layer learns, as a linear classifier on the frozen ±1 features.
The activations are functional calls (torch.tanh), not nn.Tanh modules.
"""
# expect: saturated_activations
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

torch.manual_seed(0)
torch.set_num_threads(1)

data = load_breast_cancer()
X = torch.tensor(StandardScaler().fit_transform(data.data), dtype=torch.float32)
y = torch.tensor(data.target)


class TanhNet(nn.Module):
    def __init__(self, width=128):
        super().__init__()
        self.l1 = nn.Linear(30, width)
        self.l2 = nn.Linear(width, width)
        self.l3 = nn.Linear(width, width)
        self.out = nn.Linear(width, 2)
        for layer in (self.l1, self.l2, self.l3):
            nn.init.normal_(layer.weight, std=1.0)

    def forward(self, x):
        x = torch.tanh(self.l1(x))
        x = torch.tanh(self.l2(x))
        x = torch.tanh(self.l3(x))
        return self.out(x)


model = TanhNet()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()

print("final loss:", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
