"""A 2-hidden-layer sigmoid MLP on digits with every weight and bias initialised to zero.

Why it is pathological: with identical incoming weights all hidden units of a layer
compute the same value, and with identical outgoing weights they receive the same
gradient, so after any number of SGD steps they are still identical: each hidden
layer behaves like a single unit (the symmetry-breaking argument for random init,
Rumelhart, Hinton & Williams 1986; Goodfellow et al. 2016 §8.4). Only the output
layer's rows differ (the one-hot targets break its symmetry).
"""
# expect: symmetric_weights
# also-ok: vanishing_gradients
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
        for p in self.parameters():
            nn.init.zeros_(p)

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
