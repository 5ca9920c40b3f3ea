"""A 10-layer plain (no normalisation, no skip) ReLU CNN initialised with gain 3x He.

Why it is pathological: `kaiming_normal_` followed by `weight.mul_(3)` makes every
conv+ReLU layer amplify both the forward signal and the back-propagated gradient by
~3, so ‖∂L/∂h‖ at the first conv is ~3^9 ≈ 2e4 times that at the last one
(He et al. 2015 derive the gain that keeps it at 1). Trained with SGD+momentum and a
learning rate small enough that the run does not overflow.
"""
# expect: exploding_gradients
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(digits.target)

blocks = []
in_ch = 1
for i in range(10):
    blocks += [nn.Conv2d(in_ch, 16, 3, padding=1), nn.ReLU()]
    in_ch = 16
model = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(16 * 64, 10))

for m in model.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        with torch.no_grad():
            m.weight.mul_(3.0)
        nn.init.zeros_(m.bias)

opt = torch.optim.SGD(model.parameters(), lr=1e-7, momentum=0.9)
criterion = nn.CrossEntropyLoss()

for step in range(80):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()

print(f"final loss {loss.item():.4g}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
