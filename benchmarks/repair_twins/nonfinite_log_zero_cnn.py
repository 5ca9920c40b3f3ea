"""Healthy twin of nonfinite_log_zero_cnn: the same script with its pathology removed by hand.

The case: A small CNN for "is this digit a zero?" with a hand-written binary cross-entropy. Same
data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/nonfinite_log_zero_cnn.py, and the same final eval line. Changed: the
hand-written BCE on sigmoid outputs is replaced by the same loss computed stably from the logits,
F.binary_cross_entropy_with_logits (log-sum-exp form), so a confident logit no longer gives log(1 -
1.0) = -inf and 0 * -inf = NaN.
"""
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = (torch.tensor(digits.target) == 0).float()


class ZeroDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 1)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1)).squeeze(1)


def bce(p, target):
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


model = ZeroDetector()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)

for step in range(300):
    idx = torch.randint(0, len(X), (64,))
    loss = nn.functional.binary_cross_entropy_with_logits(model(X[idx]), y[idx])
    assert torch.isfinite(loss), f"loss became {loss.item()} at step {step}"
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X) > 0).float() == y).float().mean().item():.4f}")
