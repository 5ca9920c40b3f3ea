"""A sigmoid MLP fed raw digit pixels (0..16, not scaled) with N(0, 1) weights: pre-activations have
std ~ 16·√64·0.5 ≈ 60, so nearly every hidden sigmoid sits in its flat tails (σ′ ≈ 0)."""
# expect: saturated_activations
# also-ok: vanishing_gradients
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_digits
torch.manual_seed(10); torch.set_num_threads(1)
d = load_digits(); X = torch.tensor(d.data, dtype=torch.float32); y = torch.tensor(d.target)
model = nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10))
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=1.0)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(model(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
