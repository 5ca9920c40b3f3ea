"""Two hidden sigmoid layers with every weight set to 0.05 and zero biases, trained with Adam:
identical units get identical gradients (and Adam's per-parameter scaling keeps them identical)."""
# expect: symmetric_weights
# also-ok: saturated_activations
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
torch.manual_seed(6); torch.set_num_threads(1)
d = load_breast_cancer(); X = torch.tensor(d.data, dtype=torch.float32); X = (X - X.mean(0)) / X.std(0)
y = torch.tensor(d.target)
model = nn.Sequential(nn.Linear(30, 32), nn.Sigmoid(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 2))
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.constant_(m.weight, 0.05); nn.init.zeros_(m.bias)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(model(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
