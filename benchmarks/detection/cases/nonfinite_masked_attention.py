"""A hand-written transformer encoder classifying variable-length token sequences, with a padding mask.

Why it is pathological: attention masks padded keys with
`scores.masked_fill(pad, float("-inf"))` and a softmax. Some examples are empty
(length 0), so their whole row of scores is -inf and the softmax computes 0/0 = NaN.
The NaN flows into the loss, the gradients and, after the optimizer step, into every
weight. It happens only when a batch happens to contain an empty sequence, i.e. at
some step in the middle of the run. The script keeps going.
"""
# expect: nonfinite
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

VOCAB, PAD, MAXLEN, D, HEADS = 20, 0, 12, 32, 4


def make_batch(n=32):
    lengths = torch.randint(1, MAXLEN + 1, (n,))
    lengths[torch.rand(n) < 0.0015] = 0  # the occasional empty document
    tokens = torch.randint(1, VOCAB, (n, MAXLEN))
    pad = torch.arange(MAXLEN)[None, :] >= lengths[:, None]
    tokens[pad] = PAD
    label = ((tokens > VOCAB // 2) & ~pad).sum(1) > (~pad).sum(1) // 2  # mostly-large tokens?
    return tokens, pad, label.long()


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)

    def forward(self, x, pad):
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, HEADS, D // HEADS).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // HEADS)
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        att = F.softmax(scores, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = SelfAttention()
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x, pad):
        x = x + self.attn(self.ln1(x), pad)
        return x + self.mlp(self.ln2(x))


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(torch.randn(MAXLEN, D) * 0.02)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(D, 2)

    def forward(self, tokens, pad):
        h = self.emb(tokens) + self.pos
        for block in self.blocks:
            h = block(h, pad)
        keep = (~pad).float()[..., None]
        return self.head((h * keep).sum(1) / keep.sum(1).clamp(min=1))


model = Classifier()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

for step in range(200):
    tokens, pad, label = make_batch()
    opt.zero_grad()
    loss = F.cross_entropy(model(tokens, pad), label)
    loss.backward()
    opt.step()
    if step % 40 == 0:
        print(f"step {step} loss {loss.item():.4f}")

print(f"final loss {loss.item():.4f}")
with torch.no_grad():  # evaluation only, after training: accuracy on 2048 fresh sequences (fixed seed)
    torch.manual_seed(1234); tokens, pad, label = make_batch(2048)
    print(f"eval test_acc={((model(tokens, pad).argmax(1) == label).float().mean().item()):.4f}")
