"""Everyday silent gradient bugs: each seen exactly from what the watcher records, and each
correct variant of the same loop stays silent."""

import copy

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.runscript import run_script


def _data(n=40, bs=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, bs, 16, generator=g)
    return [(xb, (xb[:, :4].argmax(1))) for xb in x]


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def _kinds(out):
    d = gw.diagnose(out)
    return {f.kind: f for f in d.findings}


def test_a_missing_zero_grad_is_seen_exactly_and_accumulation_inside_a_step_is_not(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gw.watch(model, opt, out=tmp_path / "a", every=2, stats_budget=None):
        for x, y in _data():
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    f = _kinds(tmp_path / "a")["gradients_not_zeroed"]
    assert f.severity in ("warning", "critical") and f.remedies[0].id == "zero_grad_each_step"
    assert set(f.layers) == {n for n, _ in model.named_parameters()}

    model = _mlp()  # four micro-batches per optimizer step, zeroed after each step: correct
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gw.watch(model, opt, out=tmp_path / "b", every=2, stats_budget=None):
        for i, (x, y) in enumerate(_data(80, 8)):
            (nn.functional.cross_entropy(model(x), y) / 4).backward()
            if i % 4 == 3:
                opt.step(); opt.zero_grad(set_to_none=i % 8 == 3)  # both ways of zeroing
    assert "gradients_not_zeroed" not in _kinds(tmp_path / "b")


def test_the_prior_gradient_read_equals_the_stale_grad(tmp_path):
    model = nn.Linear(3, 1)
    x = torch.randn(5, 3)
    with gw.watch(model, out=tmp_path, every=1) as w:
        model(x).sum().backward()            # step 0 (no optimizer: a step is a backward)
        stale = torch.linalg.vector_norm(model.weight.grad).item()
        model(x).sum().backward()            # step 1: .grad still holds step 0's gradient
    prior = gw.load(tmp_path).series("grad_prior_norm")
    assert prior.loc[1, "weight"] == pytest.approx(stale, rel=1e-2)  # bfloat16 storage


def test_a_detach_inside_the_model_names_the_cut(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
            self.head = nn.Linear(32, 4)

        def forward(self, x):
            return self.head(self.enc(x).detach())

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=tmp_path / "cut", every=2, stats_budget=None):
        for x, y in _data():
            opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    f = _kinds(tmp_path / "cut")["disconnected_layers"]
    assert f.layers == ["enc.0"] and f.evidence["gradient_stops_before"] == "head"
    # the same model frozen on purpose is healthy
    torch.manual_seed(0)
    model = Net()
    model.enc.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    with gw.watch(model, opt, out=tmp_path / "frozen", every=2, stats_budget=None):
        for x, y in _data():
            opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    kinds = _kinds(tmp_path / "frozen")
    assert "disconnected_layers" not in kinds and "modules_without_optimizer" not in kinds


def test_a_hand_written_update_that_rebinds_a_name_changes_nothing(tmp_path):
    model = _mlp()
    with gw.watch(model, out=tmp_path / "bad", every=2, stats_budget=None):
        for x, y in _data():
            model.zero_grad(); nn.functional.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p = p - 0.1 * p.grad  # noqa: PLW2901 - the bug under test
    f = _kinds(tmp_path / "bad")["parameters_not_updated"]
    assert f.severity == "critical" and len(f.layers) == 6
    model = _mlp()
    with gw.watch(model, out=tmp_path / "good", every=2, stats_budget=None):
        for x, y in _data():
            model.zero_grad(); nn.functional.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    run = gw.load(tmp_path / "good")
    assert len(run.steps) == 40 and (run.series("update_norm") > 0).all().all()
    assert "parameters_not_updated" not in _kinds(tmp_path / "good")


@pytest.mark.slow
def test_zero_code_runs_see_a_hand_written_loop_from_step_0_and_an_optimizer_over_a_copy(tmp_path):
    common = """
import copy, torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
x = torch.randn(64, 16); y = x[:, :4].argmax(1)
"""
    manual = tmp_path / "manual.py"
    manual.write_text(common + """
for step in range(25):
    loss = nn.functional.cross_entropy(model(x), y)
    model.zero_grad(); loss.backward()
    for p in model.parameters():
        p.data.add_(p.grad, alpha=-0.1)
""")
    status, w = run_script(manual, [], out=tmp_path / "m", every=5, stats_budget=None)
    run = gw.load(tmp_path / "m")
    assert status == 0 and len(run.steps) == 25 and run.steps.stats.iloc[0]
    assert run.series("delta").index[0] == 0 and (run.series("update_norm").iloc[0] > 0).all()
    assert gw.diagnose(tmp_path / "m").verdict == "healthy"
    copied = tmp_path / "copied.py"
    copied.write_text(common + """
ema = copy.deepcopy(model)
opt = torch.optim.SGD(ema.parameters(), lr=0.1)
for step in range(25):
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
""")
    status, w = run_script(copied, [], out=tmp_path / "c", every=5, stats_budget=None)
    kinds = _kinds(tmp_path / "c")
    assert status == 0 and kinds["modules_without_optimizer"].severity == "critical"


def test_a_hand_written_loop_over_micro_batches_is_one_step_per_update_and_not_stale(tmp_path):
    model = _mlp()
    with gw.watch(model, out=tmp_path, every=3, stats_budget=None):
        for i, (x, y) in enumerate(_data(120, 8)):
            (nn.functional.cross_entropy(model(x), y) / 4).backward()
            if i % 4 == 3:
                with torch.no_grad():
                    for p in model.parameters():
                        p -= 0.1 * p.grad
                model.zero_grad()
    run = gw.load(tmp_path)
    # the first update is seen at the fourth backward: until then each backward is a step
    assert len(run.steps) == 3 + 30
    assert (run.series("update_norm").iloc[1:] > 0).all().all()
    kinds = _kinds(tmp_path)
    assert "gradients_not_zeroed" not in kinds and "parameters_not_updated" not in kinds


def test_a_gan_whose_generator_loss_reaches_the_discriminator_before_its_zero_grad_is_not_stale(tmp_path):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16))
    D = nn.Sequential(nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    oG, oD = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    bce = nn.BCEWithLogitsLoss()
    with gw.watch(D, oD, out=tmp_path / "d", every=2, stats_budget=None):
        for x, _ in _data(30, 16):
            fake = G(torch.randn(16, 4))
            D.zero_grad()  # the DCGAN order: D's .grad still holds the generator's pass until here
            (bce(D(x), torch.ones(16, 1)) + bce(D(fake.detach()), torch.zeros(16, 1))).backward()
            oD.step()
            G.zero_grad()
            bce(D(fake), torch.ones(16, 1)).backward()  # reaches D's .grad too
            oG.step()
    assert "gradients_not_zeroed" not in _kinds(tmp_path / "d")


def test_a_watched_model_can_be_saved_whole_in_any_step(tmp_path):
    model = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.GRU(8, 8, batch_first=True))
    x = torch.randn(4, 5, 16)
    with gw.watch(model, out=tmp_path / "run", every=1):  # statistics hooks armed on every step
        for i in range(3):
            out, _ = model(x)
            model.zero_grad(); out.sum().backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.01 * p.grad
            torch.save(model, tmp_path / "model.pt")  # pickles the module with its hooks
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert torch.allclose(loaded(x)[0], model(x)[0])


def test_updates_too_small_to_represent_are_not_a_code_fault(tmp_path):
    # lr·|g| far below the float spacing of weights of size 1e3: every step rounds away, as
    # under a vanishing gradient or a rate far too small (their own rules' business)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e3) if p.dim() == 1 else p.normal_(0, 1e3)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    with gw.watch(model, opt, out=tmp_path, every=2, stats_budget=None):
        for x, y in _data(20):
            opt.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    assert (gw.load(tmp_path).series("update_norm") == 0).all().all()
    assert "parameters_not_updated" not in _kinds(tmp_path)
