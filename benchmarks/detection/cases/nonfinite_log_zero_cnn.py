"""A small CNN for "is this digit a zero?" with a hand-written binary cross-entropy.

Why it is pathological: the loss is written as
    -(y * log(p) + (1 - y) * log(1 - p)),  p = sigmoid(logit)
In float32, sigmoid(z) rounds to exactly 1.0 once z > ~17. As the (easy) task is
learnt the logits of confident positives get there, log(1 - p) = -inf, and
0 * (-inf) = NaN: the loss and all gradients become NaN. The script checks the loss
with an assertion and crashes (the numerically stable form is
F.binary_cross_entropy_with_logits).
"""
# expect: nonfinite
# also-ok: saturated_activations
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
    p = torch.sigmoid(model(X[idx]))
    loss = bce(p, y[idx])
    assert torch.isfinite(loss), f"loss became {loss.item()} at step {step}"
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X) > 0).float() == y).float().mean().item():.4f}")
