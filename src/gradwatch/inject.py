"""Apply a remedy to an unmodified script while it runs, through the same global hooks the
watcher uses: ``gradwatch run --remedy use_he_init train.py``.

At the root model's first forward pass, model remedies act in place (re-initialisation,
activation modules swapped inside their containers); at every optimizer step, loop remedies
act on the gradients or the learning rate (clipping, warmup, a lower or higher rate, the
guard). Nothing in the script changes; the run is recorded and diagnosed as usual, so the
two runs can be compared side by side.

Example:
    >>> # gradwatch run --remedy reduce_lr --out runs/fixed train.py
    >>> sorted(INJECTABLE)[:3]
    ['add_warmup', 'break_symmetry', 'clip_grad_norm']
"""

from __future__ import annotations

import torch
from torch import nn

#: remedies that can act on a running script, and where they act
MODEL_REMEDIES = ("use_he_init", "break_symmetry", "critical_init", "orthogonal_init", "zero_bias_init",
                  "use_relu_with_he_init", "use_leaky_relu")
STEP_REMEDIES = ("reduce_lr", "increase_lr", "clip_grad_norm", "add_warmup", "guard")
INJECTABLE = MODEL_REMEDIES + STEP_REMEDIES


class StopAfter(Exception):
    """Raised from the optimizer hook to end a trial run after its step budget."""


def apply_to_model(remedy: str, model: nn.Module) -> None:
    """Apply a model remedy in place (the same parameter objects, so the optimizer keeps them)."""
    from . import remedies as R

    if remedy in ("use_he_init", "break_symmetry"):
        R.init.apply(model, "auto")
    elif remedy == "critical_init":
        R.init.apply(model, "critical")
    elif remedy == "orthogonal_init":
        R.init.apply(model, "orthogonal")
    elif remedy == "zero_bias_init":
        for m in model.modules():
            if isinstance(getattr(m, "bias", None), torch.Tensor):
                nn.init.zeros_(m.bias)
    elif remedy == "use_relu_with_he_init":
        for old in (nn.Sigmoid, nn.Tanh):
            R.architecture.swap_activation(model, old, nn.ReLU, reinit=False)
        R.init.apply(model, "auto")
    elif remedy == "use_leaky_relu":
        R.architecture.swap_activation(model, nn.ReLU, nn.LeakyReLU, reinit=False)
    else:
        raise ValueError(f"{remedy!r} is not a model remedy; injectable: {', '.join(INJECTABLE)}")


class StepRemedy:
    """Acts before every optimizer step: clipping, warmup, a one-time rate change."""

    def __init__(self, remedy: str, warmup: int = 100, clip: float = 1.0) -> None:
        if remedy not in STEP_REMEDIES:
            raise ValueError(f"{remedy!r} is not a step remedy; injectable: {', '.join(INJECTABLE)}")
        self.remedy, self.warmup, self.clip = remedy, warmup, clip
        self._base: dict[int, list[float]] = {}
        self._steps: dict[int, int] = {}

    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        key = id(optimizer)
        n = self._steps.get(key, 0)
        self._steps[key] = n + 1
        if key not in self._base:
            self._base[key] = [float(g["lr"]) for g in optimizer.param_groups]
            factor = {"reduce_lr": 0.1, "increase_lr": 10.0}.get(self.remedy)
            if factor is not None:
                for g in optimizer.param_groups:
                    g["lr"] = float(g["lr"]) * factor
        if self.remedy == "clip_grad_norm":
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.clip)
        elif self.remedy == "add_warmup":
            f = min(1.0, (n + 1) / self.warmup)
            for g, base in zip(optimizer.param_groups, self._base[key]):
                g["lr"] = base * f
