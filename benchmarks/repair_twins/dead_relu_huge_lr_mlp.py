"""Healthy twin of dead_relu_huge_lr_mlp: the same script with its pathology removed by hand.

The case: A 3-layer ReLU MLP on unscaled digits pixels (0..16) trained with SGD at lr=5. Same data,
architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/dead_relu_huge_lr_mlp.py, and the same final eval line. Changed: SGD lr 5
-> 0.01. The case's rate moves the weights by 2-9x their own size in one step on the unscaled pixels
and kills every ReLU; 0.01 is the usual SGD rate for raw inputs of this scale. The pixels stay
unscaled (same data as the case).
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32)  # forgot to scale: values 0..16
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Linear(64, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(4):
    perm = torch.randperm(len(X))
    for i in range(0, len(X) - 63, 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
    print(f"epoch {epoch} loss {loss.item()}")

print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
