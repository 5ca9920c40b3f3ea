"""Healthy twin of symmetric_constant_adam: the same script with its pathology removed by hand.

The case: Two hidden sigmoid layers with every weight set to 0.05 and zero biases, trained with
Adam: Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/symmetric_constant_adam.py, and the same final eval line. Changed: random
Xavier-uniform weights (Glorot & Bengio 2010), zero biases, instead of the constant 0.05 that made
every unit of a layer identical.
"""
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
torch.manual_seed(6); torch.set_num_threads(1)
d = load_breast_cancer(); X = torch.tensor(d.data, dtype=torch.float32); X = (X - X.mean(0)) / X.std(0)
y = torch.tensor(d.target)
model = nn.Sequential(nn.Linear(30, 32), nn.Sigmoid(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 2))
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(model(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
