"""An 8-layer ReLU MLP whose weights were initialised with N(0, 1), trained with Adam.

Why it is pathological: with unit-variance weights and fan-in 64, each ReLU layer
multiplies the back-propagated signal by about sqrt(64/2) ≈ 5.7 instead of ~1
(He et al. 2015 need Var(w) = 2/fan_in). ‖∂L/∂h‖ therefore grows ~5.7x per layer
from the output towards the input — about 1e5 over the network — and the logits
are astronomically large. Adam's normalised steps keep the run finite, but the
gradients are exploding from the first step.
"""
# expect: exploding_gradients
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class DeepMLP(nn.Module):
    def __init__(self, width=64, depth=8):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(64 if i == 0 else width, width) for i in range(depth - 1)])
        self.out = nn.Linear(width, 10)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=1.0)  # "standard normal" init
                nn.init.zeros_(m.bias)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

model = DeepMLP()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

for step in range(120):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = F.cross_entropy(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step:3d} loss {loss.item():.3e}")

print(f"final loss {loss.item():.3e}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
