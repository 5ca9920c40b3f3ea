"""Healthy twin of saturated_raw_inputs_sigmoid: the same script with its pathology removed by hand.

The case: A sigmoid MLP fed raw digit pixels (0..16, not scaled) with N(0, 1) weights:
pre-activations have Same data, architecture and depth, batch size, number of steps, optimizer and
loss as benchmarks/detection/cases/saturated_raw_inputs_sigmoid.py, and the same final eval line.
Changed: the pixels are standardised (zero mean, unit variance per pixel) and the weights
Xavier-initialised with zero biases (LeCun et al. 1998, Efficient BackProp; Glorot & Bengio 2010)
instead of raw 0..16 inputs into N(0, 1) weights. Both are the pathology: with raw inputs even
Xavier's weights give pre-activations of std ~6.
"""
import torch, torch.nn as nn, torch.nn.functional as F
from sklearn.datasets import load_digits
torch.manual_seed(10); torch.set_num_threads(1)
d = load_digits(); X = torch.tensor(d.data, dtype=torch.float32); X = (X - X.mean(0)) / (X.std(0) + 1e-8); y = torch.tensor(d.target)
model = nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10))
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    loss = F.cross_entropy(model(X[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
