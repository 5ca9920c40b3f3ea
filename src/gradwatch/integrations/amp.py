"""Mixed precision: watching a run that trains through ``torch.amp.GradScaler``.

A scaler multiplies the loss by a large factor *s* before ``backward()`` so that float16
gradients do not underflow, divides the gradients by *s* again (``unscale_``) before the
optimizer uses them, and *skips* ``optimizer.step()`` whenever the scaled gradients overflowed
to Inf/NaN, halving *s* (Micikevicius et al. 2018, "Mixed Precision Training"). A watcher that
knew nothing of this would record the scaled loss, δ = ‖∂L/∂h‖ too large by *s*, and miss the
skipped steps — or, worse, take an overflow for an explosion.

While a watcher is live, :func:`patch` wraps two methods of ``GradScaler`` (the class, so
``torch.cuda.amp.GradScaler`` and the scalers of Lightning and Accelerate are covered):

- ``scale(loss)`` tags the scaled tensor with the scale it was multiplied by; the watcher's
  loss capture divides it out, and divides δ of that backward pass by the same factor;
- ``step(optimizer)`` notices when the optimizer did not step (Inf/NaN found) and tells the
  watcher, which records an ``amp_skip`` event instead of a step — so no rule ever sees the
  overflowed gradients. Gradient statistics are read in the optimizer's pre-step hook, after
  ``unscale_``: the gradients the optimizer actually uses.

Fused optimizers that unscale inside their kernel (``Adam(fused=True)``) are unscaled first by
``unscale_`` — exact, because the scale is a power of two — so they are measured unscaled too.

Example:
    >>> import torch
    >>> s = torch.amp.GradScaler("cpu", init_scale=1024.0)
    >>> patch(True)
    >>> loss = s.scale(torch.tensor(2.0))
    >>> float(loss), float(loss_scale_of(loss))
    (2048.0, 1024.0)
    >>> patch(False)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.amp.grad_scaler import GradScaler, OptState

_ORIGINAL = {"scale": GradScaler.scale, "step": GradScaler.step}
_ATTR = "_gradwatch_loss_scale"


def loss_scale_of(tensor: torch.Tensor) -> torch.Tensor | None:
    """The scale a tensor returned by ``GradScaler.scale`` was multiplied by (None if unscaled)."""
    return getattr(tensor, _ATTR, None)


def _tag(out: Any, scale: torch.Tensor) -> None:
    if isinstance(out, torch.Tensor):
        setattr(out, _ATTR, scale)
    elif isinstance(out, (list, tuple)):
        for o in out:
            _tag(o, scale)


def _scale(self: GradScaler, outputs: Any) -> Any:
    out = _ORIGINAL["scale"](self, outputs)
    if self._enabled and self._scale is not None:
        # a copy: update() changes the scale in place, after this backward has used it
        _tag(out, self._scale.detach().clone())
    return out


def _step(self: GradScaler, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
    from ..watcher import _LIVE

    owner = next((w for w in list(_LIVE) if optimizer in w.optimizers), None)
    if owner is None or not self._enabled or self._scale is None:
        return _ORIGINAL["step"](self, optimizer, *args, **kwargs)
    scale = self._scale.detach().clone()
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)  # the fused kernel would unscale inside, out of our sight
        if sum(float(v.item()) for v in state["found_inf_per_device"].values()):
            state["stage"] = OptState.STEPPED  # what the fused kernel does on Inf: no update
            owner._scaler_skipped(scale)
            return None
    before = owner.step
    out = _ORIGINAL["step"](self, optimizer, *args, **kwargs)
    if owner.step == before:
        owner._scaler_skipped(scale)
    return out


def patch(on: bool) -> None:
    """Install (``True``) or remove (``False``) the ``GradScaler`` wrappers; the watcher calls
    this when its first instance goes live and after its last one detaches."""
    GradScaler.scale = _scale if on else _ORIGINAL["scale"]  # type: ignore[method-assign]
    GradScaler.step = _step if on else _ORIGINAL["step"]  # type: ignore[method-assign]


__all__ = ["patch", "loss_scale_of"]
