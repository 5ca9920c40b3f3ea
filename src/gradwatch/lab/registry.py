"""Finds the experiments: every ``gradwatch/lab/eNN_*.py`` module, in file-name order.

A module that fails to import, or lacks part of the contract, is kept as a :class:`Broken`
entry so that ``lab list`` and ``lab all`` report it instead of losing it.

Example:
    >>> names = [e.NAME for e in experiments().values()]
    >>> names == sorted(names, key=lambda n: find(n).__name__)
    True
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

_PATTERN = re.compile(r"^e(\d\d)_\w+$")
REQUIRED = ("NAME", "CLAIM", "SOURCE", "Config", "run")


class UnknownExperiment(KeyError):
    """No experiment has that name."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is a sentence
        return str(self.args[0])


@dataclass
class Broken:
    """A module matching ``eNN_*.py`` that cannot be used; ``error`` says why."""

    module: str
    error: str

    @property
    def NAME(self) -> str:  # noqa: N802 - mirrors the experiment contract
        return self.module.rsplit(".", 1)[-1].split("_", 1)[1].replace("_", "-")


def module_names(package: str = "gradwatch.lab") -> list[str]:
    """Dotted names of the ``eNN_*`` modules of ``package``, sorted."""
    pkg = importlib.import_module(package)
    found = [m.name for m in pkgutil.iter_modules(pkg.__path__) if _PATTERN.match(m.name)]
    return [f"{package}.{n}" for n in sorted(found)]


def validate(mod: ModuleType) -> str | None:
    """``None`` when ``mod`` follows the experiment contract, else what is missing or wrong."""
    missing = [a for a in REQUIRED if not hasattr(mod, a)]
    if missing:
        return f"missing {', '.join(missing)} (see gradwatch/lab/README.md)"
    cfg = mod.Config
    if not dataclasses.is_dataclass(cfg) or not cfg.__dataclass_params__.frozen:
        return "Config must be a frozen dataclass: @dataclass(frozen=True)"
    full = getattr(mod, "FULL", {})
    names = {f.name for f in dataclasses.fields(cfg)}
    if not isinstance(full, dict) or set(full) - names:
        return f"FULL must be a dict of Config fields; unknown: {sorted(set(full) - names)}"
    return None


def experiments(package: str = "gradwatch.lab", include_broken: bool = False) -> dict[str, ModuleType | Broken]:
    """``NAME`` → module for every experiment (``Broken`` entries too if ``include_broken``)."""
    out: dict[str, ModuleType | Broken] = {}
    for name in module_names(package):
        try:
            mod = importlib.import_module(name)
            problem = validate(mod)
        except Exception as e:  # noqa: BLE001 - one bad experiment must not hide the others
            mod, problem = None, f"{type(e).__name__}: {e}"
        if problem is None:
            out[mod.NAME] = mod
        elif include_broken:
            broken = Broken(name, problem)
            out[broken.NAME] = broken
    return out


def find(name: str, package: str = "gradwatch.lab") -> ModuleType:
    """The experiment called ``name``: its ``NAME``, module stem (``e04_deep_linear``) or number (``e04``, ``4``).

    Raises:
        UnknownExperiment: no such experiment (the message lists them).
    """
    exps = experiments(package, include_broken=True)
    key = name.strip().lower()
    for slug, mod in exps.items():
        stem = (mod.module if isinstance(mod, Broken) else mod.__name__).rsplit(".", 1)[-1]
        number = stem[1:3]
        if key in (slug, stem, stem[:3]) or (key.isdigit() and int(key) == int(number)):
            if isinstance(mod, Broken):
                raise UnknownExperiment(f"experiment {slug!r} ({mod.module}) cannot be loaded: {mod.error}")
            return mod
    valid = ", ".join(s for s, m in exps.items() if not isinstance(m, Broken))
    raise UnknownExperiment(f"no experiment {name!r}; run `gradwatch lab list` (known: {valid})")
