"""30 residual blocks x + W2·relu(W1·x) with He-initialised branches and no normalisation:
the variance roughly doubles per block, so activations and gradients grow ~2^15 in norm."""
# expect: exploding_gradients
# also-ok: nonfinite, learning_rate_too_high
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_digits
torch.manual_seed(5); torch.set_num_threads(1)
d = load_digits(); X = torch.tensor(d.data / 16.0, dtype=torch.float32); y = torch.tensor(d.target)
class Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.a, self.b = nn.Linear(w, w), nn.Linear(w, w)
        for l in (self.a, self.b):
            nn.init.kaiming_normal_(l.weight, nonlinearity="relu"); nn.init.zeros_(l.bias)
    def forward(self, x):
        return x + self.b(F.relu(self.a(x)))
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(64, 64)
        self.blocks = nn.ModuleList(Block(64) for _ in range(30))
        self.out = nn.Linear(64, 10)
    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        return self.out(x)
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
for step in range(100):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(model(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
