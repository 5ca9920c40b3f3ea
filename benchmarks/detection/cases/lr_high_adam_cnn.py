"""A small ReLU CNN on digits trained with Adam at lr=0.1 (100x the usual 1e-3).

Why it is pathological: Adam moves every weight by ~lr per step whatever the
gradient, so with lr=0.1 the first steps change the weights by 60-190% of their norm
and update/weight stays above 1e-2 for ~20 steps. The loss spikes to ~12, and the
large steps push the ReLU pre-activations negative: ~95% of the first conv's and all
of the second conv's and the hidden FC layer's units end up dead, and the net sits at
chance (loss ≈ 2.30) with no NaN. Both the cause (learning rate) and its lasting
damage (dead units) belong in the diagnosis.
"""
# expect: learning_rate_too_high, dead_units
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=0.1)

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = F.cross_entropy(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 30 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
