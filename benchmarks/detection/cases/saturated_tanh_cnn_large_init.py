"""A 3-layer tanh CNN on digits whose conv weights were initialised with N(0, 1).

Why it is pathological: a 3x3 conv with 16 input channels has fan-in 144, so N(0, 1)
weights give pre-activations with std ~8-11 (Xavier/LeCun init would use 1/fan_in).
70-80% of the 2nd and 3rd layers' tanh outputs are ±1 (|z| > 3), where
tanh'(z) = 1 - tanh²(z) < 0.01, and those convolutions learn very slowly (LeCun et al. 1998; Glorot & Bengio 2010).
"""
# expect: saturated_activations
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class TanhCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1)
        self.act = nn.Tanh()
        self.fc = nn.Linear(16 * 4 * 4, 10)
        for c in (self.c1, self.c2, self.c3):
            nn.init.normal_(c.weight, 0.0, 1.0)

    def forward(self, x):
        x = self.act(self.c1(x))
        x = self.act(self.c2(x))
        x = F.avg_pool2d(self.act(self.c3(x)), 2)
        return self.fc(x.flatten(1))


digits = load_digits()
ds = TensorDataset(torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0,
                   torch.tensor(digits.target))
loader = DataLoader(ds, batch_size=64, shuffle=True)

model = TanhCNN()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
criterion = nn.CrossEntropyLoss()

step = 0
for epoch in range(3):
    for xb, yb in loader:
        opt.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        opt.step()
        step += 1
    print(f"epoch {epoch} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f} after {step} steps")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(ds.tensors[0]).argmax(1) == ds.tensors[1]).float().mean().item()):.4f}")
