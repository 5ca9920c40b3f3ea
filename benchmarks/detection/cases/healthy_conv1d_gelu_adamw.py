"""1D CNN with GELU on synthetic sine-vs-square sequences, AdamW + cosine schedule."""
# expect: healthy
import math, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(1); torch.set_num_threads(1)
def batch(n=64, T=96):
    t = torch.linspace(0, 6 * math.pi, T)
    f = torch.rand(n, 1) * 2 + 0.5
    lab = torch.randint(0, 2, (n,))
    s = torch.sin(f * t)
    x = torch.where(lab[:, None] == 1, torch.sign(s), s) + 0.3 * torch.randn(n, T)
    return x[:, None, :], lab
net = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.GELU(), nn.Conv1d(16, 32, 5, padding=2), nn.GELU(),
                    nn.MaxPool1d(2), nn.Conv1d(32, 32, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool1d(1),
                    nn.Flatten(), nn.Linear(32, 2))
opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
for step in range(200):
    x, y = batch()
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
print("final loss", loss.item())
