"""A tanh RNN (hand-unrolled nn.RNNCell) on the adding problem with 80-step sequences.

Why it is pathological: the recurrent matrix is initialised orthogonal and scaled
to spectral radius 0.6, and tanh' ≤ 1, so ∂h_T/∂h_t shrinks at least like 0.6^(T-t).
The two marked numbers the model must add sit anywhere in the sequence; the error
signal reaching early time steps is ~1e-15 of that at the end, so the net only learns
to predict the mean (Bengio, Simard & Frasconi 1994; Pascanu et al. 2013).
"""
# expect: vanishing_gradients
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

T, H, B = 80, 32, 64


def adding_batch(batch, length):
    values = torch.rand(batch, length)
    marks = torch.zeros(batch, length)
    for b in range(batch):
        i, j = torch.randperm(length)[:2]
        marks[b, i] = marks[b, j] = 1.0
    x = torch.stack([values, marks], dim=-1)
    target = (values * marks).sum(dim=1, keepdim=True)
    return x, target


class TanhRNN(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.cell = nn.RNNCell(2, hidden, nonlinearity="tanh")
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():
            nn.init.orthogonal_(self.cell.weight_hh)
            self.cell.weight_hh.mul_(0.6)

    def forward(self, x):
        h = torch.zeros(x.shape[0], self.cell.hidden_size)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.out(h)


model = TanhRNN(H)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

for step in range(150):
    x, target = adding_batch(B, T)
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), target)
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print("step", step, "mse", loss.item())

print(f"final mse {loss.item():.4f} (predicting the mean gives ~0.167)")
with torch.no_grad():  # evaluation only, after training: R² on 1024 fresh sequences (fixed seed)
    torch.manual_seed(1234); x, t = adding_batch(1024, T); p = model(x)
    print(f"eval test_r2={(1 - ((p - t) ** 2).mean() / t.var(unbiased=False)).item():.4f}")
