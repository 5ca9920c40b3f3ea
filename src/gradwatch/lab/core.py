"""The lab's contract: what an experiment gets (:class:`Context`) and returns (:class:`Result`).

An experiment is one module ``gradwatch/lab/eNN_slug.py`` with ``NAME``, ``CLAIM``, ``SOURCE``,
a frozen ``Config`` dataclass, a ``FULL`` dict of overrides and ``run(config, ctx) -> Result``
(see ``lab/README.md``). The verdict is never written by hand: it is computed from
:class:`Check` objects, each a criterion, the numbers it was judged on and whether it held.

Example:
    >>> r = Result(measurements={"ratio": 1.4},
    ...            checks=[check("steps(depth 64) / steps(depth 4) <= 2", 1.4 <= 2, ratio=1.4)])
    >>> r.verdict
    'reproduced'
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"


@dataclass
class Check:
    """One criterion of a claim, the numbers it was judged on, and whether it held.

    Args:
        criterion: the rule in words, e.g. ``"steps(depth 64) / steps(depth 4) <= 2"``.
        passed: whether the measured numbers satisfy it.
        measured: the numbers (name -> value) the judgement used.

    Example:
        >>> Check("ratio <= 2", True, {"ratio": 1.4}).describe()
        'ratio=1.4'
    """

    criterion: str
    passed: bool
    measured: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The measured numbers as ``name=value`` text (4 significant digits)."""
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.measured.items())


def check(criterion: str, passed: Any, **measured: Any) -> Check:
    """Build a :class:`Check`; ``passed`` may be a numpy/torch bool.

    Example:
        >>> check("ce grad > 10 x mse grad", 0.98 > 10 * 0.019, ce=0.98, mse=0.019).passed
        True
    """
    return Check(criterion, bool(passed), {k: _plain(v) for k, v in measured.items()})


@dataclass
class Result:
    """What an experiment returns: measurements, checks (→ verdict), figures and metric tables.

    Args:
        measurements: every number the experiment measured (JSON-able; nested dicts allowed).
        checks: the criteria; the verdict is ``reproduced`` exactly when all hold (and there
            is at least one).
        figures: PNG paths (absolute, or relative to the experiment's out dir).
        tables: metric tables, e.g. ``{"adam": classification_report(...)}``.
        notes: anything a reader must know to judge the result (deviations from the paper).

    The runner fills ``name``, ``claim``, ``source``, ``config``, ``seeds`` and ``seconds``.

    Example:
        >>> Result(checks=[check("x", False, x=1)]).verdict
        'not reproduced'
    """

    measurements: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    name: str = ""
    claim: str = ""
    source: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        """``reproduced`` when every check passed (and there is one), else ``not reproduced``."""
        return REPRODUCED if self.checks and all(c.passed for c in self.checks) else NOT_REPRODUCED

    @property
    def criterion(self) -> str:
        """All criteria joined with ``; ``."""
        return "; ".join(c.criterion for c in self.checks)

    @property
    def measured(self) -> str:
        """All checks' measured numbers joined with ``; ``, failed ones marked ``FAILED``."""
        return "; ".join(c.describe() + ("" if c.passed else " FAILED") for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, verdict included."""
        d = asdict(self)
        d["verdict"] = self.verdict
        return _plain(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        """Inverse of :meth:`to_dict` (the stored verdict is recomputed, not trusted)."""
        d = {k: v for k, v in d.items() if k != "verdict"}
        d["checks"] = [Check(**c) for c in d.get("checks", [])]
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to ``path``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Result":
        """Read a result written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


class Context:
    """What ``run(config, ctx)`` gets: the seed, an output folder, progress, watcher, figures.

    Args:
        seed: the seed; :meth:`seeded` (called by the runner) seeds torch, numpy and random.
        out: the experiment's output folder (created).
        quiet: no progress bars.

    Example:
        >>> import tempfile
        >>> ctx = Context(seed=0, out=tempfile.mkdtemp(), quiet=True)
        >>> with ctx.progress(3, "demo") as advance:
        ...     for _ in range(3): advance()
    """

    device = torch.device("cpu")

    def __init__(self, seed: int = 0, out: str | Path = "lab-out", quiet: bool = False) -> None:
        self.seed = int(seed)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.figures: list[str] = []

    def generator(self, offset: int = 0) -> torch.Generator:
        """A torch generator seeded with ``seed + offset`` (for batches independent of init)."""
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Any]:
        """A rich progress bar; yields ``advance(n=1)``. Silent when quiet."""
        if self.quiet:
            yield lambda n=1: None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)

    def watch(self, model: torch.nn.Module, opt: torch.optim.Optimizer | None, name: str, **kwargs: Any):
        """``gradwatch.watch(model, opt, out=ctx.out/'runs'/name, **kwargs)``; read back with :meth:`load`.

        The statistics come every ``every`` steps for the whole run (``stats_budget=None`` unless
        given): a schedule timed on the machine would make the same seed give different numbers.
        The lab's runs are its own output: an experiment run again replaces them (``overwrite``)."""
        from gradwatch.watcher import watch

        kwargs.setdefault("stats_budget", None)
        kwargs.setdefault("overwrite", True)  # an experiment run again remakes its runs
        return watch(model, opt, out=self.run_dir(name), **kwargs)

    def run_dir(self, name: str) -> Path:
        """Where :meth:`watch` records the run called ``name``."""
        return self.out / "runs" / name

    def load(self, name: str):
        """The recorded run ``name`` as a :class:`gradwatch.record.Run`."""
        from gradwatch.record import load

        return load(self.run_dir(name))

    def savefig(self, fig: Any, stem: str) -> str:
        """Save a matplotlib figure as ``out/stem.png``, close it, remember it; returns the path."""
        import matplotlib.pyplot as plt

        path = self.out / f"{stem}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        if str(path) not in self.figures:
            self.figures.append(str(path))
        return str(path)

    @contextlib.contextmanager
    def seeded(self) -> Iterator[None]:
        """Deterministic, single-threaded torch with every RNG seeded; restores settings after."""
        import numpy as np

        threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det)


def _plain(v: Any) -> Any:
    """numpy/torch scalars and arrays, tuples and paths → plain JSON-able Python."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, torch.Tensor):
        return _plain(v.tolist())
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "tolist") and type(v).__module__ == "numpy":
        return v.tolist()
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isfinite(v) and v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.4g}"
