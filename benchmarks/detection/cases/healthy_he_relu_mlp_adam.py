"""Healthy: an 8-layer ReLU MLP with He (Kaiming) init on digits, trained with Adam.

Why it is healthy: Var(w) = 2/fan_in exactly compensates the halving of the
variance by ReLU, so activations and gradients keep their scale through all 8
layers (He et al. 2015); Adam at lr=5e-4 gives update/weight ratios ~1e-3.
"""
# expect: healthy
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
X = (X - X.mean(0)) / (X.std(0) + 1e-6)
y = torch.tensor(digits.target)

layers = []
width = 128
for i in range(7):
    layers += [nn.Linear(64 if i == 0 else width, width), nn.ReLU()]
layers.append(nn.Linear(width, 10))
model = nn.Sequential(*layers)
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        nn.init.zeros_(m.bias)

opt = torch.optim.Adam(model.parameters(), lr=5e-4)
loss_fn = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
