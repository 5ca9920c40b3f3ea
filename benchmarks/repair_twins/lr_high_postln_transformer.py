"""Healthy twin of lr_high_postln_transformer: the same script with its pathology removed by hand.

The case: A 4-layer post-LN transformer encoder (nn.TransformerEncoder defaults) trained with Adam
at lr=1e-2, no warmup. Same data, architecture and depth, batch size, number of steps, optimizer and
loss as benchmarks/detection/cases/lr_high_postln_transformer.py, and the same final eval line.
Changed: Adam lr 1e-2 -> 1e-3 (the rate at which, as the case's docstring says, the same post-LN
script trains; Xiong et al. 2020).
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8 rows, 8 pixels)
y = torch.tensor(digits.target)


class RowTransformer(nn.Module):
    def __init__(self, d=64, layers=4):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.zeros(1, 8, d))
        enc = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=128, dropout=0.0,
                                         batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(enc, layers, enable_nested_tensor=False)
        self.cls = nn.Linear(d, 10)

    def forward(self, x):
        h = self.encoder(self.embed(x) + self.pos)
        return self.cls(h.mean(dim=1))


model = RowTransformer()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 30 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
