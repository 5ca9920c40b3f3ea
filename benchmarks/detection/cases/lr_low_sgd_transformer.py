"""A 2-layer pre-LN transformer encoder classifier trained with plain SGD at lr=1e-6: updates are
~1e-7 of the weights, the loss does not move."""
# expect: learning_rate_too_low
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(9); torch.set_num_threads(1)
class Clf(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(4, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 3)
    def forward(self, x):
        return self.head(self.enc(self.emb(x)).mean(1))
model = Clf()
opt = torch.optim.SGD(model.parameters(), lr=1e-6)
for step in range(150):
    x = torch.randn(32, 12, 4); y = (x[:, :, 0].sum(1) > 0).long() + (x[:, :, 1].sum(1) > 2).long()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
print("final loss", loss.item())
with torch.no_grad():  # evaluation only, after training: accuracy on 2048 fresh sequences (fixed seed)
    torch.manual_seed(1234); x = torch.randn(2048, 12, 4); y = (x[:, :, 0].sum(1) > 0).long() + (x[:, :, 1].sum(1) > 2).long()
    print(f"eval test_acc={((model(x).argmax(1) == y).float().mean().item()):.4f}")
