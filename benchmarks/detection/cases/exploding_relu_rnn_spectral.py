"""A ReLU nn.RNN on a 40-step sequence-regression task with recurrent weights of spectral radius 1.8.

Why it is pathological: the back-propagated error is multiplied by
W_hhᵀ·diag(relu') at every time step. With W_hh = 1.8·(orthogonal) about half the
units are active, so each step amplifies it by ~1.8/sqrt(2) ≈ 1.27 and over 40
steps by ~1e4 — the exploding-gradient problem of Bengio et al. (1994) and Pascanu,
Mikolov & Bengio (2013). Adam's normalised steps keep the run finite while the
gradient norms are enormous.
"""
# expect: exploding_gradients
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

T, B, H = 40, 32, 32


class ReluRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, H, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(H, 1)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
            self.rnn.weight_hh_l0.mul_(1.8)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def batch():
    # target: the mean of the sequence (needs information from every step)
    x = torch.randn(B, T, 1)
    return x, x.mean(dim=1)


model = ReluRNN()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.MSELoss()

for step in range(100):
    x, y = batch()
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    if step % 25 == 0:
        print(f"step {step} loss {loss.item():.3e}")
print(f"final loss {loss.item():.3e}")
with torch.no_grad():  # evaluation only, after training: R² on 32 fresh batches (fixed seed)
    torch.manual_seed(1234); xs, ts = zip(*[batch() for _ in range(32)]); t = torch.cat(ts); p = model(torch.cat(xs))
    print(f"eval test_r2={(1 - ((p - t) ** 2).mean() / t.var(unbiased=False)).item():.4f}")
