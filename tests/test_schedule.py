"""The statistics schedule: fixed spacing first, then placed by the measured cost and the budget."""

import math

import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.schedule import StatsSchedule
from gradwatch.watcher import WatchError
from gw_test_helpers import train


def _drive(s, steps, ordinary, stats):
    taken = []
    for t in range(steps):
        stat = s.is_stats(t)
        if stat:
            taken.append(t)
        s.observe(t, stats if stat else ordinary)
    return taken


@pytest.mark.parametrize("ordinary,stats,budget", [(0.010, 0.030, 0.01), (0.004, 0.005, 0.02), (0.1, 0.7, 0.05)])
def test_after_the_dense_phase_the_gap_keeps_the_cost_within_the_budget(ordinary, stats, budget):
    s = StatsSchedule(every=10, budget=budget, dense=3)
    taken = _drive(s, 3000, ordinary, stats)
    assert taken[:3] == [0, 10, 20]
    gap = max(10, math.ceil(round((stats / ordinary - 1) / budget, 6)))
    assert all(b - a == gap for a, b in zip(taken[3:], taken[4:]))
    # what the slow steps add, over the steady part of the run, is the budget (or less at the floor)
    steady = range(taken[3], taken[-1])
    extra = sum(stats - ordinary for t in steady if t in taken)
    assert extra / (len(steady) * ordinary) <= budget * 1.001


def test_no_budget_keeps_the_fixed_spacing_and_a_negative_first_step_shifts_the_phase():
    assert _drive(StatsSchedule(every=7, budget=None), 60, 0.01, 0.05) == list(range(0, 60, 7))
    assert _drive(StatsSchedule(every=5, first=-3, budget=None), 20, 0.01, 0.05) == [2, 7, 12, 17]


def test_a_machine_that_slows_down_does_not_make_the_statistics_look_free():
    # the load doubles every step's time for a while: the ratio, not the difference, is priced
    s = StatsSchedule(every=10, budget=0.01, dense=2)
    taken = []
    for t in range(2000):
        slow = 2.0 if 300 <= t < 1200 else 1.0
        stat = s.is_stats(t)
        taken.append(t) if stat else None
        s.observe(t, slow * (0.03 if stat else 0.01))
    assert all(b - a == 200 for a, b in zip(taken[2:], taken[3:]))


def test_statistics_steps_that_cost_more_once_sparse_are_priced_at_that_cost():
    # in the dense start a statistics step costs 1 ordinary step extra; spaced out (cold caches)
    # it costs 3: after the first sparse one the gap follows the sparse cost, not the dense median
    s = StatsSchedule(every=10, budget=0.01, dense=5)
    taken = []
    for t in range(3000):
        stat = s.is_stats(t)
        if stat:
            taken.append(t)
        s.observe(t, (0.02 if s.done < 5 else 0.04) if stat else 0.01)
    gaps = [b - a for a, b in zip(taken[4:], taken[5:])]  # from the last dense step on
    assert gaps[0] == 100 and set(gaps[1:]) == {300}


def test_forced_steps_are_taken_and_not_counted_as_ordinary():
    s = StatsSchedule(every=10, budget=0.01, dense=1)
    s.force(range(1, 4))
    taken = _drive(s, 12, 0.01, 0.03)
    assert taken[:4] == [0, 1, 2, 3]
    assert len(s._ordinary) == 12 - 4 - (1 if 10 in taken else 0)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "1%"])
def test_a_bad_budget_is_refused(tmp_path, bad):
    with pytest.raises(WatchError, match="stats_budget"):
        gw.watch(nn.Linear(2, 2), out=tmp_path, stats_budget=bad)


def test_the_watcher_takes_its_statistics_on_the_steps_the_schedule_picks(tmp_path, digits, monkeypatch):
    # the wiring, with the clock made exact: a statistics step costs two ordinary steps
    real = StatsSchedule.observe

    def observe(self, step, seconds):
        assert seconds > 0
        return real(self, step, 0.03 if self.is_stats(step) else 0.01)

    monkeypatch.setattr(StatsSchedule, "observe", observe)
    X, y = digits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gw.watch(model, opt, out=tmp_path / "budget", every=2, stats_budget=0.1):
        train(model, opt, X, y, 120)
    run = gw.load(tmp_path / "budget")
    # ten dense steps every 2, then every ceil((0.03 / 0.01 − 1) / 0.1) = 20 steps
    expected = list(range(0, 20, 2)) + list(range(38, 120, 20))
    assert [int(t) for t in run.steps.index[run.steps.stats.to_numpy(dtype=bool)]] == expected
    delta = run.series("delta")
    assert [int(t) for t in delta.index[delta.notna().any(axis=1)]] == expected  # hooks armed on exactly those
    with gw.watch(model, opt, out=tmp_path / "fixed", every=2, stats_budget=None):
        train(model, opt, X, y, 40)
    assert gw.load(tmp_path / "fixed").steps.stats.tolist() == [t % 2 == 0 for t in range(40)]
