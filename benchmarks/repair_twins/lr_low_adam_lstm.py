"""Healthy twin of lr_low_adam_lstm: the same script with its pathology removed by hand.

The case: An LSTM classifying digits read row by row (8 steps of 8 pixels), trained with Adam at
lr=3e-8. Same data, architecture and depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/lr_low_adam_lstm.py, and the same final eval line. Changed: Adam lr 3e-8
-> 1e-3 (Adam's default).
"""
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
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
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
