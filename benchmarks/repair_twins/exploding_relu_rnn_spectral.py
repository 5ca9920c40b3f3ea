"""Healthy twin of exploding_relu_rnn_spectral: the same script with its pathology removed by hand.

The case: A ReLU nn.RNN on a 40-step sequence-regression task with recurrent weights of spectral
radius 1.8. Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/exploding_relu_rnn_spectral.py, and the same final eval line. Changed:
the recurrent matrix starts as the identity with zero biases, the IRNN init for ReLU recurrences
(Le, Jaitly & Hinton 2015), instead of 1.8 x orthogonal: the back-propagated error is then neither
amplified nor lost through time (radius 1.8 made it grow ~1.27x per step, Pascanu et al. 2013).
"""
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
            nn.init.eye_(self.rnn.weight_hh_l0)
            self.rnn.bias_hh_l0.zero_(); self.rnn.bias_ih_l0.zero_()

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
