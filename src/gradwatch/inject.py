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

from .lr_scale import scale_lr

#: remedies that can act on a running script, and where they act
MODEL_REMEDIES = ("use_he_init", "break_symmetry", "critical_init", "orthogonal_init", "irnn_init",
                  "fixup_init", "zero_bias_init", "use_relu_with_he_init", "use_leaky_relu")
STEP_REMEDIES = ("reduce_lr", "increase_lr", "clip_grad_norm", "add_warmup", "guard")
INJECTABLE = MODEL_REMEDIES + STEP_REMEDIES
#: the step remedies that take a number after a colon, and what it sets
_SPEC_PARAMS = {"add_warmup": ("warmup", int), "clip_grad_norm": ("clip", float)}


def remedy_ids(spec: str) -> list[str]:
    """The remedy ids of a spec in its order, numbers dropped and nothing validated (specs read
    back from a trial or a JSON, ``baseline`` included).

    Example:
        >>> remedy_ids("use_he_init+add_warmup:25"), remedy_ids("baseline")
        (['use_he_init', 'add_warmup'], ['baseline'])
    """
    return [part.partition(":")[0].strip() for part in spec.split("+")]


def parse_remedy(spec: str) -> tuple[str, dict]:
    """Split a remedy spec into its id and options: ``"add_warmup:25"`` is a linear warmup over
    25 steps, ``"clip_grad_norm:0.5"`` clips the global norm at 0.5; a plain id takes defaults.

    Raises:
        ValueError: an unknown id, an id that takes no number, or a bad number.

    Example:
        >>> parse_remedy("add_warmup:25"), parse_remedy("use_he_init")
        (('add_warmup', {'warmup': 25}), ('use_he_init', {}))
    """
    rid, sep, value = spec.partition(":")
    if rid not in INJECTABLE:
        raise ValueError(f"cannot apply {rid!r} to a running script; these can: {', '.join(INJECTABLE)}")
    if not sep:
        return rid, {}
    if rid not in _SPEC_PARAMS:
        raise ValueError(f"remedy {rid!r} takes no number after ':'; these do: "
                         + ", ".join(f"{k}:<{n}>" for k, (n, _) in _SPEC_PARAMS.items()))
    name, kind = _SPEC_PARAMS[rid]
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not number > 0:
        raise ValueError(f"{spec!r}: the {name} after ':' must be a positive {kind.__name__}, e.g. {rid}:"
                         + ("25" if kind is int else "1.0"))
    return rid, {name: number}


#: the order step remedies act in within one step: a rate change first (a warmup then ramps
#: up to the changed rate, not over it), then the warmup, then clipping
_STEP_ORDER = {"reduce_lr": 0, "increase_lr": 0, "add_warmup": 1, "clip_grad_norm": 2, "guard": 3}


def parse_combination(spec: str) -> list[tuple[str, dict]]:
    """Split ``"use_he_init+increase_lr"`` into its remedies, each as :func:`parse_remedy` gives
    it: at most one model remedy (it acts once, at the first forward pass), any step remedies
    (each at every step, rate changes before a warmup before clipping), each id once.

    Raises:
        ValueError: an unknown remedy, two model remedies, or an id twice.

    Example:
        >>> parse_combination("add_warmup:10+use_he_init+reduce_lr")
        [('use_he_init', {}), ('reduce_lr', {}), ('add_warmup', {'warmup': 10})]
    """
    parts = [parse_remedy(p.strip()) for p in spec.split("+")]
    ids = [rid for rid, _ in parts]
    if len(set(ids)) < len(ids):
        raise ValueError(f"{spec!r} names a remedy twice; give each once")
    models = [rid for rid in ids if rid in MODEL_REMEDIES]
    if len(models) > 1:
        raise ValueError(f"{spec!r} combines two model remedies ({', '.join(models)}); combine one model remedy "
                         "with step remedies (reduce_lr, increase_lr, add_warmup, clip_grad_norm, guard)")
    return sorted(parts, key=lambda p: -1 if p[0] in MODEL_REMEDIES else _STEP_ORDER[p[0]])


