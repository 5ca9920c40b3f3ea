"""Merging the ranks' records and spotting unsynced gradients: the arithmetic, without processes."""

import numpy as np
import pytest
import torch

from gradwatch.integrations.ranks import merge, unsynced


def part(rank, grad, loss=1.0, delta=(1.0, 2.0), **extra):
    vec = {"grad_norm": np.array(grad, dtype=np.float32), "delta": np.array(delta, dtype=np.float32), **extra}
    return {"rank": rank, "steps": [dict(step=0, loss=loss, grad_norm=float(np.linalg.norm(grad)), step_time=0.1,
                                         lr=[0.1], stats=True, extra={})],
            "series": [(0, vec)], "calls": [(0, 1, np.array(delta, dtype=np.float32))], "events": []}


def test_delta_of_the_mean_loss_over_the_whole_batch():
    # two ranks, each a half batch: ‖∂(mean L)/∂h‖ over both halves is √(δ0² + δ1²)/2
    torch.manual_seed(0)
    w = torch.randn(3, 4, requires_grad=True)
    xs = [torch.randn(5, 3), torch.randn(5, 3)]
    deltas = []
    for x in xs:
        h = (x @ w).requires_grad_()
        h.retain_grad()
        h.pow(2).mean().backward()
        deltas.append(float(h.grad.norm()))
    h = torch.cat(xs) @ w
    h.retain_grad()
    (h[:5].pow(2).mean() + h[5:].pow(2).mean()).div(2).backward()
    _, series, calls = merge([part(0, [1.0], delta=[deltas[0]]), part(1, [1.0], delta=[deltas[1]])])
    assert series[0][1]["delta"][0] == pytest.approx(float(h.grad.norm()), rel=1e-6)
    assert calls[0][2][0] == pytest.approx(float(h.grad.norm()), rel=1e-6)


def test_losses_average_and_a_nan_anywhere_stays():
    steps, series, _ = merge([part(0, [1.0, 2.0], loss=1.0), part(1, [1.0, np.nan], loss=3.0)])
    assert steps[0]["loss"] == 2.0
    assert np.isnan(steps[0]["grad_norm"]) and np.isnan(series[0][1]["grad_norm"][1])


def test_sharded_norms_add_in_quadrature():
    steps, series, _ = merge([part(0, [3.0, 0.0]), part(1, [4.0, 1.0])], sharded=True)
    assert series[0][1]["grad_norm"].tolist() == [5.0, 1.0]
    assert steps[0]["grad_norm"] == pytest.approx(np.sqrt(9 + 16 + 1))


def test_activation_statistics():
    a = part(0, [1.0], act_dead=np.array([0.5], np.float32), act_nonfinite=np.array([0.0], np.float32),
             act_sat=np.array([0.2], np.float32))
    b = part(1, [1.0], act_dead=np.array([0.1], np.float32), act_nonfinite=np.array([3.0], np.float32),
             act_sat=np.array([0.4], np.float32))
    v = merge([a, b])[1][0][1]
    assert v["act_dead"][0] == pytest.approx(0.1) and v["act_nonfinite"][0] == 3.0
    assert v["act_sat"][0] == pytest.approx(0.3)


def test_unsynced_finds_exactly_the_parameters_that_differ():
    names = ["a", "b", "c"]
    same = [part(0, [1.0, np.nan, 2.0]), part(1, [1.0, np.nan, 2.0])]
    assert unsynced(same, names) is None  # a missing gradient on both ranks is in sync
    assert unsynced([part(0, [1.0, 2.0, 3.0]), part(1, [1.0 + 1e-7, 2.0, 3.0])], names) is None  # rounding
    diff = unsynced([part(0, [1.0, 2.0, 3.0]), part(1, [1.0, np.nan, 3.5])], names)
    assert diff["params"] == ["b", "c"] and diff["ranks"] == [1] and diff["max_rel_diff"] == np.inf


def test_a_distributed_watcher_needs_a_process_group(tmp_path):
    from gradwatch.integrations.distributed import DistributedWatcher
    from gradwatch.watcher import WatchError

    with pytest.raises(WatchError, match="init_process_group"):
        DistributedWatcher(torch.nn.Linear(2, 2), out=tmp_path)
