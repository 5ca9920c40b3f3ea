"""Healthy twin of nonfinite_div_zero_gru: the same script with its pathology removed by hand.

The case: A GRU sequence classifier whose input features are normalised per sequence as x /
x.norm(...). Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/nonfinite_div_zero_gru.py, and the same final eval line. Changed: the
per-sequence normalisation has an epsilon, x / (x.norm(...) + 1e-8), so a blank sequence gives 0
instead of 0/0 = NaN (the fix the case's docstring names).
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32)
y = torch.tensor(digits.target)
blank = torch.rand(len(X)) < 1 / 500
X[blank] = 0.0


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 48, batch_first=True)
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        x = x / (x.norm(dim=(1, 2), keepdim=True) + 1e-8) * 8.0
        _, h = self.gru(x)
        return self.fc(h[-1])


model = GRUClassifier()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (32,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
