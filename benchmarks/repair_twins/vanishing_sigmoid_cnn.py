"""Healthy twin of vanishing_sigmoid_cnn: the same script with its pathology removed by hand.

The case: A 10-layer all-sigmoid CNN on 8x8 digit images (plain SGD). Same data, architecture and
depth, batch size, number of steps, optimizer and loss as
benchmarks/detection/cases/vanishing_sigmoid_cnn.py, and the same final eval line. Changed: ReLU
instead of torch.sigmoid after each conv, with He init and zero biases (He et al. 2015; Glorot &
Bengio 2010): sigmoid' <= 1/4 and the default gain shrank the back-propagated signal 5-10x per
layer; ReLU with He init keeps it ~1. Same 10 convs.
"""
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
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu"); nn.init.zeros_(conv.bias)

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(x))
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
