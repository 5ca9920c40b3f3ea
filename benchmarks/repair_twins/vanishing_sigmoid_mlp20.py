"""Healthy twin of vanishing_sigmoid_mlp20: the same script with its pathology removed by hand.

The case: A 20-layer sigmoid MLP on sklearn digits, trained with plain SGD. Same data, architecture
and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/vanishing_sigmoid_mlp20.py, and the same final eval line. Changed: ReLU
instead of Sigmoid in the 19 hidden layers, with He init and zero biases (He et al. 2015; Glorot &
Bengio 2010): sigmoid' <= 1/4 times the default gain shrank the signal ~0.15x per layer; ReLU with
He init keeps it ~1. Same 20 linear layers.
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

layers = [nn.Linear(64, 64), nn.ReLU()]
for _ in range(18):
    layers += [nn.Linear(64, 64), nn.ReLU()]
for m in layers:
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu"); nn.init.zeros_(m.bias)
layers += [nn.Linear(64, 10)]
model = nn.Sequential(*layers)

opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
