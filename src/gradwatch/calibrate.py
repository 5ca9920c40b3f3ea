"""Choose a learning rate from the measured update-to-weight ratio, not by hand.

A few steps on a copy of the model are watched; the median ‖Δw‖/‖w‖ over the weight layers
is compared with the target (≈1e-3, the healthy band's centre). For SGD the update is
proportional to the rate, so one correction ``lr × target / ratio`` lands on the target; for
adaptive optimizers the same correction is applied and repeated until the ratio is within
a factor of two (or the rounds run out).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    >>> batches = [(torch.randn(16, 8), torch.randint(0, 2, (16,))) for _ in range(3)]
    >>> lr = calibrate_lr(model, lambda p, lr: torch.optim.SGD(p, lr=lr), batches)
    >>> lr > 0
    True
"""

from __future__ import annotations

import copy
import math
import tempfile
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .lr_scale import scale_lr


def measured_update_ratio(model: nn.Module, make_optimizer: Callable, lr: float, batches: Sequence,
                          loss_fn: Callable, steps: int = 3) -> float:
    """Median ‖Δw‖/‖w‖ over weight layers and steps when training a copy at ``lr``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> batches = [(torch.randn(32, 8), torch.randint(0, 3, (32,)))]
        >>> sgd = lambda params, lr: torch.optim.SGD(params, lr=lr)
        >>> 1e-3 < measured_update_ratio(model, sgd, 0.1, batches, nn.functional.cross_entropy) < 1e-1
        True
    """
    from .diagnosis.context import Context
    from .record import load
    from .watcher import watch

    m = copy.deepcopy(model)
    opt = make_optimizer(m.parameters(), lr)
    with tempfile.TemporaryDirectory(prefix="gradwatch-calibrate-") as out:
        with watch(m, opt, out=out, every=1):
            for i in range(steps):
                x, y = batches[i % len(batches)]
                loss = loss_fn(m(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        r = Context(load(out)).update_ratio()
    vals = r.to_numpy(dtype=float).ravel()
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(np.median(vals)) if vals.size else float("nan")


def calibrate_lr(model: nn.Module, make_optimizer: Callable, batches: Sequence,
                 loss_fn: Callable | None = None, target: float = 1e-3, start: float = 1e-2,
                 rounds: int = 4, steps: int = 3) -> float:
    """A learning rate whose steps change the weights by ``target`` of their size.

    Args:
        model: the model (a copy is trained; the model is not modified).
        make_optimizer: ``make_optimizer(params, lr) -> Optimizer``.
        batches: ``(input, target)`` pairs.
        loss_fn: default cross-entropy.
        target: the update/weight ratio to aim for.
        start: the first rate tried.
        rounds: at most this many corrections.
        steps: steps measured per round.

    Raises:
        ValueError: the ratio cannot be measured (no weight changed, or NaN).

    With momentum β the first steps are up to 1/(1−β) times smaller than the steady ones, so a
    few measured steps under-estimate the step the rate will make later (10× for β = 0.9);
    measure over more steps, or keep the ratio in band while training with
    :class:`UpdateRatioController`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> batches = [(torch.randn(32, 8), torch.randint(0, 3, (32,)))]
        >>> sgd = lambda params, lr: torch.optim.SGD(params, lr=lr)
        >>> lr = calibrate_lr(model, sgd, batches, target=1e-3)
        >>> ratio = measured_update_ratio(model, sgd, lr, batches, nn.functional.cross_entropy)
        >>> 0.3 < ratio / 1e-3 < 3
        True
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    lr = start
    for _ in range(rounds):
        ratio = measured_update_ratio(model, make_optimizer, lr, batches, loss_fn, steps)
        if not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(
                f"the update/weight ratio at lr={lr:g} could not be measured ({ratio}); "
                "check that the model trains at all (gradients reach the weights)")
        if target / 2 <= ratio <= target * 2:
            break
        lr *= target / ratio
    return float(lr)


def depth_scaled_target(depth: int, base: float = 1e-2) -> float:
    """The update/weight ratio to aim for in a plain network of ``depth`` layers: ``base / depth``.

    Every layer's step moves the network's output in roughly the same (descent) direction, so
    the per-layer moves add up: a stack of ``depth`` layers each changed by ``r`` of their size
    changes the function by about ``depth × r``. Keeping ``depth × r`` constant keeps the step in
    function space the same at every depth (Saxe et al. 2014 make the same point for deep
    linear networks: with orthogonal initialisation, lr ∝ 1/depth gives depth-independent
    learning time). ``base`` ≈ 1e-2 is a shallow network's healthy band (a few layers at 1e-3).

    Example:
        >>> depth_scaled_target(1000)
        1e-05
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    return base / depth


class UpdateRatioController:
    """Keep the measured update/weight ratio in a band by rescaling the learning rate while
    training: a feedback loop, not a one-off calibration.

    Call :meth:`step` instead of ``optimizer.step()``. Every ``every`` steps the weight
    matrices (parameters with ≥ 2 dimensions) are copied before the step and compared after
    it; the median over layers of ‖Δw‖/‖w‖ is the measured ratio. When it leaves
    ``[goal / band, goal × band]`` every param group's rate is multiplied by
    ``goal / ratio``, limited to ``[1 / max_factor, max_factor]`` per correction so that one
    noisy measurement cannot throw the rate far; a non-finite ratio divides it by
    ``max_factor``. This catches what a calibration before training cannot: momentum building
    up the step (up to 1/(1−β) times the first one), and gradients that grow or shrink as the
    weights leave their initialisation — the usual way a deep plain network that started well
    diverges later.

    With ``probe=(model, x)`` the step is measured where it matters, in function space: the
    root-mean-square change of ``model(x)`` over the step, divided by ``max(rms(model(x)), 1)``
    (relative once the outputs are large, in output units while they are small — logits start
    near 0 in a critically initialised network). That quantity means the same thing at every
    depth, so one target serves all depths. The per-layer weight ratio does not: in a deep
    tanh network with σ_b = 0 the activations shrink with depth (q_ℓ ≈ 1/(2ℓ)), so deep layers'
    gradients and ratios are smaller than shallow ones' and no ``base / depth`` rule keeps the
    network's step constant. One probe costs two forward passes every ``every`` steps.

    ``target`` is a number or a function of the step (``step -> ratio``), so a decay of the
    step size is a decay of the target, e.g. ``lambda s: t0 * (0.1 if s > 500 else 1)``.

    Args:
        optimizer: any ``torch.optim`` optimizer.
        target: the ratio to keep, or ``step -> ratio``.
        every: steps between measurements (each costs one copy of the weights).
        band: tolerated factor around the goal.
        max_factor: the largest change of the rate per correction.
        probe: ``(model, inputs)``: measure the change of the outputs instead of the weights.
        settle: for the first ``settle`` steps measure (and correct) at every step, with up to
            ``max_factor²`` per correction, so a poor starting rate is found quickly.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
        >>> opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
        >>> ctl = UpdateRatioController(opt, target=1e-3, every=2)
        >>> for _ in range(40):
        ...     x = torch.randn(16, 8)
        ...     loss = nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long())
        ...     opt.zero_grad(); loss.backward(); ctl.step()
        >>> 1e-5 < opt.param_groups[0]["lr"]  # raised towards the target
        True
        >>> len(ctl.history) == 20 and 3e-4 < ctl.history[-1][1] < 3e-3
        True
    """

    def __init__(self, optimizer: torch.optim.Optimizer, target: float | Callable[[int], float],
                 every: int = 10, band: float = 1.5, max_factor: float = 2.0,
                 probe: tuple[nn.Module, torch.Tensor] | None = None, settle: int = 0) -> None:
        if every < 1 or band < 1 or max_factor <= 1:
            raise ValueError(f"need every >= 1, band >= 1, max_factor > 1; got {every}, {band}, {max_factor}")
        self.optimizer, self.target = optimizer, target
        self.every, self.band, self.max_factor = every, band, max_factor
        self.params = [p for g in optimizer.param_groups for p in g["params"] if p.dim() >= 2]
        if not self.params:
            raise ValueError("the optimizer holds no weight matrix (no parameter with 2 or more dimensions)")
        self.probe, self.settle = probe, settle
        self.t = 0
        #: (step, measured ratio, learning rate it was measured at, goal)
        self.history: list[tuple[int, float, float, float]] = []

    def goal(self) -> float:
        """The ratio aimed at now."""
        return float(self.target(self.t)) if callable(self.target) else float(self.target)

    @torch.no_grad()
    def step(self, closure=None):
        """``optimizer.step()``, measuring (and correcting the rate) every ``every`` steps."""
        measure = self.t % self.every == 0 or self.t < self.settle
        if measure:
            if self.probe is not None:
                net, x = self.probe
                before = [net(x).float()]
            else:
                before = [p.detach().clone() for p in self.params]
        result = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        if measure:
            if self.probe is not None:
                f0, f1 = before[0], net(x).float()
                rms = lambda t: float(t.pow(2).mean().sqrt())  # noqa: E731
                ratio = rms(f1 - f0) / max(rms(f0), 1.0)
            else:
                diff = torch._foreach_sub([p.detach() for p in self.params], before)
                num = torch.stack(torch._foreach_norm(diff))
                den = torch.stack(torch._foreach_norm(before)).clamp_min(1e-12)
                ratio = float((num / den).median())
            goal = self.goal()
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.history.append((self.t, ratio, lr, goal))
            most = self.max_factor ** 2 if self.t < self.settle else self.max_factor
            if not math.isfinite(ratio):
                factor = 1.0 / most
            elif ratio > goal * self.band or ratio < goal / self.band:
                factor = min(most, max(1.0 / most, goal / max(ratio, 1e-30)))
            else:
                factor = 1.0
            if factor != 1.0:
                scale_lr(self.optimizer, factor)
        self.t += 1
        return result

    @property
    def lr(self) -> float:
        """The current rate of the first param group."""
        return float(self.optimizer.param_groups[0]["lr"])
