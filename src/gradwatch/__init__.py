"""gradwatch: find, explain and repair unstable gradients in PyTorch training.

Example:
    >>> import gradwatch as gw
    >>> # with gw.watch(model, opt, out="runs/exp1") as w:
    >>> #     ...train...
    >>> # print(gw.diagnose("runs/exp1").verdict)

``import gradwatch`` needs torch only; everything else is imported where it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute" (or "module" for a submodule), imported on first use
_LAZY = {
    "watch": "gradwatch.watcher:watch",
    "Watcher": "gradwatch.watcher:Watcher",
    "load": "gradwatch.record:load",
    "Run": "gradwatch.record:Run",
    "diagnose": "gradwatch.diagnosis:diagnose",
    "Diagnosis": "gradwatch.findings:Diagnosis",
    "Finding": "gradwatch.findings:Finding",
    "remedies": "gradwatch.remedies",
    "init": "gradwatch.remedies.init",
    "clip": "gradwatch.remedies.clip",
    "schedules": "gradwatch.remedies.schedules",
    "architecture": "gradwatch.remedies.architecture",
    "trial": "gradwatch.trials:trial",
    "calibrate_lr": "gradwatch.calibrate:calibrate_lr",
    "Guard": "gradwatch.guard:Guard",
    "lab": "gradwatch.lab",
    "report": "gradwatch.report",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'gradwatch' has no attribute {name!r}")
    mod_name, _, attr = target.partition(":")
    mod = importlib.import_module(mod_name)
    value = getattr(mod, attr) if attr else mod
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
