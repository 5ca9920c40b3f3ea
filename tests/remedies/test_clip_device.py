"""On CUDA, the transforms never make the host wait for the device (no `.item()`, no `if norm >
max`): run under ``torch.cuda.set_sync_debug_mode("error")``. Skipped without a GPU."""

import pytest
import torch
from torch import nn

from gradwatch.remedies.clip import (adaptive_grad_clip, autoclip, chain, clip_by_global_norm, clip_by_value,
                                     log_sink, skip_nonfinite, zscore_clip)

FACTORIES = {
    "global_norm": lambda: clip_by_global_norm(1.0),
    "value": lambda: clip_by_value(0.1),
    "autoclip": lambda: autoclip(10),
    "zscore": lambda: zscore_clip(3.0, window=8, min_history=2),
    "agc": lambda: adaptive_grad_clip(0.01),
    "skip": lambda: skip_nonfinite(),
}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_no_host_sync_on_cuda(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)).cuda()
    transform = chain(FACTORIES[name]())
    for step in range(4):
        model.zero_grad()
        model(torch.randn(16, 8, device="cuda")).pow(2).sum().mul(10 ** step).backward()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            transform(model)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_log_sink_flattens_a_chain_for_a_logger():
    logged = []
    model = nn.Linear(3, 2)
    model(torch.randn(4, 3)).sum().mul(100).backward()
    chain(skip_nonfinite(), clip_by_global_norm(1.0), sink=log_sink(lambda **kw: logged.append(kw)))(model)
    (row,) = logged
    assert set(row) == {"clip.skip_nonfinite.skipped", "clip.skip_nonfinite.norm", "clip.skip_nonfinite.skips",
                        "clip.clip_by_global_norm.norm", "clip.clip_by_global_norm.coef",
                        "clip.clip_by_global_norm.clipped"}
    assert float(row["clip.clip_by_global_norm.norm"]) > 1.0
