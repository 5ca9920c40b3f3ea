"""Healthy: an LSTM classifying digits read row by row (8 steps of 8 pixels), Adam + gradient-norm clipping at 1.0.

Why it is healthy: a short sequence, LSTM gating (Hochreiter & Schmidhuber 1997) and
default init keep the gradient through time and across layers well-scaled; clipping
the global norm (Pascanu et al. 2013) only trims the rare large step. The loss falls
from chance (2.3) to well below 0.5. (Same model as lr_low_adam_lstm.py, sane lr.)
"""
# expect: healthy
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)


class RowLSTM(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.fc(h[-1])


model = RowLSTM()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
loss_fn = nn.CrossEntropyLoss()

for step in range(250):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
