"""Residual blocks written in forward() are found by a traced pass; Fixup and the diagnosis use them."""

import subprocess
import sys
import textwrap

import torch
import torch.nn.functional as F
from torch import nn

import gradwatch as gw
from gradwatch.inject import apply_to_model
from gradwatch.probes.traced_residuals import traced_residual_blocks


def _script(tmp_path, name: str, source: str):
    """Write ``source`` (indented freely) as ``tmp_path/name``; return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _gradwatch_run(script, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradwatch.cli", "run", *args, str(script)],
                          capture_output=True, text=True)


class Block(nn.Module):
    def __init__(self, w=16):
        super().__init__()
        self.a, self.b = nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x):
        return x + self.b(F.relu(self.a(x)))


class NotResidual(nn.Module):  # adds two layer outputs, not its own input
    def __init__(self, w=16):
        super().__init__()
        self.a, self.b = nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x):
        return self.a(x) + self.b(x)


class Net(nn.Module):
    def __init__(self, depth=6):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.blocks = nn.ModuleList(Block() for _ in range(depth))
        self.mix = NotResidual()
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        return self.out(self.mix(x)) + 0 * x.sum()  # a root-level add of a non-input: not a block


def test_traced_pass_finds_the_blocks_and_nothing_else_without_touching_the_model():
    torch.manual_seed(0)
    net, x = Net(), torch.randn(4, 8)
    before = [p.detach().clone() for p in net.parameters()]
    net.train()
    assert traced_residual_blocks(net, x) == [f"blocks.{i}" for i in range(6)]
    assert net.training and all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert traced_residual_blocks(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)), torch.randn(2, 8)) == []


def test_injected_fixup_zeroes_each_branch_end_and_scales_he_branches():
    torch.manual_seed(0)
    net, x = Net(depth=9), torch.randn(4, 8)
    apply_to_model("fixup_init", net, example=(x,))
    for blk in net.blocks:
        assert not blk.b.weight.any()
    # He for the layer before F.relu (seen through the traced pass), scaled by L^(-1/2), L = 9 blocks
    std = torch.cat([blk.a.weight.flatten() for blk in net.blocks]).std().item()
    assert abs(std / ((2 / 16) ** 0.5 / 3) - 1) < 0.1, std
    # the classifier keeps a standard (Xavier) init: a zero one grows by ~lr per step under Adam
    assert abs(net.out.weight.std().item() / (2 / (16 + net.out.out_features)) ** 0.5 - 1) < 0.35
    # at init every block is the identity: the stream does not grow with depth
    h = net.inp(x)
    assert torch.allclose(net.blocks[-1](h), h)


def test_gradwatch_run_records_the_blocks_and_the_diagnosis_prescribes_fixup(tmp_path):
    script = _script(tmp_path, "res.py", '''
        import torch, torch.nn as nn, torch.nn.functional as F
        torch.manual_seed(0)
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 32)
                for l in (self.a, self.b):
                    nn.init.kaiming_normal_(l.weight, nonlinearity="relu"); nn.init.zeros_(l.bias)
            def forward(self, x):
                return x + self.b(F.relu(self.a(x)))
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inp, self.out = nn.Linear(8, 32), nn.Linear(32, 4)
                self.blocks = nn.ModuleList(Block() for _ in range(24))
            def forward(self, x):
                x = self.inp(x)
                for b in self.blocks:
                    x = b(x)
                return self.out(x)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=1e-9)
        for step in range(12):
            x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
    ''')
    out = tmp_path / "run"
    r = _gradwatch_run(script, "--out", str(out), "--json", str(tmp_path / "d.json"), "--every", "1")
    assert r.returncode == 0, r.stderr
    assert gw.load(out).model["residual_blocks"] == [f"blocks.{i}" for i in range(24)]
    d = gw.diagnose(out)
    f = next(f for f in d.findings if f.kind == "exploding_gradients")
    assert f.remedies[0].id == "fixup_init" and "residual_without_normalisation" in [c.id for c in f.causes]
    assert 'range(24)' in f.remedies[0].code


def test_the_traced_pass_leaves_a_stateful_model_exactly_as_the_plain_run(tmp_path):
    # a forward with side effects (a call counter, a carried hidden state) must not see the watcher's pass
    script = _script(tmp_path, "stateful.py", '''
        import torch, torch.nn as nn
        torch.manual_seed(0)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.out, self.calls, self.h = nn.Linear(4, 4), nn.Linear(4, 1), 0, None
            def forward(self, x):
                self.calls += 1
                h = x + self.fc(x) if self.h is None else x + self.fc(x) + self.h
                self.h = h.detach().mean(0)
                return self.out(h)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(5):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        print(model.calls, repr(loss.item()), model.fc.weight.sum().item())
    ''')
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    watched = _gradwatch_run(script, "--out", str(tmp_path / "r"))
    assert plain.returncode == 0 and watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines()[0] == plain.stdout.strip()
    assert gw.load(tmp_path / "r").model["residual_blocks"] == []  # the root's own add is not a block
