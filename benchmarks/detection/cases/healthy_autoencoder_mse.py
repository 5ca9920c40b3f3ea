"""ReLU autoencoder on digits, MSE reconstruction (linear output), Adam."""
# expect: healthy
import torch, torch.nn as nn
from sklearn.datasets import load_digits
torch.manual_seed(2); torch.set_num_threads(1)
X = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
ae = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 64))
opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
for step in range(300):
    idx = torch.randint(0, len(X), (64,))
    loss = nn.functional.mse_loss(ae(X[idx]), X[idx])
    opt.zero_grad(); loss.backward(); opt.step()
print("final mse", loss.item())
