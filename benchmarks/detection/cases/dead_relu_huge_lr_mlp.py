"""A 3-layer ReLU MLP on unscaled digits pixels (0..16) trained with SGD at lr=5.

Why it is pathological: the raw pixel values make the first gradients large and a
step of size 5 moves the weights by more than their own size (update/weight ≈ 2).
Within a few steps the loss spikes to ~1e15, one huge step drives the ReLU
pre-activations negative for every input, and from then on every hidden unit outputs
0: no gradient reaches the hidden layers again (ReLU'(x<0) = 0) and the net is stuck
predicting the class prior (loss ≈ ln 10), the "dying ReLU" (Lu et al. 2019).
"""
# expect: dead_units
# also-ok: learning_rate_too_high, exploding_gradients, vanishing_gradients
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32)  # forgot to scale: values 0..16
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Linear(64, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=5.0)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(4):
    perm = torch.randperm(len(X))
    for i in range(0, len(X) - 63, 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
    print(f"epoch {epoch} loss {loss.item()}")

print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
