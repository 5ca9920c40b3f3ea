"""Healthy: a 3-layer ReLU MLP on digits, SGD + momentum with CosineAnnealingLR down to lr = 0.

Why it is healthy: standard recipe (default init, lr=0.05, momentum 0.9, weight
decay). The schedule anneals the learning rate to exactly 0 at the last step, so the
final few updates are tiny by design — not a learning rate that is too low
(Loshchilov & Hutter 2017). The loss falls from 2.3 to ~0.1.
"""
# expect: healthy
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True, drop_last=True)

model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
EPOCHS = 8
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS * len(loader))
loss_fn = nn.CrossEntropyLoss()

for epoch in range(EPOCHS):
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
    print(f"epoch {epoch} loss {loss.item():.4f} lr {sched.get_last_lr()[0]:.2e}")

print(f"final loss {loss.item():.4f}")
