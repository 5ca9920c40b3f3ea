# ---- realcode corpus: a vendored third-party file ----
# origin:  https://github.com/yunjey/pytorch-tutorial
# commit:  0500d3df5a2a8080ccfccbc00aca0eacc21818db
# path:    tutorials/02-intermediate/bidirectional_recurrent_neural_network/main.py
# licence: MIT; full text and notice in benchmarks/realcode/LICENSES/pytorch-tutorial.txt
# changes (marked "# realcode:" where they are):
#   1. MNIST (a download) replaced by scikit-learn's bundled 8x8 digits upsampled to 28x28 in
#      [0, 1] (realcode_digits), as ToTensor() gives; torchvision (not installed) imports
#      dropped
# ----
import torch 
import torch.nn as nn

# realcode: MNIST is not bundled; scikit-learn's 8x8 digits (1797 images, shipped with sklearn),
# upsampled to SIZE x SIZE in [0, 1] as ToTensor() gives, stand in: first 1500 train, the rest test.
def realcode_digits(train=True, size=28, mean=None, std=None, channels=1):
    import torch
    import torch.nn.functional as F_
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    X = F_.interpolate(X, size=(size, size), mode='bilinear', align_corners=False).clamp(0, 1)
    if mean is not None:
        X = (X - mean) / std
    X = X.repeat(1, channels, 1, 1)
    y = torch.tensor(y, dtype=torch.int64)
    part = slice(0, 1500) if train else slice(1500, None)
    return torch.utils.data.TensorDataset(X[part], y[part])


# Device configuration
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

# Hyper-parameters
sequence_length = 28
input_size = 28
hidden_size = 128
num_layers = 2
num_classes = 10
batch_size = 100
num_epochs = 2
learning_rate = 0.003

# MNIST dataset
train_dataset = realcode_digits(train=True)  # realcode

test_dataset = realcode_digits(train=False)  # realcode

# Data loader
train_loader = torch.utils.data.DataLoader(dataset=train_dataset,
                                           batch_size=batch_size, 
                                           shuffle=True)

test_loader = torch.utils.data.DataLoader(dataset=test_dataset,
                                          batch_size=batch_size, 
                                          shuffle=False)

# Bidirectional recurrent neural network (many-to-one)
class BiRNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, num_classes):
        super(BiRNN, self).__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(hidden_size*2, num_classes)  # 2 for bidirection
    
    def forward(self, x):
        # Set initial states
        h0 = torch.zeros(self.num_layers*2, x.size(0), self.hidden_size).to(device) # 2 for bidirection 
        c0 = torch.zeros(self.num_layers*2, x.size(0), self.hidden_size).to(device)
        
        # Forward propagate LSTM
        out, _ = self.lstm(x, (h0, c0))  # out: tensor of shape (batch_size, seq_length, hidden_size*2)
        
        # Decode the hidden state of the last time step
        out = self.fc(out[:, -1, :])
        return out

model = BiRNN(input_size, hidden_size, num_layers, num_classes).to(device)


# Loss and optimizer
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    
# Train the model
total_step = len(train_loader)
for epoch in range(num_epochs):
    for i, (images, labels) in enumerate(train_loader):
        images = images.reshape(-1, sequence_length, input_size).to(device)
        labels = labels.to(device)
        
        # Forward pass
        outputs = model(images)
        loss = criterion(outputs, labels)
        
        # Backward and optimize
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        
        if (i+1) % 100 == 0:
            print ('Epoch [{}/{}], Step [{}/{}], Loss: {:.4f}' 
                   .format(epoch+1, num_epochs, i+1, total_step, loss.item()))

# Test the model
with torch.no_grad():
    correct = 0
    total = 0
    for images, labels in test_loader:
        images = images.reshape(-1, sequence_length, input_size).to(device)
        labels = labels.to(device)
        outputs = model(images)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()

    print('Test Accuracy of the model on the 10000 test images: {} %'.format(100 * correct / total)) 

# Save the model checkpoint
torch.save(model.state_dict(), 'model.ckpt')