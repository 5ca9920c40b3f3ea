"""A 4-layer post-LN transformer encoder (nn.TransformerEncoder defaults) trained with Adam at lr=1e-2, no warmup.

Task: classify 8x8 digits read as a sequence of 8 row-tokens.

Why it is pathological: in post-LN transformers the gradients of the last layers are
large at initialisation and Adam takes full-size steps from step 1, so without a
warmup the first ~30 updates are 3-15% of the weights (update/weight ≫ 1e-2). The
model collapses to predicting the class prior: the loss stays at chance (ln 10),
after which the gradients into the lower layers die away and many FFN ReLUs are dead.
The same script at lr=1e-3 trains to a loss of ~0.2 (Xiong et al. 2020, "On Layer
Normalization in the Transformer Architecture"; Liu et al. 2020).
"""
# expect: learning_rate_too_high
# also-ok: vanishing_gradients, dead_units
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8 rows, 8 pixels)
y = torch.tensor(digits.target)


class RowTransformer(nn.Module):
    def __init__(self, d=64, layers=4):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.zeros(1, 8, d))
        enc = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=128, dropout=0.0,
                                         batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(enc, layers, enable_nested_tensor=False)
        self.cls = nn.Linear(d, 10)

    def forward(self, x):
        h = self.encoder(self.embed(x) + self.pos)
        return self.cls(h.mean(dim=1))


model = RowTransformer()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.CrossEntropyLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()
    if step % 30 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
