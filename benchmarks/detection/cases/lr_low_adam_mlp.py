"""A well-initialised 3-layer ReLU MLP on digits trained with Adam at lr=1e-7.

Why it is pathological: nothing is wrong with the network or its gradients (default
init, healthy gradient norms in every layer), but Adam moves each weight by about
lr = 1e-7 per step, i.e. update/weight ≈ 1e-6 — three to four orders of magnitude
below the ~1e-3 that trains well. After 200 steps the loss has not moved.
"""
# expect: learning_rate_too_low
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
    nn.Linear(128, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-7)
criterion = nn.CrossEntropyLoss()

for step in range(200):
    idx = torch.randint(0, len(X), (128,))
    optimizer.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        print("step", step, "loss", round(loss.item(), 4))

print("final loss", round(loss.item(), 4))
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
