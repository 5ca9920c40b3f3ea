"""Healthy twin of symmetric_zero_init_mlp: the same script with its pathology removed by hand.

The case: A 2-hidden-layer sigmoid MLP on digits with every weight and bias initialised to zero.
Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/symmetric_zero_init_mlp.py, and the same final eval line. Changed: random
Xavier-uniform weights (Glorot & Bengio 2010), zero biases, instead of all zeros, so the hidden
units are no longer identical.
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.xavier_uniform_(layer.weight); nn.init.zeros_(layer.bias)

    def forward(self, x):
        h = torch.sigmoid(self.fc1(x))
        h = torch.sigmoid(self.fc2(h))
        return self.fc3(h)


model = MLP()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()

print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
