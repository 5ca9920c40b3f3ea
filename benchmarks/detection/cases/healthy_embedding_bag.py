"""Bag-of-tokens classifier: nn.Embedding + mean pooling + MLP, SGD with momentum, synthetic tokens."""
# expect: healthy
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(3); torch.set_num_threads(1)
V, L = 500, 20
key = torch.randint(0, V, (4, 30))  # class-specific token pools
def batch(n=64):
    y = torch.randint(0, 4, (n,))
    own = key[y][torch.arange(n)[:, None], torch.randint(0, 30, (n, L // 2))]
    noise = torch.randint(0, V, (n, L - L // 2))
    return torch.cat([own, noise], 1), y
class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    def forward(self, tok):
        return self.mlp(self.emb(tok).mean(1))
model = Bag()
opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
for step in range(250):
    x, y = batch()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
