"""A 20-layer sigmoid MLP on sklearn digits, trained with plain SGD.

Why it is pathological: the sigmoid's slope is at most 1/4 and PyTorch's default
Linear init has weight variance 1/(3·fan_in), so each layer multiplies the
back-propagated signal by roughly 0.25·sqrt(1/3) ≈ 0.15. After 19 layers the
gradient reaching the first layers is ~1e-15 of the one at the output and the
early layers never learn (Glorot & Bengio 2010; Hochreiter 1991).
"""
# expect: vanishing_gradients
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

layers = [nn.Linear(64, 64), nn.Sigmoid()]
for _ in range(18):
    layers += [nn.Linear(64, 64), nn.Sigmoid()]
layers += [nn.Linear(64, 10)]
model = nn.Sequential(*layers)

opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
