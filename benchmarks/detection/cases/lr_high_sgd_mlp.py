"""A 2-hidden-layer tanh MLP on digits trained with SGD at lr=3 (a sane value is ~0.05-0.1).

Why it is pathological: every step moves the weights by a large fraction of their own
norm (update/weight ≫ 1e-2), so SGD overshoots the valley and bounces: the loss
spikes to several times its starting value and never settles. The tanh hidden layers
and the bounded softmax gradient keep everything finite — no NaN, just divergence
and oscillation; along the way the tanh units are pushed into saturation.
"""
# expect: learning_rate_too_high
# also-ok: saturated_activations, exploding_gradients, vanishing_gradients
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Linear(64, 64), nn.Tanh(),
    nn.Linear(64, 64), nn.Tanh(),
    nn.Linear(64, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=3.0)
loss_fn = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step:3d}  loss {loss.item():.3f}")

print(f"final loss {loss.item():.3f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
