"""Healthy twin of saturated_sigmoid_mse_mlp: the same script with its pathology removed by hand.

The case: A sigmoid MLP with sigmoid outputs trained on one-hot digits targets with MSE, initialised
N(0, 1). Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/saturated_sigmoid_mse_mlp.py, and the same final eval line. Changed:
Xavier-uniform weights and zero biases (Glorot & Bengio 2010) instead of N(0, 1) for every
parameter, which put many sigmoids in their flat tails. The loss (MSE on sigmoid outputs) is
unchanged, as required.
"""
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
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)

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
