"""Healthy: a small 2-conv CNN on digits with a DataLoader, Adam at lr=1e-3.

Why it is healthy: a shallow network with PyTorch's default init and inputs scaled
to [0, 1]; gradients are of similar size in every layer and Adam's steps are ~1e-3
of the weights. The textbook small-CNN-on-MNIST recipe.
"""
# expect: healthy
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


digits = load_digits()
train = TensorDataset(torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0,
                      torch.tensor(digits.target))
loader = DataLoader(train, batch_size=32, shuffle=True)

model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

for epoch in range(3):
    total, n = 0.0, 0
    for images, labels in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
        n += len(labels)
    print(f"epoch {epoch} mean loss {total / n:.4f}")

print(f"final loss {loss.item():.4f}")