def trial_spec(remedy: str, steps: int) -> str:
    """The spec a K-step trial injects, so that the trial sees the remedy's whole effect: a
    warmup over the first quarter of the trial (a warmup as long as the trial would end with
    it, and the trial would never see the rate it ramps up to). Other remedies as they are.

    Example:
        >>> trial_spec("add_warmup", 100), trial_spec("reduce_lr", 100)
        ('add_warmup:25', 'reduce_lr')
    """
    return f"add_warmup:{max(1, steps // 4)}" if remedy == "add_warmup" else remedy


class StopAfter(Exception):
    """Raised from the optimizer hook to end a trial run after its step budget.

    Example:
        >>> # gradwatch run --steps 100 train.py   stops the script with StopAfter at step 100
    """


def apply_to_model(remedy: str, model: nn.Module, example=None) -> None:
    """Apply a model remedy in place (the same parameter objects, so the optimizer keeps them).

    ``example`` (the inputs of the forward call about to run) lets the initialisations see
    functional activations too (``F.relu(self.fc(x))``: He, not Xavier).

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
        >>> weight = model[0].weight
        >>> apply_to_model("use_relu_with_he_init", model)
        >>> type(model[1]).__name__, model[0].weight is weight
        ('ReLU', True)
    """
    from . import remedies as R

    if remedy in ("use_he_init", "break_symmetry"):
        R.init.apply(model, "auto", example=example)
    elif remedy == "critical_init":
        R.init.apply(model, "critical", example=example)
    elif remedy == "orthogonal_init":
        R.init.apply(model, "orthogonal")
    elif remedy == "irnn_init":
        R.init.irnn(model)
    elif remedy == "fixup_init":  # the residual blocks written in forward, seen in a traced pass
        from .probes.traced_residuals import traced_residual_blocks

        blocks = traced_residual_blocks(model, example) if example is not None else []
        # the classifier keeps its standard init: the script's optimizer is not known here, and
        # under an adaptive one a zero classifier grows by ~lr per step (fixup.py); measured on
        # the 30-block residual case, 3 seeds: Adam 1e-4 0.50 → 0.84, SGD 1e-2 0.89 → 0.93 accuracy
        R.init.apply(model, "fixup", branches=blocks or None, example=example, zero_classifier=False)
    elif remedy == "zero_bias_init":
        for m in model.modules():
            if isinstance(getattr(m, "bias", None), torch.Tensor):
                nn.init.zeros_(m.bias)
    elif remedy == "use_relu_with_he_init":
        for old in (nn.Sigmoid, nn.Tanh):
            R.architecture.swap_activation(model, old, nn.ReLU, reinit=False)
        swap = R.swap_functional_activation(model)  # torch.sigmoid(self.fc(x)) in forward too
        R.init.apply(model, "auto", example=example)  # its traced pass sees the ReLUs: He
        if example is not None:
            swap.enter()  # the forward pass about to run is swapped too; its forward hook ends it
    elif remedy == "use_leaky_relu":
        R.architecture.swap_activation(model, nn.ReLU, nn.LeakyReLU, reinit=False)
        swap = R.swap_functional_activation(model, old=("relu",), new=R.leaky_relu)  # F.relu in forward too
        if example is not None:
            swap.enter()
    else:
        raise ValueError(f"{remedy!r} is not a model remedy; injectable: {', '.join(INJECTABLE)}")


_SIGN_LIKE = ("Adam", "AdamW", "NAdam", "RAdam", "Adamax", "SparseAdam", "Adagrad", "RMSprop", "Adadelta")


