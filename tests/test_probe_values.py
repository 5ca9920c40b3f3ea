"""The batched statistics (what the watcher records) equal the one-by-one reference functions."""

import math

import pytest
import torch
from torch import nn

from gradwatch.probes.activations import identical_fraction, output_stats
from gradwatch.probes.modules import ModuleProbe
from gradwatch.probes.tensors import TensorStats


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Sigmoid(),
                        nn.Linear(32, 16), nn.GELU(), nn.Linear(16, 4))
    with torch.no_grad():
        net[2].weight[1:4] = net[2].weight[0]  # units 0-3 of the tanh layer are twins
        net[2].bias[1:4] = net[2].bias[0]
        net[4].weight.mul_(25.0)  # the sigmoid layer partly saturates
        net[0].bias.sub_(0.5)  # some ReLUs are silent
    return net


@pytest.mark.parametrize("batch", [5, 300])  # small outputs are stashed and batched; large ones measured at once
def test_module_statistics_equal_output_stats(batch):
    net = _net()
    x = torch.randn(batch, 8)
    seen = {}
    handles = [m.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, o.detach().clone()))
               for i, m in enumerate(net) if i in (1, 3, 5, 7)]
    probe = ModuleProbe(net)
    probe.arm()
    net(x).sum().backward()
    vec, _ = probe.collect()
    probe.disarm()
    for h in handles:
        h.remove()
    names = [e["name"] for e in probe.entries]
    acts = {1: "relu", 3: "tanh", 5: "sigmoid", 7: "gelu"}
    for i, act in acts.items():
        ref = output_stats(seen[i], act)
        mid = names.index(str(i))
        for key in ("act_mean", "act_std", "act_zero", "act_sat", "act_identical"):
            if key not in ref:
                assert math.isnan(float(vec[key][mid])) if key in vec else True
                continue
            assert float(vec[key][mid]) == pytest.approx(float(ref[key]), rel=1e-5, abs=1e-6), (act, key)
    tanh = names.index("3")
    assert float(vec["act_identical"][tanh]) == pytest.approx(4 / 32)
    assert 0 < float(vec["act_sat"][names.index("5")]) < 1


def test_weight_statistics_equal_the_reference():
    torch.manual_seed(0)
    ws = [nn.Parameter(torch.randn(64, 48)) for _ in range(5)] + [nn.Parameter(torch.randn(6, 7)) for _ in range(5)]
    ws += [nn.Parameter(torch.randn(300, 200)), nn.Parameter(torch.randn(300, 200))]  # large: not stacked
    with torch.no_grad():
        ws[1][5:9] = ws[1][0]
        ws[7][2] = ws[7][3]
        ws[10][100:150] = ws[10][0]
    for w in ws:
        w.grad = torch.randn_like(w)
    ws[3].grad[2, 2] = -50.0
    stats = TensorStats(ws)
    ident = stats.weight_stats()["identical_frac"]
    for i, w in enumerate(ws):
        assert float(ident[i]) == pytest.approx(float(identical_fraction(w.detach())), abs=1e-6), i
    assert [round(float(ident[i]), 4) for i in (1, 7, 10)] == [round(5 / 64, 4), round(2 / 6, 4), round(51 / 300, 4)]
    gmax = stats.grad_stats(full=True)["grad_max"]
    assert [float(v) for v in gmax] == pytest.approx([float(w.grad.abs().max()) for w in ws])
    assert float(gmax[3]) == 50.0


def test_functional_activations_are_seen_in_parts_of_a_root_that_is_never_called():
    # gradwatch run watches a ModuleDict whose members the script calls one by one: the mode that
    # sees torch.sigmoid(h) must follow the outermost call into the model, not the root's own
    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 8)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    torch.manual_seed(0)
    root = nn.ModuleDict({"enc": Enc(), "head": nn.Linear(8, 1)})
    probe = ModuleProbe(root)
    probe.arm()
    root["head"](root["enc"](torch.randn(16, 4))).sum().backward()
    vec, _ = probe.collect()
    probe.disarm()
    names = [e["name"] for e in probe.entries]
    assert "enc.fc:sigmoid" in names
    assert 0 < float(vec["act_mean"][names.index("enc.fc:sigmoid")]) < 1
    assert torch.isfinite(vec["delta"][names.index("head")])
    # and outside the model's calls nothing is intercepted any more
    assert probe._mode is None


@pytest.mark.parametrize("keep", [False, True])
def test_update_norm_is_the_weight_change_step_after_step(keep):
    # kept buffers (stats="all") are overwritten by every snapshot: each step measures its own update
    torch.manual_seed(0)
    ws = [nn.Parameter(torch.randn(8, 8)) for _ in range(6)] + [nn.Parameter(torch.randn(300, 40))]
    stats = TensorStats(ws, keep_snapshot=keep)
    for scale in (1e-3, 5.0, 0.0):
        before = [w.detach().clone() for w in ws]
        stats.snapshot()
        with torch.no_grad():
            for w in ws:
                w.add_(scale * torch.randn_like(w))
        upd = stats.update_norm()
        expect = [float(torch.linalg.vector_norm(w.detach() - b)) for w, b in zip(ws, before)]
        assert [float(u) for u in upd] == pytest.approx(expect, rel=1e-5, abs=1e-7), scale
    assert (stats._buffers is not None) == keep


