"""A 10-layer all-sigmoid CNN on 8x8 digit images (plain SGD).

Why it is pathological: every conv layer is followed by torch.sigmoid, whose
derivative is ≤ 0.25, and the default conv init keeps the per-layer gain of
the weights below 1, so ‖∂L/∂h‖ shrinks by roughly 5-10x per layer on the way
back. The first convolutions receive gradients many orders of magnitude smaller
than the last ones (Glorot & Bengio 2010).
"""
# expect: vanishing_gradients
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

torch.manual_seed(0)
torch.set_num_threads(1)


class DeepSigmoidCNN(nn.Module):
    def __init__(self, depth=10, ch=12):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(1 if i == 0 else ch, ch, 3, padding=1) for i in range(depth)]
        )
        self.head = nn.Linear(ch * 8 * 8, 10)

    def forward(self, x):
        for conv in self.convs:
            x = torch.sigmoid(conv(x))
        return self.head(x.flatten(1))


digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(digits.target)

model = DeepSigmoidCNN()
opt = torch.optim.SGD(model.parameters(), lr=0.05)
criterion = nn.CrossEntropyLoss()

for step in range(100):
    idx = torch.randint(0, len(X), (64,))
    opt.zero_grad()
    loss = criterion(model(X[idx]), y[idx])
    loss.backward()
    opt.step()

print("final loss", round(loss.item(), 4))
with torch.no_grad():  # evaluation only, after training: accuracy on the training set (no split here)
    print(f"eval train_acc={((model(X).argmax(1) == y).float().mean().item()):.4f}")
