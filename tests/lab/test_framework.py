"""The lab framework: config overrides, registry, result JSON, seeds, determinism."""

import json
import math
import types
from dataclasses import dataclass

import pytest
import torch

from gradwatch.lab.config import ConfigError, make_config, parse_sets, parse_value
from gradwatch.lab.core import NOT_REPRODUCED, REPRODUCED, Check, Context, Result, check
from gradwatch.lab.registry import Broken, UnknownExperiment, experiments, find, validate
from gradwatch.lab.runner import aggregate, run_experiment


@dataclass(frozen=True)
class Config:
    steps: int = 5                          # optimizer steps
    lr: float = 0.1                         # learning rate
    widths: tuple[int, ...] = (4, 8)        # hidden widths
    bias: bool = True                       # use biases
    label: str = "x"                        # a name
    limit: float | None = None              # optional bound


def _tiny_run(config, ctx):
    """A real (tiny) training run: a linear net on random data, watched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X = torch.randn(64, 3)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(64)
    model = torch.nn.Sequential(torch.nn.Linear(3, config.widths[0], bias=config.bias), torch.nn.Tanh(),
                                torch.nn.Linear(config.widths[0], 1, bias=config.bias))
    opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    losses = []
    with ctx.watch(model, opt, "tiny", every=2):
        for _ in range(config.steps):
            idx = torch.randint(0, 64, (16,), generator=ctx.generator())
            loss = (model(X[idx]).squeeze(1) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    fig, ax = plt.subplots()
    ax.plot(losses)
    ctx.savefig(fig, "loss")
    return Result(measurements={"final": losses[-1], "first": losses[0], "nested": {"n": len(losses)}},
                  checks=[check("loss decreases", losses[-1] < losses[0], first=losses[0], final=losses[-1])])


def fake_module(run=_tiny_run, full=None):
    mod = types.ModuleType("gradwatch.lab.e99_fake")
    mod.NAME, mod.CLAIM, mod.SOURCE = "fake", "A claim.", "A paper, Fig. 1"
    mod.Config, mod.FULL, mod.run = Config, full if full is not None else {"steps": 9}, run
    return mod


# ---------------------------------------------------------------- overrides
def test_sets_are_parsed_with_the_field_types():
    got = parse_sets(Config, ["steps=12", "lr=1e-3", "widths=16,32,64", "bias=false", "label=a=b", "limit=none"])
    assert got == {"steps": 12, "lr": 0.001, "widths": (16, 32, 64), "bias": False, "label": "a=b", "limit": None}
    assert parse_sets(Config, ["limit=2.5"]) == {"limit": 2.5}
    assert make_config(Config, sets=["steps=3"]) == Config(steps=3)


def test_unknown_key_is_rejected_with_the_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'stpes'; valid keys: steps, lr, widths, bias"):
        parse_sets(Config, ["stpes=3"])


@pytest.mark.parametrize("item, message", [("steps=three", "expected int"), ("bias=maybe", "expected bool"),
                                           ("steps", "write key=value"), ("widths=1,x", "expected int")])
def test_bad_values_are_rejected(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_sets(Config, [item])


def test_full_then_sets_in_that_order():
    cfg = make_config(Config, full=True, full_overrides={"steps": 100, "lr": 0.5}, sets=["lr=0.2"])
    assert (cfg.steps, cfg.lr) == (100, 0.2)
    assert make_config(Config, full=False, full_overrides={"steps": 100}).steps == 5
    with pytest.raises(ConfigError, match="FULL names unknown"):
        make_config(Config, full=True, full_overrides={"nope": 1})


def test_parse_value_tuple_of_floats():
    assert parse_value("(0.1, 0.3)", tuple[float, ...]) == (0.1, 0.3)


# ---------------------------------------------------------------- verdicts and JSON
def test_verdict_needs_every_check_and_at_least_one():
    assert Result().verdict == NOT_REPRODUCED
    assert Result(checks=[check("a", True), check("b", False, x=1)]).verdict == NOT_REPRODUCED
    assert Result(checks=[check("a", True), check("b", True)]).verdict == REPRODUCED
    r = Result(checks=[check("a", True, x=1.23456), check("b", False, y=2)])
    assert r.measured == "x=1.235; y=2 FAILED" and r.criterion == "a; b"


def test_result_json_round_trip(tmp_path):
    import numpy as np

    r = Result(measurements={"a": np.float32(1.5), "t": torch.tensor([1, 2]), "nested": {"k": (1, 2)}},
               checks=[check("x < 2", np.bool_(True), x=np.int64(1))], figures=["f.png"],
               tables={"t": {"accuracy": 0.5}}, notes="n", name="demo", seeds=[0], seconds=1.5)
    path = r.save(tmp_path / "r.json")
    raw = json.loads(path.read_text())
    assert raw["verdict"] == REPRODUCED and raw["measurements"]["t"] == [1, 2]
    back = Result.load(path)
    assert back.to_dict() == r.to_dict() and isinstance(back.checks[0], Check)


def test_stored_verdict_is_recomputed_not_trusted(tmp_path):
    d = Result(checks=[check("x", False)]).to_dict()
    d["verdict"] = REPRODUCED
    assert Result.from_dict(d).verdict == NOT_REPRODUCED


# ---------------------------------------------------------------- runner
def test_run_writes_result_and_figure(tmp_path):
    r = run_experiment(fake_module(), out=tmp_path, quiet=True, sets=["steps=4"])
    root = tmp_path / "fake"
    assert (root / "result.json").is_file() and r.figures == ["loss.png"] and (root / "loss.png").is_file()
    assert (root / "runs" / "tiny").is_dir()
    stored = Result.load(root / "result.json")
    assert stored.config["steps"] == 4 and stored.seeds == [0] and stored.seconds > 0
    assert stored.name == "fake" and stored.claim == "A claim."


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = run_experiment(fake_module(), out=tmp_path / "a", quiet=True)
    b = run_experiment(fake_module(), out=tmp_path / "b", quiet=True)
    assert a.measurements == b.measurements
    c = run_experiment(fake_module(), seeds=2, out=tmp_path / "c", quiet=True)
    assert c.measurements["final"]["values"][0] == a.measurements["final"]
    assert c.measurements["final"]["values"][1] != a.measurements["final"]


def test_seeds_aggregate_mean_and_std(tmp_path):
    r = run_experiment(fake_module(), seeds=3, out=tmp_path, quiet=True)
    vals = r.measurements["final"]["values"]
    assert len(vals) == 3 and math.isclose(r.measurements["final"]["mean"], sum(vals) / 3)
    assert r.measurements["nested"]["n"] == {"mean": 5.0, "std": 0.0, "n": 3, "values": [5, 5, 5]}
    assert r.checks[0].measured["seeds_passed"].endswith("/3") and "±" in r.checks[0].measured["final"]
    assert r.seeds == [0, 1, 2] and len(r.figures) == 3
    for s in range(3):
        assert (tmp_path / "fake" / f"seed-{s}" / "result.json").is_file()
    assert all((tmp_path / "fake" / f).is_file() for f in r.figures)


def test_a_check_failing_on_one_seed_fails_the_aggregate():
    ok, bad = Result({"x": 1.0}, [check("c", True, x=1.0)]), Result({"x": 2.0}, [check("c", False, x=2.0)])
    m = aggregate([ok, bad])
    assert m.verdict == NOT_REPRODUCED and m.checks[0].measured["seeds_passed"] == "1/2"


def test_aggregate_skips_non_finite_and_missing_values():
    nan, inf = float("nan"), float("inf")
    rs = [Result({"x": 1.0, "y": None, "z": nan, "d": {"w": inf}}, [check("c", True, x=1.0, y=None)]),
          Result({"x": nan, "y": None, "z": inf, "d": {"w": 2.0}}, [check("c", False, x=nan, y=None)]),
          Result({"x": 3.0, "y": None, "z": None, "d": {"w": 4.0}}, [check("c", True, x=3.0, y=None)])]
    m = aggregate(rs)  # used to raise in statistics.stdev
    x = m.measurements["x"]
    assert (x["mean"], x["n"], len(x["values"])) == (2.0, 2, 3) and math.isclose(x["std"], math.sqrt(2))
    assert m.measurements["z"]["mean"] is None and m.measurements["z"]["std"] is None
    assert m.measurements["z"]["n"] == 0 and len(m.measurements["z"]["values"]) == 3
    assert m.measurements["y"] == {"values": [None, None, None]}  # never a number: kept as values
    assert m.measurements["d"]["w"]["mean"] == 3.0 and m.measurements["d"]["w"]["n"] == 2
    assert m.checks[0].measured["x"] == "2 ± 1.4 (finite on 2/3 seeds)"
    assert m.checks[0].measured["seeds_passed"] == "2/3" and m.verdict == NOT_REPRODUCED
    json.dumps(m.to_dict(), allow_nan=True)
    single = aggregate([Result({"x": nan}, [check("c", True, x=inf)])])
    assert single.measurements["x"]["mean"] is None and single.checks[0].measured["x"] == "no finite value (1 seeds)"


def test_seeds_with_a_non_finite_measurement_run_to_the_end(tmp_path):
    def run(config, ctx):
        v = float("nan") if ctx.seed == 1 else float(ctx.seed)
        return Result({"v": v}, [check("v is finite", math.isfinite(v), v=v)])

    r = run_experiment(fake_module(run=run), seeds=3, out=tmp_path, quiet=True)
    assert r.measurements["v"]["mean"] == 1.0 and r.measurements["v"]["n"] == 2
    assert r.verdict == NOT_REPRODUCED and r.checks[0].measured["seeds_passed"] == "2/3"


def test_seed_option_runs_one_chosen_seed(tmp_path):
    a = run_experiment(fake_module(), seed=3, out=tmp_path / "a", quiet=True)
    b = run_experiment(fake_module(), seed=3, out=tmp_path / "b", quiet=True)
    zero = run_experiment(fake_module(), out=tmp_path / "z", quiet=True)
    assert a.seeds == [3] and a.measurements == b.measurements and a.measurements != zero.measurements
    c = run_experiment(fake_module(), seed=3, seeds=2, out=tmp_path / "c", quiet=True)
    assert c.seeds == [3, 4] and c.measurements["final"]["values"][0] == a.measurements["final"]
    assert (tmp_path / "c" / "fake" / "seed-4" / "result.json").is_file()
    with pytest.raises(ValueError, match="--seed must be >= 0"):
        run_experiment(fake_module(), seed=-1, out=tmp_path / "d", quiet=True)


def test_context_restores_threads_and_determinism(tmp_path):
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    with Context(seed=3, out=tmp_path, quiet=True).seeded():
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        first = torch.rand(1).item()
    with Context(seed=3, out=tmp_path, quiet=True).seeded():
        assert torch.rand(1).item() == first
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_bad_seeds_rejected(tmp_path):
    with pytest.raises(ValueError, match="--seeds must be at least 1"):
        run_experiment(fake_module(), seeds=0, out=tmp_path, quiet=True)


# ---------------------------------------------------------------- registry
def test_registry_lists_the_experiments_in_file_order():
    exps = experiments()
    stems = [m.__name__.rsplit(".", 1)[-1] for m in exps.values()]
    assert stems == sorted(stems)
    for name in ("deep-linear", "loss-choice", "clipping", "optimisers"):
        assert name in exps and validate(exps[name]) is None
    assert len(set(exps)) == len(exps)


def test_find_by_name_stem_and_number():
    mod = find("deep-linear")
    assert find("e04_deep_linear") is mod and find("e04") is mod and find("4") is mod
    with pytest.raises(UnknownExperiment, match="no experiment 'nope'.*deep-linear"):
        find("nope")


def test_validate_names_what_is_missing():
    mod = types.ModuleType("m")
    mod.NAME = "x"
    assert "missing CLAIM, SOURCE, Config, run" in validate(mod)
    mod = fake_module(full={"nope": 1})
    assert "unknown: ['nope']" in validate(mod)

    @dataclass
    class Mutable:
        a: int = 1

    mod = fake_module()
    mod.Config = Mutable
    assert "frozen" in validate(mod)


def test_broken_entry_keeps_its_name():
    assert Broken("gradwatch.lab.e42_some_thing", "boom").NAME == "some-thing"
