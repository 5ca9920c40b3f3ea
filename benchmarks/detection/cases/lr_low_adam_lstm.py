"""An LSTM classifying digits read row by row (8 steps of 8 pixels), trained with Adam at lr=3e-8.

Why it is pathological: the recurrent net is well-behaved (short sequences, LSTM
gating, healthy gradient norms), but Adam's per-step move of ~lr = 3e-8 per weight
is ~1e-7 of the weights' scale, so nothing is learnt: the loss stays at chance.
"""
# expect: learning_rate_too_low
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)


class RowLSTM(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.fc(h[-1])


model = RowLSTM()
opt = torch.optim.Adam(model.parameters(), lr=3e-8)
loss_fn = nn.CrossEntropyLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = loss_fn(model(X[idx]), y[idx])
    loss.backward()
    opt.step()

print("final loss", f"{loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