def test_dead_units_are_those_silent_over_the_last_window_of_observations():
    # a shared ReLU called twice a step (its units fire if they fire in either call) and one called
    # once; the inputs decide which units fire at each step; the reference is a plain window
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared, self.once = nn.ReLU(), nn.ReLU()

        def forward(self, a, b, c):
            return self.shared(a).sum() + self.shared(b).sum() + self.once(c).sum()

    torch.manual_seed(0)
    window, units = 3, 6
    net = Net()
    probe = ModuleProbe(net, dead_window=window)
    names = [e["name"] for e in probe.entries]
    seen = {"shared": [], "once": []}
    for step in range(9):
        fire = [torch.rand(units) < 0.3 for _ in range(3)]
        a, b, c = [(torch.where(f, 1.0, -1.0) * torch.ones(4, units)).requires_grad_() for f in fire]
        probe.arm()
        net(a, b, c).backward()
        vec, _ = probe.collect()
        probe.disarm()
        for name, now in (("shared", fire[0] | fire[1]), ("once", fire[2])):
            seen[name].append(now)
            recent = torch.stack(seen[name][-window:]).any(0)
            mid = names.index(name)
            assert float(vec["act_silent"][mid]) == pytest.approx(1 - now.float().mean().item()), (step, name)
            assert float(vec["act_dead"][mid]) == pytest.approx(1 - recent.float().mean().item()), (step, name)


def test_functional_activations_stay_seen_when_the_mode_is_scoped_to_where_they_occur(monkeypatch):
    # after the forward passes that learn where functional activations occur, the mode is on only
    # there: every activation is still measured, and the other modules' ops are not intercepted
    from gradwatch.probes import modules as pm

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.block = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8))

        def forward(self, x):
            h = torch.relu(self.fc1(x))  # right after the module that made its input
            g = self.fc3(h)
            h = torch.tanh(self.fc2(h) + 1.0)  # on the module's own tensor
            b = self.block(h)
            return b + torch.sigmoid(g)  # on an output made two modules earlier

    calls = []
    original = pm._FunctionalActivations.__torch_function__

    def counting(self, func, types, args=(), kwargs=None):
        calls[-1] += 1
        return original(self, func, types, args, kwargs)

    monkeypatch.setattr(pm._FunctionalActivations, "__torch_function__", counting)
    torch.manual_seed(0)
    net = Net()
    probe = ModuleProbe(net)
    probe.arm()
    for _ in range(8):
        calls.append(0)
        net(torch.randn(5, 4)).sum().backward()
        vec, _ = probe.collect()
        names = [e["name"] for e in probe.entries]
        for name in ("fc1:relu", ":tanh", "fc3:sigmoid"):
            assert 0 < abs(float(vec["act_mean"][names.index(name)])) < 1, (len(calls), name)
    probe.disarm()
    learning, scoped = calls[:3], calls[3:]
    assert max(scoped) < min(learning)
    assert probe._mode is None


def test_activation_std_keeps_its_digits_when_the_mean_dwarfs_it():
    # a saturated sigmoid: mean ~0.9999, std ~1e-5; the one-pass √(E[x²] − mean²) would be noise
    from gradwatch.probes.modules import _std

    torch.manual_seed(0)
    flat = torch.stack([0.9999 + 1e-5 * torch.randn(4096), torch.randn(4096), 3.0 + torch.rand(4096)])
    got = _std(flat, flat.mean(1), cpu=True)
    ref = flat.double().std(dim=1, unbiased=False)
    assert got.double() == pytest.approx(ref, rel=1e-3)


def test_delta_is_the_gradient_at_each_output_also_when_an_inplace_op_follows():
    # δ of a Linear whose output an in-place ReLU overwrites, and of an output used twice
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    x = torch.randn(5, 6)
    probe = ModuleProbe(net)
    probe.arm()
    out = net(x)
    (out.sum() + (out ** 2).sum()).backward()
    vec, _ = probe.collect()
    probe.disarm()
    h = net[0](x)
    h.retain_grad()
    a = torch.relu(h)
    a.retain_grad()
    y = net[2](a)
    y.retain_grad()
    (y.sum() + (y ** 2).sum()).backward()
    names = [e["name"] for e in probe.entries]
    for name, ref in (("0", h.grad), ("1", a.grad), ("2", y.grad)):
        assert float(vec["delta"][names.index(name)]) == pytest.approx(float(ref.norm()), rel=1e-5), name
