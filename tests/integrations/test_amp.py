"""Mixed precision: autocast bfloat16 on the CPU, and GradScaler — gradients and δ measured
unscaled, skipped steps recorded as events and never taken for explosions."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import gradwatch as gw

POISON = {3, 7}  # iterations whose loss is multiplied by 1e36: the scaled gradients overflow


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)) for _ in range(n)]


def global_norm(model):
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))


def test_bfloat16_autocast_records_the_gradients_the_optimizer_uses(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    norms, losses = [], []
    with gw.watch(model, opt, out=tmp_path, every=2):
        for x, y in batches(8):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
                assert out.dtype == torch.bfloat16
                loss = nn.functional.mse_loss(out.float(), y)
            opt.zero_grad()
            loss.backward()
            norms.append(global_norm(model))
            losses.append(float(loss.detach()))
            opt.step()
    run = gw.load(tmp_path)
    assert np.allclose(run.steps.grad_norm, norms, rtol=1e-6)
    assert np.allclose(run.steps.loss, losses, rtol=1e-6)
    assert np.isfinite(run.series("delta").to_numpy(dtype=float)[:, 1:]).all()


def _scaled_run(out, fused=False, unscale_first=False):
    """Train with GradScaler; the poisoned iterations overflow and must be skipped."""
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    ref_norms, ref_losses, skipped = [], [], []
    with gw.watch(model, opt, out=out, every=1):
        for i, (x, y) in enumerate(batches(12)):
            loss = nn.functional.mse_loss(model(x), y) * (1e36 if i in POISON else 1.0)
            opt.zero_grad()
            scaler.scale(loss).backward()
            if unscale_first:
                scaler.unscale_(opt)
            before = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            if scaler.get_scale() < before:
                skipped.append(i)
            else:
                # not fused: the scaler unscaled p.grad in place; fused: unscaled by the watcher's
                # wrapper before the kernel ran (exact: the scale is a power of two)
                ref_norms.append(global_norm(model))
                ref_losses.append(float(loss.detach()))
    return model, gw.load(out), skipped, ref_norms, ref_losses


@pytest.mark.parametrize("fused,unscale_first", [(False, False), (False, True), (True, False)])
def test_grad_scaler_steps_are_unscaled_and_skips_are_events(tmp_path, fused, unscale_first):
    _, run, skipped, ref_norms, ref_losses = _scaled_run(tmp_path, fused, unscale_first)
    assert skipped == sorted(POISON)
    assert len(run.steps) == 12 - len(POISON)  # a skipped step is not an optimizer step
    assert np.allclose(run.steps.grad_norm, ref_norms, rtol=1e-5)
    assert np.allclose(run.steps.loss, ref_losses, rtol=1e-5)  # the loss, not loss × 65536
    ev = run.events[run.events.kind == "amp_skip"]
    # recorded at the index the next real step gets: iteration i minus the skips before it
    assert ev.step.tolist() == [i - k for k, i in enumerate(sorted(POISON))]
    assert ev.detail.map(lambda d: d["loss_scale"]).tolist() == [2.0 ** 16, 2.0 ** 15]
    d = gw.diagnose(run)
    assert not d.kinds(serious_only=False) & {"exploding_gradients", "nonfinite"}


def test_scaled_delta_equals_unscaled_delta(tmp_path):
    """δ of a scaled backward, divided by the scale, is δ of the plain run (exact in binary)."""
    _, scaled, _, _, _ = _scaled_run(tmp_path / "scaled")
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=tmp_path / "plain", every=1):
        for i, (x, y) in enumerate(batches(12)):
            if i in POISON:
                continue  # what the scaler did: no step on those batches
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    plain = gw.load(tmp_path / "plain")
    a = scaled.series("delta").to_numpy(dtype=float)
    b = plain.series("delta").to_numpy(dtype=float)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=1e-6, equal_nan=True)


def test_the_same_overflow_unscaled_is_an_explosion(tmp_path):
    """Control: without a scaler the poisoned steps are real steps, and the rules say so."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with gw.watch(model, opt, out=tmp_path, every=1):
        for i, (x, y) in enumerate(batches(12)):
            loss = nn.functional.mse_loss(model(x), y) * (1e36 if i in POISON else 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert gw.diagnose(tmp_path).kinds() & {"exploding_gradients", "nonfinite"}


def test_patches_are_removed_when_the_last_watcher_detaches(tmp_path):
    from torch.amp.grad_scaler import GradScaler

    from gradwatch.integrations import amp

    plain = (GradScaler.scale, GradScaler.step)
    assert plain == (amp._ORIGINAL["scale"], amp._ORIGINAL["step"])
    model = mlp()
    with gw.watch(model, out=tmp_path):
        assert GradScaler.step is not plain[1]
    assert (GradScaler.scale, GradScaler.step) == plain
    model2 = copy.deepcopy(model)
    s = torch.amp.GradScaler("cpu")
    assert amp.loss_scale_of(s.scale(model2(torch.randn(2, 8)).sum())) is None
