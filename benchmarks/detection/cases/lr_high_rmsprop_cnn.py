"""Small CNN on digits with RMSprop at lr=0.05 (50x its usual 1e-3): every step moves each weight
by ~lr regardless of the gradient's size, far beyond the ~1e-3 relative-update band."""
# expect: learning_rate_too_high
# also-ok: dead_units, exploding_gradients, nonfinite
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_digits
torch.manual_seed(7); torch.set_num_threads(1)
d = load_digits(); X = torch.tensor(d.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8); y = torch.tensor(d.target)
net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.RMSprop(net.parameters(), lr=0.05)
for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(net(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((net(X).argmax(1) == y).float().mean().item()):.4f}")
