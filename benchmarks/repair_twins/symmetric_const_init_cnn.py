"""Healthy twin of symmetric_const_init_cnn: the same script with its pathology removed by hand.

The case: A ReLU CNN on digits whose conv and linear weights were all set to the constant 0.01. Same
data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/symmetric_const_init_cnn.py, and the same final eval line. Changed:
random He init (He et al. 2015) for the weights, zero biases, instead of the constant 0.01 that made
every filter a copy of the others.
"""
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
        if name.endswith("weight"):
            nn.init.kaiming_normal_(p, nonlinearity="relu")
        else:
            p.zero_()

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
