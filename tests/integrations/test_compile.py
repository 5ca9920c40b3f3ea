"""torch.compile'd models: watched, with the same per-parameter numbers as eager, and a precise
note of what fullgraph=True keeps the watcher from seeing."""

import numpy as np
import pytest
import torch
from torch import nn

import gradwatch as gw

pytestmark = pytest.mark.slow  # Dynamo + AOTAutograd tracing takes a few seconds


class Net(nn.Module):
    # a user-defined forward: torch 2.13 refuses module.compile(fullgraph=True) on a bare
    # nn.Sequential (its frames are in Dynamo's skip list), with or without gradwatch
    def __init__(self):
        super().__init__()
        self.fc1, self.act1 = nn.Linear(8, 16), nn.Tanh()
        self.fc2, self.act2 = nn.Linear(16, 16), nn.ReLU()
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


def mlp(seed=0):
    torch.manual_seed(seed)
    return Net()


def train(model, fwd, out, steps=5):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    with gw.watch(fwd, opt, out=out, every=2):
        for _ in range(steps):
            x = torch.randn(32, 8, generator=g)
            loss = fwd(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return gw.load(out)


@pytest.fixture(scope="module")
def eager(tmp_path_factory):
    m = mlp()
    return train(m, m, tmp_path_factory.mktemp("eager"))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_model_is_watched_like_the_eager_one(tmp_path, eager):
    m = mlp()
    run = train(m, torch.compile(m, backend="aot_eager"), tmp_path)
    assert list(run.params.name) == list(eager.params.name)  # "fc1.weight", not "_orig_mod.fc1.weight"
    assert np.allclose(run.steps.grad_norm, eager.steps.grad_norm, rtol=1e-5)
    assert np.allclose(run.steps.loss, eager.steps.loss, rtol=1e-5)
    d, e = run.series("delta"), eager.series("delta")
    assert np.allclose(d.to_numpy(dtype=float), e.to_numpy(dtype=float), rtol=1e-2, equal_nan=True)
    note = run.events[run.events.kind == "compiled"].detail.iloc[0]
    assert note["module_stats"] and not note["fullgraph"]


@pytest.mark.parametrize("how", ["wrapper", "in_place"])
def test_fullgraph_compile_trains_and_says_what_it_cannot_see(tmp_path, eager, how):
    m = mlp()
    if how == "wrapper":
        fwd = torch.compile(m, backend="aot_eager", fullgraph=True)
    else:
        m.compile(backend="aot_eager", fullgraph=True)
        fwd = m
    from torch._dynamo.utils import counters

    counters.clear()
    run = train(m, fwd, tmp_path)  # module hooks here would be an error: they must stay off
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]  # really compiled
    assert np.allclose(run.steps.grad_norm, eager.steps.grad_norm, rtol=1e-5)
    assert np.allclose(run.series("update_norm").to_numpy(dtype=float),
                       eager.series("update_norm").to_numpy(dtype=float), rtol=1e-2)
    assert "delta" not in _recorded_metrics(run)
    note = run.meta["compiled"]
    assert note["fullgraph"] and not note["module_stats"]
    assert "δ and activation statistics are off" in note["sees"]


def _recorded_metrics(run):
    import sqlite3

    with sqlite3.connect(run.db) as con:
        return {r[0] for r in con.execute("SELECT DISTINCT metric FROM series")}
