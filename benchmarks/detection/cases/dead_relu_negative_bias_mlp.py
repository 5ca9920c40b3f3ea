"""A 4-layer ReLU MLP on digits whose hidden biases were initialised to -0.6.

Why it is pathological: the default weights give hidden pre-activations with a
standard deviation of ~0.3, so a bias of -0.6 puts ~87% of the first layer's units
below zero for every input; the few survivors give outputs too small to lift the
next layers over their own -0.6 bias, so every unit there is dead. Dead ReLUs output
0 and have zero derivative, so no gradient reaches any hidden layer, nothing
recovers ("dying ReLU", Lu et al. 2019) and the loss stays at ln 10.
"""
# expect: dead_units
# also-ok: vanishing_gradients
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)

model = nn.Sequential(
    nn.Linear(64, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, 10),
)
for m in list(model)[:-1]:
    if isinstance(m, nn.Linear):
        nn.init.constant_(m.bias, -0.6)  # "start sparse"

opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (128,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
