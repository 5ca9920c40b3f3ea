"""Runs one experiment for seeds S..S+N-1 (default S = 0), writes ``OUT/NAME/result.json`` and the figures.

With one seed the experiment writes into ``OUT/NAME/``. With N seeds each seed writes into
``OUT/NAME/seed-K/``; the top-level result carries every numeric measurement as mean and std
over seeds, each check's numbers as ``mean ± std`` with how many seeds passed it, and the verdict
``reproduced`` only if every check held on every seed.

Example:
    >>> # from gradwatch.lab.registry import find
    >>> # result = run_experiment(find("deep-linear"), seeds=3, out="lab-out")
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

from .config import config_dict, make_config
from .core import Check, Context, Result


def run_experiment(mod: ModuleType, seeds: int = 1, full: bool = False, sets: Iterable[str] = (),
                   out: str | Path = "lab-out", quiet: bool = False, config: Any = None,
                   seed: int = 0) -> Result:
    """Run ``mod`` for seeds ``seed..seed+seeds-1`` and save its result.

    Args:
        mod: an experiment module (see ``lab/README.md``).
        seeds: how many seeds; more than one aggregates mean ± std.
        seed: the first seed (``--seed S``); with ``seeds=1`` the only one.
        full: apply the module's ``FULL`` overrides (paper scale).
        sets: ``key=value`` overrides, applied last.
        out: the lab's output folder; this experiment writes to ``out/NAME``.
        quiet: no progress bars.
        config: a ready config (then ``full`` and ``sets`` are ignored).

    Returns:
        The (aggregated) :class:`Result` as written to ``out/NAME/result.json`` (JSON types:
        dict keys are strings, tuples are lists).

    Raises:
        ConfigError: a bad override.
        ValueError: ``seeds`` < 1.
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    cfg = config if config is not None else make_config(mod.Config, full, getattr(mod, "FULL", {}), sets)
    root = Path(out) / mod.NAME
    results = []
    chosen = list(range(seed, seed + seeds))
    for s in chosen:
        ctx = Context(seed=s, out=root if seeds == 1 else root / f"seed-{s}", quiet=quiet)
        t0 = time.perf_counter()
        with ctx.seeded():
            result = mod.run(cfg, ctx)
        result.seconds = time.perf_counter() - t0
        result.figures += [f for f in ctx.figures if f not in result.figures]
        _stamp(result, mod, cfg, [s])
        if seeds > 1:
            result.save(ctx.out / "result.json")
        results.append(result)
    final = results[0] if seeds == 1 else aggregate(results)
    _stamp(final, mod, cfg, chosen)
    final.figures = [_relative(f, root) for f in final.figures]
    final.save(root / "result.json")
    return Result.from_dict(final.to_dict())  # exactly what result.json holds: str keys, lists


def aggregate(results: list[Result]) -> Result:
    """Mean ± std over seeds; a check passes only if it passed on every seed.

    Example:
        >>> from gradwatch.lab.core import check
        >>> a = Result({"x": 1.0}, [check("x < 2", True, x=1.0)])
        >>> b = Result({"x": 3.0}, [check("x < 2", False, x=3.0)])
        >>> m = aggregate([a, b])
        >>> m.measurements["x"], m.verdict
        ({'mean': 2.0, 'std': 1.4142135623730951, 'n': 2, 'values': [1.0, 3.0]}, 'not reproduced')
    """
    first = results[0]
    checks = []
    for i, c in enumerate(first.checks):
        per_seed = [r.checks[i] for r in results if i < len(r.checks)]
        passed = sum(c2.passed for c2 in per_seed)
        measured = {k: _mean_std_text([c2.measured.get(k) for c2 in per_seed]) for k in c.measured}
        measured["seeds_passed"] = f"{passed}/{len(results)}"
        checks.append(Check(c.criterion, passed == len(results), measured))
    tables = first.tables if len(results) == 1 else {f"seed {r.seeds[0] if r.seeds else i}": r.tables
                                                     for i, r in enumerate(results)}
    return Result(
        measurements=_merge([r.measurements for r in results]),
        checks=checks,
        figures=[f for r in results for f in r.figures],
        tables=tables,
        notes=first.notes,
        seconds=sum(r.seconds for r in results),
    )


def _merge(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers → {mean, std, n, values}; dicts recurse; anything else → list of values per seed.

    A leaf counts as numeric when every seed gave a number or ``None`` (and at least one a
    number); non-finite values and ``None`` are kept in ``values`` but skipped by mean and std
    (``n`` says how many were used; mean and std are ``None`` when none was finite).
    """
    out: dict[str, Any] = {}
    for key in dicts[0]:
        vals = [d.get(key) for d in dicts]
        if all(isinstance(v, dict) for v in vals):
            out[key] = _merge(vals)
        elif all(_is_number(v) or v is None for v in vals) and any(_is_number(v) for v in vals):
            out[key] = {**mean_std(vals), "values": vals}
        else:
            out[key] = {"values": vals}
    return out


def mean_std(vals: list[Any]) -> dict[str, Any]:
    """Mean and (sample) std over the finite numbers in ``vals``; ``n`` = how many.

    Example:
        >>> mean_std([1.0, float("nan"), 3.0, None])
        {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2}
        >>> mean_std([float("inf"), None])
        {'mean': None, 'std': None, 'n': 0}
    """
    finite = [float(v) for v in vals if _is_number(v) and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    mean = statistics.fmean(finite)
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(finite)}


def _mean_std_text(vals: list[Any]) -> Any:
    if all(_is_number(v) or v is None for v in vals) and any(_is_number(v) for v in vals):
        m = mean_std(vals)
        if m["mean"] is None:
            return f"no finite value ({len(vals)} seeds)"
        text = f"{m['mean']:.4g} ± {m['std']:.2g}"
        return text if m["n"] == len(vals) else f"{text} (finite on {m['n']}/{len(vals)} seeds)"
    return vals


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _stamp(result: Result, mod: ModuleType, cfg: Any, seeds: list[int]) -> None:
    result.name, result.claim, result.source = mod.NAME, mod.CLAIM, mod.SOURCE
    result.config, result.seeds = config_dict(cfg), seeds


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)
