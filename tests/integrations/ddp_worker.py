"""Worker for the torch.distributed tests: ``torchrun --nproc_per_node=2 ddp_worker.py OUT PHASE...``.

Phases (each its own watched run under OUT/PHASE, in one process group):
  healthy  DDP, data split by rank: the record must equal a single process on the global batch
  outside  a head outside DDP (unsynced), rank 1 alone gets a NaN at step 5, guard on
  nosync   every backward under no_sync(): no gradient is ever averaged
  fsdp     fully_shard on CPU/gloo
  dies     rank 1 kills itself (SIGKILL) at step 7; rank 0 must stop with PeerLost
  raises   rank 1 raises at step 6; rank 0 stops with PeerLost and records rank 1's exception
"""

import json
import os
import signal
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gradwatch.integrations.distributed import DistributedWatcher, PeerLost

torch.set_num_threads(1)
STEPS = 10


def batch(step, rank):
    g = torch.Generator().manual_seed(1000 * step + rank)
    x = torch.randn(16, 8, generator=g)
    return x, x[:, :2] * 0.5 + 0.1 * torch.randn(16, 2, generator=g)


def body():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))


def checksum(module):
    return [float(p.detach().double().sum()) for p in module.parameters()]


def healthy(out, rank):
    model = DDP(body())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with DistributedWatcher(model, opt, out=out, every=2, flush_every=4, quiet=True) as w:
        for step in range(STEPS):
            x, y = batch(step, rank)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"verdict": w.summary.diagnosis.verdict, "weights": checksum(model)}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = DDP(body())  # only the body is data-parallel
        self.head = nn.Linear(2, 1)  # forgotten: its gradient is never averaged

    def forward(self, x):
        feat = self.body(x)
        return feat, self.head(feat.detach())


def outside(out, rank):
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with DistributedWatcher(net, opt, out=out, every=2, flush_every=4, guard=True, quiet=True) as w:
        for step in range(STEPS):
            x, y = batch(step, rank)
            feat, h = net(x)
            if step == 5 and rank == 1:
                h = h * float("nan")  # only rank 1, only the head: the body's gradient stays finite
            loss = nn.functional.mse_loss(feat, y) + nn.functional.mse_loss(h, y[:, :1])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"kinds": sorted(w.summary.diagnosis.kinds()), "body": checksum(net.body), "head": checksum(net.head)}


def nosync(out, rank):
    model = DDP(body())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with DistributedWatcher(model, opt, out=out, every=2, flush_every=4, quiet=True) as w:
        for step in range(STEPS):
            x, y = batch(step, rank)
            with model.no_sync():  # misuse: the backward before step() must synchronise
                loss = nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
            opt.step()
    return {"kinds": sorted(w.summary.diagnosis.kinds())}


def fsdp(out, rank):
    from torch.distributed.fsdp import fully_shard

    model = body()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with DistributedWatcher(model, opt, out=out, every=2, flush_every=4, quiet=True) as w:
        for step in range(STEPS):
            x, y = batch(step, rank)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"verdict": w.summary.diagnosis.verdict}


def dies(out, rank):
    model = DDP(body())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    try:
        with DistributedWatcher(model, opt, out=out, every=2, flush_every=4, quiet=True):
            for step in range(STEPS):
                if step == 7 and rank == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                x, y = batch(step, rank)
                loss = nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    except PeerLost as e:
        return {"peer_lost": str(e)}
    return {"peer_lost": None}


def raises(out, rank):
    model = DDP(body())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    try:
        with DistributedWatcher(model, opt, out=out, every=2, flush_every=4, quiet=True):
            for step in range(STEPS):
                if step == 6 and rank == 1:
                    raise ValueError("rank 1 found a bad batch")
                x, y = batch(step, rank)
                loss = nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    except PeerLost as e:
        return {"peer_lost": str(e)}
    return {"peer_lost": None}


def main():
    out, phases = sys.argv[1], sys.argv[2:]
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    results = {}
    for phase in phases:
        results[phase] = globals()[phase](os.path.join(out, phase), rank)
    with open(os.path.join(out, f"result-rank{rank}.json"), "w") as f:
        json.dump(results, f)
    if not {"dies", "raises"} & set(phases):
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
