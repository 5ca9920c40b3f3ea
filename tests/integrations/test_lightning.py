"""Lightning: GradwatchCallback trains a real LightningModule and measures the gradients the
optimizer uses (after clipping and AMP unscaling), once per optimizer step."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from .conftest import need

L = need("lightning.pytorch")

import gradwatch as gw  # noqa: E402
from gradwatch.integrations.lightning import GradwatchCallback  # noqa: E402

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*GPU available but not used.*")


class Regressor(L.LightningModule):
    def __init__(self, poison_batch=None, crash_at=None, lr=0.05):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
        self.poison_batch, self.crash_at, self.lr = poison_batch, crash_at, lr
        self.losses = []  # the loss of each micro-batch, as training_step computed it

    def training_step(self, batch, batch_idx):
        x, y = batch
        if batch_idx == self.crash_at:
            raise RuntimeError("boom in training_step")
        if batch_idx == self.poison_batch:
            x = x * (1e6 if self.trainer.precision == "16-mixed" else float("nan"))  # fp16 overflows
        loss = nn.functional.mse_loss(self.net(x).float(), y)
        self.losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class PreClip(L.Callback):
    """What Lightning's own hook sees: unscaled, not yet clipped."""

    def __init__(self):
        self.norms, self.skipped, self._scale = [], [], None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        gs = [p.grad.norm() for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack(gs))))
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self._scale = scaler.get_scale() if scaler is not None else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.get_scale() < self._scale:  # the scaler backed off: skipped
            self.skipped.append(batch_idx)


