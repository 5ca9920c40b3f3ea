"""e09 clipping: structure of a tiny run; the one-unit RNN and the task against references."""

import math

import pytest
import torch

from gradwatch.lab import e09_clipping as e09
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e09.Config(wall_T=(10, 20), unit_steps=20, starts=(10.0, -7.0), lengths=(10,), hidden=8,
                     max_steps=20, eval_every=10, every=10)
    r = run_experiment(e09, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["wall_peak_grad_by_T"]) == {"10", "20"} and set(m["temporal_order_acc"]) == {"T10 unclipped", "T10 clipped"}
    assert m["wall_growth_predicted"] == pytest.approx(10 * 0.5 ** 0 * torch.tensor(0.5).sigmoid().item()
                                                       * (1 - torch.tensor(0.5).sigmoid().item()))
    assert len(r.checks) == 4 and (tmp_path / e09.NAME / r.figures[0]).is_file()
    assert (tmp_path / e09.NAME / "runs" / "T10-clipped").is_dir()


def test_unit_rnn_matches_a_python_loop():
    w, b, x = 3.0, -1.0, 0.5
    for _ in range(7):
        x = w / (1 + math.exp(-x)) + b
    assert e09.unit_rnn_final(torch.tensor(w), torch.tensor(b), T=7).item() == pytest.approx(x, rel=1e-6)


def test_wall_separates_the_two_basins():
    b = e09.wall_position(10.0, 30)
    lo, hi = (e09.unit_rnn_final(torch.tensor(10.0, dtype=torch.float64), torch.tensor(b + d, dtype=torch.float64), 30)
              for d in (-1e-6, 1e-6))
    assert lo < 0 < hi and hi - lo > 5  # x_T jumps from the low to the high fixed point
    with pytest.raises(ValueError, match="use w > 4"):
        e09.wall_position(2.0, 30)


def test_temporal_order_labels_follow_the_markers():
    x, y = e09.temporal_order(200, 30, torch.Generator().manual_seed(0))
    sym = x.argmax(-1)
    for i in range(200):
        marks = [int(s) - 4 for s in sym[i] if s >= 4]
        assert len(marks) == 2 and y[i].item() == 2 * marks[0] + marks[1]
        where = (sym[i] >= 4).nonzero().flatten().tolist()
        assert 3 <= where[0] <= 6 and 15 <= where[1] <= 18
