"""A fused nn.LSTM (PyTorch defaults) on the adding problem with 100-step sequences.

Why it is pathological: with the default init the forget gates start at σ(≈0) ≈ 0.5,
so the cell state keeps only about half of itself per step and ∂c_T/∂c_t decays
roughly like 0.5^(T-t): the error signal reaching the first half of a 100-step
sequence is ~1e-10 of that at the end, and the LSTM never learns to find the marked
numbers (mse stays at the 0.167 of predicting the mean). Gers et al. (2000) and
Jozefowicz et al. (2015) recommend a forget-gate bias of 1. The recurrence runs
inside one nn.LSTM call, so no per-step module output is visible.
"""
# expect: vanishing_gradients
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

T, B = 100, 64


def adding_batch():
    values = torch.rand(B, T)
    marks = torch.zeros(B, T)
    first = torch.randint(0, T // 2, (B,))
    second = torch.randint(T // 2, T, (B,))
    marks[torch.arange(B), first] = 1.0
    marks[torch.arange(B), second] = 1.0
    return torch.stack([values, marks], -1), (values * marks).sum(1, keepdim=True)


class Adder(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.lstm = nn.LSTM(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


model = Adder()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)

for step in range(200):
    x, target = adding_batch()
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), target)
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} mse {loss.item():.4f}")

print(f"final mse {loss.item():.4f} (predicting the mean gives 0.167)")
with torch.no_grad():  # evaluation only, after training: R² on 16 fresh batches (fixed seed)
    torch.manual_seed(1234); xs, ts = zip(*[adding_batch() for _ in range(16)]); t = torch.cat(ts); p = model(torch.cat(xs))
    print(f"eval test_r2={(1 - ((p - t) ** 2).mean() / t.var(unbiased=False)).item():.4f}")