def predicted_first_ratio(optimizer: torch.optim.Optimizer) -> float:
    """The median ‖Δw‖/‖w‖ over weight matrices that the coming step would make, measured by
    taking that step on a copy: the parameters, their gradients and the optimizer's state are
    cloned, ``step()`` runs on the clones, nothing of the real run changes. Exact for every
    optimizer (SGD's ``lr·‖g‖/‖w‖``, Adam's ``lr`` per element, RMSprop's ``lr/√(1−α)`` per
    element on its first step, RAdam's un-adapted first steps, custom ones). NaN when there is
    nothing to measure.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(4, 4)
        >>> opt = torch.optim.SGD(m.parameters(), lr=0.1)
        >>> m(torch.randn(2, 4)).sum().backward()
        >>> w = m.weight.detach().clone()
        >>> r = predicted_first_ratio(opt)
        >>> torch.equal(m.weight, w) and abs(r - 0.1 * float(m.weight.grad.norm() / w.norm())) < 1e-6
        True
    """
    import copy

    memo: dict = {}
    pairs = []
    with torch.no_grad():
        for g in optimizer.param_groups:
            for p in g["params"]:
                if id(p) in memo:
                    continue
                c = p.detach().clone()
                if p.grad is not None:
                    c.grad = p.grad.detach().clone()
                memo[id(p)] = c
                if p.grad is not None and p.dim() >= 2:
                    pairs.append((c, c.detach().clone()))
        if not pairs:
            return float("nan")
        shadow = copy.deepcopy(optimizer, memo)  # state tensors are cloned, keyed by the clones
        shadow._optimizer_step_pre_hooks.clear()
        shadow._optimizer_step_post_hooks.clear()
        _step_without_global_hooks(shadow)
        ratios = []
        for after, before in pairs:
            w = float(before.norm())
            step = float((after - before).norm())
            if w > 0 and step == step:
                ratios.append(step / w)
    if not ratios:
        return float("nan")
    ratios.sort()
    return ratios[len(ratios) // 2]


def _step_without_global_hooks(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` without firing the global optimizer hooks (the watcher's, the guard's,
    this remedy's own): the step on the shadow copy is not a step of the run."""
    from torch.optim import optimizer as optim_module

    pre, post = dict(optim_module._global_optimizer_pre_hooks), dict(optim_module._global_optimizer_post_hooks)
    optim_module._global_optimizer_pre_hooks.clear()
    optim_module._global_optimizer_post_hooks.clear()
    try:
        type(optimizer).step(optimizer)  # the class's step: an LR scheduler patches the instance's
    finally:
        optim_module._global_optimizer_pre_hooks.update(pre)
        optim_module._global_optimizer_post_hooks.update(post)


def _uncorrected_first_step(optimizer: torch.optim.Optimizer) -> float:
    """How much larger RMSprop's very first step is than a bias-corrected one: its ``v`` starts
    at 0 and holds ``(1−α)g²`` after one step (``α(1−α)g²`` centred), so ``g/√v`` is
    ``1/√(1−α)`` ≈ 10 per element at α = 0.99 instead of Adam's 1. 1 for every other optimizer,
    and for RMSprop once it has taken a step.

    Example:
        >>> import torch
        >>> opt = torch.optim.RMSprop([torch.nn.Parameter(torch.ones(2))], lr=1e-3)
        >>> round(_uncorrected_first_step(opt), 2)
        10.0
    """
    if type(optimizer).__name__ != "RMSprop" or len(optimizer.state):
        return 1.0
    alpha = float(optimizer.param_groups[0].get("alpha", 0.99))
    var = alpha * (1 - alpha) if optimizer.param_groups[0].get("centered") else 1 - alpha
    return 1.0 / var ** 0.5 if var > 0 else 1.0


def _momentum_gain(optimizer: torch.optim.Optimizer) -> float:
    """How much larger heavy-ball momentum makes the steps than the first: the buffer starts as
    ``g`` and settles at ``(1−dampening)/(1−β)·g`` while gradients keep their direction (10× at
    β = 0.9). 1 without momentum (or when dampening makes the steps shrink instead).

    Example:
        >>> import torch
        >>> p = [torch.nn.Parameter(torch.ones(2))]
        >>> _momentum_gain(torch.optim.SGD(p, lr=0.1, momentum=0.9)), _momentum_gain(torch.optim.SGD(p, lr=0.1))
        (10.0, 1.0)
    """
    group = optimizer.param_groups[0]
    beta, damp = float(group.get("momentum", 0.0) or 0.0), float(group.get("dampening", 0.0) or 0.0)
    if not 0.0 < beta < 1.0:
        return 1.0
    return round(max(1.0, (1.0 - damp) / (1.0 - beta)), 6)


class StepRemedy:
    """Acts before every optimizer step: clipping, warmup, a one-time rate change.

    ``reduce_lr`` divides the rate by 10, or by more when the steps would still move the
    weights by over ``1e-2`` of their size: then the rate is set so that the first step lands on
    the aim. ``increase_lr`` multiplies by 10, or by more when the steps would still move them by
    under ``1e-4``: then to the aim too. "The steps" are the first (:func:`predicted_first_ratio`,
    measured on a copy) times what momentum makes of it (:func:`_momentum_gain`): a first step of
    7e-3 at β = 0.9 settles at 7e-2, outside the band, though the first step alone is inside. A
    rate a thousand times too large (one step that kills every ReLU) is not fixed by a tenth of it.

    The aim depends on how the optimizer's later steps relate to its first. Plain SGD's steps
    stay near the first: it aims at ``3e-3``, inside the band (the healthy plain-SGD twins of the
    repair benchmark start at 3.4e-3–4e-3). With momentum β the steps grow to 1/(1−β) first steps
    (:func:`_momentum_gain`), so the first aims that much lower: ``3e-4`` at β = 0.9, where the
    healthy momentum twins start (4e-4–1e-3 at their second step). Aiming the first step of a
    momentum run at ``3e-3`` set rates of 0.03–0.1 on a deep ReLU CNN whose healthy rate is 0.01,
    and two seeds of three diverged. An adaptive
    optimizer's (Adam, RMSprop, Adagrad, …) first step is its largest: ``g/√v`` is ±1 per
    element when ``v`` holds one squared gradient, and shrinks as noisy gradients average out.
    So its first step may sit above the band the later ones settle in: it aims at ``2e-2`` —
    for RMSprop, whose first step lacks Adam's bias correction, ``2e-2/√(1−α)``, the same step
    once corrected. Why 2e-2: the first step moves each element by ≈ lr, so ‖Δw‖/‖w‖ =
    lr/rms(w), and the field's default (Adam at 1e-3, Kingma & Ba 2015) on PyTorch's default
    init (rms = 1/√(3·fan_in)) makes it 1e-3·√(3·fan_in): 1.4e-2 at fan-in 64, 2.1e-2 at 144,
    5.5e-2 at 1024. The aim is the low end of that range, so a corrected rate is never faster
    than the default on small layers. The band's edge, 1e-2, which it was before, sat below the
    whole range: Adam runs landed at ≈ 0.7× the default rate (6.7e-4 on a CNN, 7e-4 on an LSTM
    in the repair benchmark) and trained slower than their healthy twins at 1e-3.
    """

    band = (1e-4, 1e-2)
    aim = {"sgd": 3e-3, "adaptive": 2e-2}

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
                r = predicted_first_ratio(optimizer)
                if type(optimizer).__name__ in _SIGN_LIKE:
                    aim = self.aim["adaptive"] * _uncorrected_first_step(optimizer)
                    gain = 1.0  # the first step is the largest
                else:
                    gain = _momentum_gain(optimizer)
                    aim = self.aim["sgd"] / gain
                if r == r and r > 0:
                    settled = r * factor * gain  # the steps the rate leads to, against the band
                    if self.remedy == "reduce_lr" and settled > self.band[1]:
                        factor = aim / r
                    elif self.remedy == "increase_lr" and settled < self.band[0]:
                        factor = aim / r
                self.factor = factor
                scale_lr(optimizer, factor)
        if self.remedy == "clip_grad_norm":
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.clip)
        elif self.remedy == "add_warmup":
            f = min(1.0, (n + 1) / self.warmup)
            for g, base in zip(optimizer.param_groups, self._base[key]):
                g["lr"] = base * f


def split_combination(spec: str) -> tuple[str | None, list[StepRemedy], bool]:
    """A remedy spec as what applies it: the model remedy (None without one), the step remedies
    to run before every optimizer step (in :func:`parse_combination`'s order) and whether it asks
    for the guard. One reading for ``gradwatch run --remedy`` and for library trials.

    Example:
        >>> model, steps, guard = split_combination("add_warmup:10+use_he_init+guard")
        >>> model, [s.remedy for s in steps], steps[0].warmup, guard
        ('use_he_init', ['add_warmup'], 10, True)
    """
    parts = parse_combination(spec)
    model = next((rid for rid, _ in parts if rid in MODEL_REMEDIES), None)
    steps = [StepRemedy(rid, **opts) for rid, opts in parts if rid not in MODEL_REMEDIES and rid != "guard"]
    return model, steps, any(rid == "guard" for rid, _ in parts)
