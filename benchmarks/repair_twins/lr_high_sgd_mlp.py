"""Healthy twin of lr_high_sgd_mlp: the same script with its pathology removed by hand.

The case: A 2-hidden-layer tanh MLP on digits trained with SGD at lr=3 (a sane value is ~0.05-0.1).
Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/lr_high_sgd_mlp.py, and the same final eval line. Changed: SGD lr 3 ->
0.1 (the case's docstring: a sane value is ~0.05-0.1).
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Linear(64, 64), nn.Tanh(),
    nn.Linear(64, 64), nn.Tanh(),
    nn.Linear(64, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step:3d}  loss {loss.item():.3f}")

print(f"final loss {loss.item():.3f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
