"""A ReLU CNN on digits whose conv and linear weights were all set to the constant 0.01.

Why it is pathological: every filter of a conv layer starts identical, sees the same
input and — because the next layer's weights are identical too — gets the same
gradient, so the filters stay copies of each other under SGD: 16 channels that are
really one (symmetry is only broken by random init). Only the classifier's rows
drift apart.
"""
# expect: symmetric_weights
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(16 * 4 * 4, 10),
)
with torch.no_grad():
    for name, p in model.named_parameters():
        p.fill_(0.01 if name.endswith("weight") else 0.0)

opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(step, loss.item())

print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
