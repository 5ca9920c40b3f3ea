"""A GRU sequence classifier whose input features are normalised per sequence as x / x.norm(...).

Task: classify digits read row by row; ~1 image in 500 arrives blank (a dropped
sensor frame, all zeros).

Why it is pathological: the script normalises each sequence with
`x / x.norm(dim=(1, 2), keepdim=True)`. For a blank sequence that is 0/0 = NaN, which
goes through the GRU into the logits and the loss; `loss.backward()` then fills every
gradient with NaN and the optimizer step writes NaN into every weight. From then on
the loss prints `nan` — the script keeps going. (The fix is an epsilon:
`x / (x.norm(...) + 1e-8)`.)
"""
# expect: nonfinite
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32)
y = torch.tensor(digits.target)
blank = torch.rand(len(X)) < 1 / 500
X[blank] = 0.0


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 48, batch_first=True)
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        x = x / x.norm(dim=(1, 2), keepdim=True) * 8.0
        _, h = self.gru(x)
        return self.fc(h[-1])


model = GRUClassifier()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (32,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
