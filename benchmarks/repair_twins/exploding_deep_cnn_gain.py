"""Healthy twin of exploding_deep_cnn_gain: the same script with its pathology removed by hand.

The case: A 10-layer plain (no normalisation, no skip) ReLU CNN initialised with gain 3x He. Same
data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/exploding_deep_cnn_gain.py, and the same final eval line. Changed: plain
He init (He et al. 2015), without the x3 gain, and SGD lr 1e-7 -> 1e-2. The case's rate was only
chosen so small so that the exploding network would not overflow; with a gain-1 init the usual
SGD+momentum rate of 1e-2 is the practitioner's choice.
"""
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
        nn.init.zeros_(m.bias)

opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
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