def loader(n=96, batch=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = x[:, :1] * 2 + 0.1 * torch.randn(n, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def trainer(tmp_path, callbacks, **kw):
    return L.Trainer(default_root_dir=tmp_path, logger=L.loggers.CSVLogger(tmp_path), callbacks=callbacks,
                     max_epochs=1, accelerator="cpu", devices=1, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kw)


def test_fit_records_clipped_gradients_per_optimizer_step(tmp_path):
    model, pre, cb = Regressor(), PreClip(), GradwatchCallback(every=2, quiet=True)
    t = trainer(tmp_path, [pre, cb], gradient_clip_val=0.05, accumulate_grad_batches=2)
    t.fit(model, loader())
    run = gw.load(cb.summary.report.parent)
    assert str(cb.summary.report.parent).startswith(str(t.log_dir))  # next to the Lightning logs
    assert cb.summary.report.exists()
    assert len(run.steps) == t.global_step == 6  # 12 batches, 2 per optimizer step
    pre = np.array(pre.norms)
    assert (pre > 0.05).all()  # clipping was active at every step...
    # ...and the record holds the clipped norm the optimizer used, not Lightning's pre-clip view
    assert np.allclose(run.steps.grad_norm, np.minimum(pre, 0.05), rtol=1e-4)
    micro = np.array(model.losses).reshape(-1, 2)
    assert np.allclose(run.steps.loss, micro.mean(1), rtol=1e-5)
    assert run.meta["framework"]["name"] == "lightning"


def test_headline_numbers_reach_the_logger(tmp_path):
    import pandas as pd

    cb = GradwatchCallback(every=5, quiet=True)
    t = trainer(tmp_path, [cb])
    t.fit(Regressor(), loader())
    metrics = pd.read_csv(f"{t.log_dir}/metrics.csv")
    row = metrics.dropna(subset=["gradwatch/healthy"]).iloc[-1]
    assert row["gradwatch/healthy"] == (1.0 if cb.summary.diagnosis.verdict == "healthy" else 0.0)
    assert row["gradwatch/steps"] == len(gw.load(cb.summary.report.parent).steps) == t.global_step
    assert row["gradwatch/grad_norm_last"] == pytest.approx(
        gw.load(cb.summary.report.parent).steps.grad_norm.iloc[-1], rel=1e-6)


def test_16_mixed_is_measured_unscaled_and_an_overflow_is_a_skip(tmp_path):
    model, pre, cb = Regressor(poison_batch=4), PreClip(), GradwatchCallback(every=1, quiet=True)
    # Lightning maps precision="16-mixed" on the CPU to bf16; its plugin takes a CPU GradScaler
    from lightning.pytorch.plugins import MixedPrecision

    amp = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    t = trainer(tmp_path, [pre, cb], plugins=[amp])
    t.fit(model, loader())
    run = gw.load(cb.summary.report.parent)
    skips = run.events[run.events.kind == "amp_skip"]
    # fp16 gradients × 65536 overflow on the first step too (the scaler's usual start), and
    # the poisoned batch 4 overflows whatever the scale
    assert 4 in pre.skipped and len(pre.skipped) < 6
    assert skips.step.tolist() == [b - k for k, b in enumerate(pre.skipped)]
    assert len(run.steps) == 12 - len(pre.skipped)  # a skipped step is not an optimizer step
    kept = [n for i, n in enumerate(pre.norms) if i not in pre.skipped]
    assert np.allclose(run.steps.grad_norm, kept, rtol=1e-5)  # unscaled: Lightning's hook agrees
    losses = [v for i, v in enumerate(model.losses) if i not in pre.skipped]
    assert np.allclose(run.steps.loss, losses, rtol=1e-3)  # the loss, not loss × 65536
    assert not cb.summary.diagnosis.kinds(serious_only=False) & {"nonfinite", "exploding_gradients"}


def test_guard_skips_a_nan_step(tmp_path):
    model, cb = Regressor(poison_batch=6), GradwatchCallback(every=5, guard=True, quiet=True)
    trainer(tmp_path, [cb]).fit(model, loader())
    run = gw.load(cb.summary.report.parent)
    assert run.events.kind.tolist().count("guard_skip") == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_crash_in_training_step_keeps_the_record_and_the_report(tmp_path):
    cb = GradwatchCallback(every=5, quiet=True)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, [cb]).fit(Regressor(crash_at=5), loader())
    run = gw.load(cb.summary.report.parent)
    assert len(run.steps) == 5 and cb.summary.report.exists()
    assert "crash" in run.events.kind.tolist()
    assert cb.watcher is None and math.isfinite(run.steps.loss.iloc[-1])


@pytest.mark.slow
def test_ddp_strategy_under_torchrun(tmp_path):
    """strategy="ddp" with two CPU processes: every rank watches, rank 0 alone writes, both get
    the same diagnosis."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("lightning_ddp_worker.py")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(worker), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    res = [json.loads((tmp_path / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert res[0] == res[1]
    run = gw.load(tmp_path / "run")
    assert len(run.steps) == res[0]["steps"] == 8  # 128 samples, 2 ranks × batches of 8
    assert run.meta["distributed"]["world_size"] == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == ["result-rank0.json", "result-rank1.json", "run"]
    assert "unsynced_gradients" not in gw.diagnose(run).kinds(serious_only=False)


def test_a_fit_resumed_from_a_checkpoint_continues_the_record(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(model, cb, ckpt_path=None):
        ck = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
        t = L.Trainer(default_root_dir=tmp_path, logger=L.loggers.CSVLogger(tmp_path), callbacks=[cb, ck],
                      max_epochs=2, accelerator="cpu", devices=1, enable_progress_bar=False,
                      enable_model_summary=False)
        t.fit(model, loader(), ckpt_path=ckpt_path)
        return t

    first = GradwatchCallback(every=2, quiet=True)
    with pytest.raises(RuntimeError, match="boom"):
        fit(Regressor(crash_at=9), first)  # 9 steps recorded, the last checkpoint after 8
    out = first.summary.report.parent
    assert gw.load(out).n_steps == 9
    again = GradwatchCallback(every=2, quiet=True)  # no out=: the checkpoint names the record
    t = fit(Regressor(), again, ckpt_path=tmp_path / "ckpt" / "epoch=0-step=8.ckpt")
    assert again.summary.report.parent == out and t.log_dir not in str(out)  # a new version_N, the same record
    run = gw.load(out)
    assert list(run.steps.index) == list(range(t.global_step))
    assert list(run.superseded.step) == [8]
    r = run.restarts
    assert len(r) == 1 and r.step[0] == 8 and r.source[0] == "watcher state"
    assert again.summary.diagnosis.steps == t.global_step
