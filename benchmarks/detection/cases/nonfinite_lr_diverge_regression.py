"""A 2-layer tanh MLP regressing the digit's value (0..9) from raw pixels with MSE and SGD(lr=0.05).

Why it is pathological: gradient descent on a quadratic loss diverges geometrically
once lr exceeds 2/λ_max of the loss curvature. With unscaled pixels (0..16) and a
summed output, λ_max is in the hundreds, so lr=0.05 makes every step overshoot
further than the last: the weights and the loss grow ×10s per step, overflow to
inf within ~30 steps, and inf − inf then gives NaN. The script keeps running and
prints `nan`.
"""
# expect: nonfinite
# also-ok: exploding_gradients, learning_rate_too_high, saturated_activations
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32)
y = torch.tensor(digits.target, dtype=torch.float32).unsqueeze(1)

model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)

for step in range(100):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = ((model(X[idx]) - y[idx]) ** 2).sum(1).mean()
    loss.backward()
    opt.step()
    if step % 20 == 0:
        print(f"step {step} loss {loss.item():.4g}")

print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: R² on the training set (no split here)
    p, t = model(X), y
    print(f"eval train_r2={(1 - ((p - t) ** 2).mean() / t.var(unbiased=False)).item():.4f}")
