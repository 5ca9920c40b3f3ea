"""e15 greedy-pretraining: a tiny run has the documented structure (not the verdict)."""

import torch
from torch import nn

from gradwatch.lab import e15_greedy_pretraining as e15
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e15.Config(depth=3, width=8, pretrain_steps=4, finetune_steps=6, every=2)
    r = run_experiment(e15, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    for key in ("accuracy", "final_loss", "log10_delta_ratio_start", "log10_delta_ratio_mean",
                "delta_profile_start", "weight_norm_start"):
        assert set(m[key]) == {"random", "pretrained"}, key
    assert len(m["delta_profile_start"]["random"]) == 3 and len(m["pretrain_final_loss"]) == 3
    assert len(r.checks) == 2
    assert set(r.tables) == {"random", "pretrained"}
    assert r.figures and all((tmp_path / e15.NAME / f).exists() for f in r.figures)
    runs = tmp_path / e15.NAME / "runs"
    assert {p.name for p in runs.iterdir()} == {"pretrain-1", "pretrain-2", "pretrain-3",
                                                "finetune-random", "finetune-pretrained"}


def test_network_shares_the_encoders():
    encs = [nn.Linear(64, 8), nn.Linear(8, 8)]
    net = e15.make_net(encs)
    assert net[0] is encs[0] and net[2] is encs[1]
    assert net(torch.rand(3, 64)).shape == (3, 10)
