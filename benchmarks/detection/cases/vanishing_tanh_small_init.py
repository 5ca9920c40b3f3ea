"""12-layer tanh MLP initialised N(0, 0.01²): every layer multiplies the signal by ~0.01·√64 = 0.08,
so δ shrinks ~12× per layer towards the input."""
# expect: vanishing_gradients
# also-ok: learning_rate_too_low
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_digits
torch.manual_seed(4); torch.set_num_threads(1)
d = load_digits(); X = torch.tensor(d.data / 16.0, dtype=torch.float32); y = torch.tensor(d.target)
layers = []
for i in range(12):
    lin = nn.Linear(64, 64); nn.init.normal_(lin.weight, std=0.01); nn.init.zeros_(lin.bias)
    layers += [lin, nn.Tanh()]
model = nn.Sequential(*layers, nn.Linear(64, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(model(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
