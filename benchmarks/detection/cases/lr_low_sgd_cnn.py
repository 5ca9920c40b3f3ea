"""A small, well-initialised ReLU CNN on digits trained with SGD(momentum=0.9) at lr=1e-6.

Why it is pathological: the gradients are healthy (norms ~0.1-1 in every layer), but
with lr=1e-6 each step changes the weights by ~1e-7 of their norm, so the loss is
flat after 150 steps. A typo'd learning rate (1e-6 instead of 1e-2).
"""
# expect: learning_rate_too_low
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


digits = load_digits()
data = TensorDataset(torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0,
                     torch.tensor(digits.target))
loader = DataLoader(data, batch_size=32, shuffle=True)

model = SmallCNN()
opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

steps = 0
while steps < 150:
    for images, labels in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        steps += 1
        if steps == 150:
            break

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(data.tensors[0]).argmax(1) == data.tensors[1]).float().mean().item()):.4f}")
