"""A small ReLU CNN on digits whose first conv's biases were initialised to -0.8 (functional F.relu).

Why it is pathological: the first conv's pre-activations have a std of ~0.3, so a
bias of -0.8 keeps most of its channels below zero at every pixel of every image:
F.relu returns 0 and its derivative is 0, so those channels get no gradient and stay
dead for the whole run (Lu et al. 2019). The net still trains, on the quarter of the
first-layer filters that survived.
"""
# expect: dead_units
# also-ok: vanishing_gradients
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 10)
        nn.init.constant_(self.conv1.bias, -0.8)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(digits.target)

net = Net()
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    optimizer.zero_grad()
    loss = F.cross_entropy(net(X[idx]), y[idx])
    loss.backward()
    optimizer.step()

print("final loss %.4f" % loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((net(X).argmax(1) == y).float().mean().item()):.4f}")
