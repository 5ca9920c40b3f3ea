"""A sigmoid MLP with sigmoid outputs trained on one-hot digits targets with MSE, initialised N(0, 1).

Why it is pathological: with unit-variance weights the pre-activations of the
hidden layers (fan-in 64, 100) and the output layer (fan-in 100) have standard deviations of
~4-7, so many sigmoid units sit in their flat tails (σ < 0.01 or > 0.99, where
σ'(z) < 0.01): about 20% in the first layer, half in the second and 55-65% of the
outputs. With MSE (unlike cross-entropy) nothing cancels the σ' factor, so a unit
that is confidently wrong gets almost no gradient and the loss plateaus at ~0.25,
worse than predicting all zeros (0.1) (LeCun et al. 1998, "Efficient BackProp";
Glorot & Bengio 2010).
"""
# expect: saturated_activations
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
Y = nn.functional.one_hot(torch.tensor(digits.target), 10).float()

model = nn.Sequential(
    nn.Linear(64, 100), nn.Sigmoid(),
    nn.Linear(100, 100), nn.Sigmoid(),
    nn.Linear(100, 10), nn.Sigmoid(),
)
for p in model.parameters():
    nn.init.normal_(p, std=1.0)

opt = torch.optim.SGD(model.parameters(), lr=0.5)
mse = nn.MSELoss()

for step in range(200):
    idx = torch.randint(0, len(X), (100,))
    opt.zero_grad()
    loss = mse(model(X[idx]), Y[idx])
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print("step", step, "mse", round(loss.item(), 4))

print("final mse", round(loss.item(), 4))
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == Y.argmax(1)).float().mean().item()):.4f}")
