"""A hand-written softmax (exp / sum, no max subtraction) with a temperature of 50: exp overflows to
inf as the logits grow, inf/inf = NaN, and the loss and every gradient turn NaN."""
# expect: nonfinite
# also-ok: exploding_gradients, learning_rate_too_high
import torch, torch.nn as nn
from sklearn.datasets import load_digits
torch.manual_seed(8); torch.set_num_threads(1)
d = load_digits(); X = torch.tensor(d.data / 16.0, dtype=torch.float32); y = torch.tensor(d.target)
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
for step in range(100):
    idx = torch.randint(0, len(X), (64,))
    z = torch.exp(model(X[idx]) * 50.0)
    p = z / z.sum(1, keepdim=True)
    loss = -torch.log(p[torch.arange(64), y[idx]]).mean()
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
