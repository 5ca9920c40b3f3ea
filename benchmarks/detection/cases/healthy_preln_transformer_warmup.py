"""Healthy: a 4-layer pre-LN transformer encoder on digits read as 8 row-tokens, AdamW with warmup + cosine decay.

Why it is healthy: pre-LN (norm_first=True) keeps a clean residual path so gradients
are well-scaled in every layer at init, and a 20-step linear warmup to lr=1e-3 (then cosine decay to 1e-4)
avoids the large early Adam steps (Xiong et al. 2020). Update/weight ratios stay
around 1e-3 and the loss falls steadily.
"""
# expect: healthy
import math

import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

STEPS, WARMUP, LR, MIN_LR = 150, 20, 1e-3, 1e-4


class RowTransformer(nn.Module):
    def __init__(self, d=64, layers=4):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.randn(1, 8, d) * 0.02)
        enc = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=128, dropout=0.0,
                                         batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(enc, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.cls = nn.Linear(d, 10)

    def forward(self, x):
        h = self.norm(self.encoder(self.embed(x) + self.pos))
        return self.cls(h.mean(dim=1))


def lr_at(step):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / (STEPS - WARMUP)
    return MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * progress))


model = RowTransformer()
opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s) / LR)

for step in range(STEPS):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    sched.step()
    if step % 30 == 0:
        print(f"step {step} lr {sched.get_last_lr()[0]:.2e} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
