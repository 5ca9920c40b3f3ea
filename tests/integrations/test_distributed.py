"""torch.distributed: two gloo processes started by torchrun. The record rank 0 writes equals a
single process training on the global batch; unsynced gradients, a NaN on one rank and a dying
rank all reach rank 0's record and its diagnosis."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

import gradwatch as gw

from . import ddp_worker as W

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                                   reason="torch.distributed with gloo is not available")]
WORKER = Path(W.__file__)


def torchrun(out, *phases, expect_ok=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(WORKER), str(out), *phases]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if expect_ok:
        assert p.returncode == 0, p.stderr[-3000:]
    results = {}
    for r in (0, 1):
        f = Path(out) / f"result-rank{r}.json"
        results[r] = json.loads(f.read_text()) if f.exists() else None
    return p, results


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return out, torchrun(out, "healthy", "fsdp")[1]


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_broken")
    return out, torchrun(out, "outside", "nosync")[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, the global batch (rank 0's half, then rank 1's), the same model and rate."""
    out = tmp_path_factory.mktemp("single")
    model = W.body()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gw.watch(model, opt, out=out, every=2):
        for step in range(W.STEPS):
            (x0, y0), (x1, y1) = W.batch(step, 0), W.batch(step, 1)
            loss = nn.functional.mse_loss(model(torch.cat([x0, x1])), torch.cat([y0, y1]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return gw.load(out), W.checksum(model)


def close(a, b, rtol):
    a, b = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, equal_nan=True)


@pytest.mark.parametrize("phase", ["healthy", "fsdp"])
def test_rank_0_records_the_global_batch(replicated, reference, phase):
    out, results = replicated
    run, (ref, ref_weights) = gw.load(out / phase), reference
    assert close(run.steps.grad_norm, ref.steps.grad_norm, 1e-4)  # the reduced gradient's norm
    assert close(run.steps.loss, ref.steps.loss, 1e-5)  # the mean of the ranks' losses
    for metric in ("grad_norm", "weight_norm", "update_norm"):  # per parameter (shards add up)
        assert close(run.series(metric), ref.series(metric), 2e-2), metric
    # δ of the mean loss w.r.t. the whole batch: √(Σ_r δ_r²)/R; activation means: equal shares
    for metric in ("delta", "act_mean", "act_zero"):
        assert close(run.series(metric), ref.series(metric), 2e-2), metric
    assert results[0][phase]["verdict"] == results[1][phase]["verdict"]  # every rank has the diagnosis
    if phase == "healthy":
        assert results[0][phase]["weights"] == results[1][phase]["weights"]
        assert np.allclose(results[0][phase]["weights"], ref_weights, rtol=1e-4)
    assert run.meta["distributed"]["wrapper"] == ("fully_shard" if phase == "fsdp" else "DistributedDataParallel")


def test_only_rank_0_writes(replicated):
    out, _ = replicated
    assert sorted(p.name for p in out.iterdir()) == ["fsdp", "healthy", "result-rank0.json", "result-rank1.json"]
    for phase in ("healthy", "fsdp"):
        names = {p.name for p in (out / phase).iterdir()} - {"run.db-wal", "run.db-shm"}  # SQLite's, while read
        assert names == {"report.html", "run.db"}
        assert gw.load(out / phase).events.empty  # in sync: no unsynced_gradients event


def test_a_head_outside_ddp_is_unsynced_and_a_nan_on_rank_1_reaches_the_decision(broken):
    out, results = broken
    run = gw.load(out / "outside")
    d = gw.diagnose(run)
    f = next(f for f in d.findings if f.kind == "unsynced_gradients")
    assert f.layers == ["head.weight", "head.bias"] and f.severity == "critical"
    assert [c.id for c in f.causes] == ["param_outside_ddp"]
    # rank 1 alone had a NaN (in its head's gradient); rank 0's record and diagnosis say so
    assert "nonfinite" in d.kinds() and set(results[0]["outside"]["kinds"]) == d.kinds()
    assert "grad_norm:nan" in run.steps.loc[5, "nonfinite"]
    # the guard's decision was all-reduced: rank 0, whose gradient was finite, skipped too...
    skip = run.events[run.events.kind == "guard_skip"].detail.tolist()
    assert len(skip) == 1 and skip[0]["ranks"] == [1] and "non-finite gradient on rank 1" in skip[0]["reason"]
    # ...so the DDP part stayed identical on both ranks, while the forgotten head drifted
    assert results[0]["outside"]["body"] == results[1]["outside"]["body"]
    assert results[0]["outside"]["head"] != results[1]["outside"]["head"]


def test_no_sync_on_every_backward_is_unsynced(broken):
    out, results = broken
    d = gw.diagnose(out / "nosync")
    f = next(f for f in d.findings if f.kind == "unsynced_gradients")
    assert f.layers == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert [c.id for c in f.causes] == ["no_sync_before_step"]
    assert f.evidence["steps_unsynced"] == W.STEPS
    assert results[1]["nosync"]["kinds"] == sorted(d.kinds())


@pytest.mark.parametrize("phase,last", [("dies", 7), ("raises", 6)])
def test_a_dying_rank_stops_the_survivor_and_rank_0_keeps_its_record(tmp_path, phase, last):
    p, results = torchrun(tmp_path, phase, expect_ok=False)
    assert p.returncode != 0
    msg = results[0][phase]["peer_lost"]  # rank 0 stopped with PeerLost, saying where the record is
    assert msg.startswith(f"gradwatch: rank 0 of 2 lost a peer process at step {last}")
    assert f"the record up to step {last - 1} is in {tmp_path / phase}" in msg
    db = tmp_path / phase / "run.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    run = gw.load(tmp_path / phase)
    assert list(run.steps.index) == list(range(last))  # flush_every=4: the last steps came on the way out
    assert "peer_lost" in run.events.kind.tolist()
    if phase == "raises":  # the dying rank's own exception reached rank 0
        crash = run.events[run.events.kind == "crash"].detail.tolist()
        assert crash and crash[0]["rank"] == 1 and "rank 1 found a bad batch" in crash[0]["exception"]
    assert (tmp_path / phase / "report.html").exists()
    assert gw.diagnose(run).steps == last
