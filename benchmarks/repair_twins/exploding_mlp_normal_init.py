"""Healthy twin of exploding_mlp_normal_init: the same script with its pathology removed by hand.

The case: An 8-layer ReLU MLP whose weights were initialised with N(0, 1), trained with Adam. Same
data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/exploding_mlp_normal_init.py, and the same final eval line. Changed: He
(Kaiming) normal init, Var(w) = 2/fan_in (He et al. 2015), instead of N(0, 1) weights that grow the
back-propagated signal ~5.7x per ReLU layer.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class DeepMLP(nn.Module):
    def __init__(self, width=64, depth=8):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(64 if i == 0 else width, width) for i in range(depth - 1)])
        self.out = nn.Linear(width, 10)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

model = DeepMLP()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

for step in range(120):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = F.cross_entropy(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step:3d} loss {loss.item():.3e}")

print(f"final loss {loss.item():.3e}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
