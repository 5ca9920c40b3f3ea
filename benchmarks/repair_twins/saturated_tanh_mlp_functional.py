"""Healthy twin of saturated_tanh_mlp_functional: the same script with its pathology removed by hand.

The case: A 4-layer tanh MLP (torch.tanh called functionally) on breast-cancer data, init N(0, 1).
Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/saturated_tanh_mlp_functional.py, and the same final eval line. Changed:
Xavier-uniform hidden weights with the tanh gain 5/3 (Glorot & Bengio 2010) instead of N(0, 1),
which gave pre-activations of std ~11 at width 128.
"""
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
            nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain("tanh"))

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
