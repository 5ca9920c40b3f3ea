"""The faults: one function per fault, each rewriting a base's configuration or its built models.

A fault never looks at which base it is given: it reads the configuration keys every base
of its kind has (``lr``, ``act``, ``depth``...) or walks the model's modules and tensors,
and says whether it applies (``applies``). ``LABELS`` maps each fault to the finding kinds
a correct diagnosis names, with the mechanism that makes them the right answer.

Example:
    >>> cfg = {"lr": 1e-3}
    >>> FAULTS["lr_x100"].rewrite(cfg)["lr"]
    0.1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


class NotApplicable(Exception):
    """The fault has nothing to change in this model (no layer feeds a ReLU, no cut leaves
    some layers with a gradient and some without)."""
_RNNS = (nn.RNN, nn.LSTM, nn.GRU)


@dataclass
class Fault:
    """One injected fault.

    Args:
        name: its id.
        applies: (configuration, models) → whether the fault exists in this base.
        rewrite: configuration → the faulty configuration (before the models are built).
        mutate: (models, forward) → changes the built models in place; ``forward()`` runs the
            base's loss on a small batch (the fault may hook the models to look at it).
    """

    name: str
    applies: Callable[[dict, dict], bool]
    rewrite: Callable[[dict], dict] = lambda cfg: cfg
    mutate: Callable[[dict, Callable[[], torch.Tensor]], None] | None = None


def _weights(models: dict):
    """Every weight matrix or kernel (ndim ≥ 2) outside normalisation layers."""
    for model in models.values():
        for m in model.modules():
            if isinstance(m, _NORMS):
                continue
            for p in m.parameters(recurse=False):
                if p.dim() >= 2:
                    yield p


def scale_init(k: float):
    """Multiply every weight matrix and kernel by ``k`` (``init ×10`` / ``init ÷10``)."""
    @torch.no_grad()
    def mutate(models, forward):
        for p in _weights(models):
            p.mul_(k)
    return mutate


@torch.no_grad()
def constant_init(models, forward):
    """Every weight matrix := 1/fan_in (the mean of its inputs), every bias of those layers := 0:
    all units of a layer compute the same thing and receive the same gradient."""
    for model in models.values():
        for m in model.modules():
            if isinstance(m, _NORMS):
                continue
            for name, p in m.named_parameters(recurse=False):
                if p.dim() >= 2:
                    p.fill_(p.shape[0] / p.numel())
                elif "bias" in name:
                    p.zero_()


def negative_relu_bias(models, forward):
    """The bias of every layer whose output feeds an ``nn.ReLU`` := −3 σ, σ that output's
    standard deviation on a batch at init: ~99.9 % of the pre-activations fall below zero."""
    feeds: dict[int, tuple[nn.Module, float]] = {}
    outputs: dict[int, nn.Module] = {}
    handles = []
    for model in models.values():
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(
                    lambda mod, args: feeds.setdefault(id(args[0]), None)))
            elif getattr(m, "bias", None) is not None and isinstance(m.bias, torch.Tensor):
                def hook(mod, args, out):
                    outputs[id(out)] = (mod, out.detach().std().item(), out)
                handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        forward()
    for h in handles:
        h.remove()
    hit = [outputs[key] for key in feeds if key in outputs]
    if not hit:
        raise NotApplicable("no layer with a bias feeds an nn.ReLU")
    with torch.no_grad():
        for mod, sd, _ in hit:
            mod.bias.fill_(-3.0 * sd)


def _has_relu_bias(cfg, models) -> bool:
    return cfg.get("act") == "relu"


def spectral_radius(rho: float):
    """Scale every recurrent weight block (each gate's W_hh) to spectral radius ``rho``."""
    @torch.no_grad()
    def mutate(models, forward):
        for model in models.values():
            for m in model.modules():
                if isinstance(m, _RNNS):
                    for name, p in m.named_parameters():
                        if name.startswith("weight_hh"):
                            for block in p.data.split(m.hidden_size, 0):
                                r = torch.linalg.eigvals(block).abs().max().item()
                                block.mul_(rho / max(r, 1e-12))
    return mutate


def detach_inside(models, forward):
    """Cut the graph inside the first model the base builds: the output of one module is
    detached, so the layers before it get no gradient. Of all module outputs (the model's own
    excluded), the cut is the one that leaves closest to half of the model's parameter tensors
    without a gradient (the later one on ties), measured with one ``autograd.grad`` per
    candidate. Only the first model: a GAN's discriminator cut would cut its generator off
    entirely, which is a different bug (a model that no loss reaches)."""
    for model in list(models.values())[:1]:
        params = [p for p in model.parameters() if p.requires_grad]
        order: list[nn.Module] = []
        hs = [m.register_forward_hook(lambda mod, a, o: order.append(mod) if mod not in order else None)
              for m in model.modules() if m is not model]
        forward()
        for h in hs:
            h.remove()
        best, best_key = None, None
        for m in order:
            h = m.register_forward_hook(_detach_output)
            loss = forward()
            h.remove()
            if not loss.requires_grad:  # the cut leaves nothing trainable before the loss
                continue
            # autograd.grad, not backward(): the probe leaves no .grad behind for the training to find
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            cut = sum(g is None or not g.any() for g in grads)
            if cut == 0 or cut == len(params):
                continue
            key = (-abs(cut - len(params) / 2), order.index(m))
            if best_key is None or key > best_key:
                best, best_key = m, key
        if best is None:
            raise NotApplicable("no module output whose cut leaves some parameters with a gradient and some without")
        best.register_forward_hook(_detach_output)


def _detach_output(module, args, out):
    if isinstance(out, tuple):
        return tuple(o.detach() if isinstance(o, torch.Tensor) else o for o in out)
    return out.detach()


def _set(**changes):
    return lambda cfg: {**cfg, **changes}


def _mul(key, k):
    return lambda cfg: {**cfg, key: cfg[key] * k}


def _always(cfg, models):
    return True


def _recurrent(cfg, models):
    return any(isinstance(m, _RNNS) for model in models.values() for m in model.modules())


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("init_x10", _always, mutate=scale_init(10.0)),
    Fault("init_div10", _always, mutate=scale_init(0.1)),
    Fault("constant_init", _always, mutate=constant_init),
    Fault("saturating_activation", lambda c, m: c.get("act") == "relu", rewrite=_set(act="sigmoid")),
    Fault("depth_x4_no_norm", lambda c, m: "depth" in c, rewrite=lambda c: {**c, "depth": c["depth"] * 4,
                                                                           **({"norm": None} if "norm" in c else {})}),
    Fault("lr_x100", _always, rewrite=_mul("lr", 100)),
    Fault("lr_div1000", _always, rewrite=_mul("lr", 1e-3)),
    Fault("zero_grad_dropped", _always, rewrite=_set(zero_grad=False)),
    Fault("detach_inside", _always, mutate=detach_inside),
    Fault("post_ln_no_warmup", lambda c, m: "norm_first" in c, rewrite=_set(norm_first=False, warmup=0)),
    Fault("log_zero_loss", lambda c, m: "loss_impl" in c and c.get("task") in ("class", "binary", "lm", "gan"),
          rewrite=_set(loss_impl="manual")),
    Fault("negative_relu_bias", _has_relu_bias, mutate=negative_relu_bias),
    Fault("spectral_radius_gt1", _recurrent, mutate=spectral_radius(2.5)),
]}


@dataclass
class Label:
    """What a correct diagnosis of a fault names.

    Args:
        expect: kinds of which at least one must be found (warning or critical); the root
            cause (the first serious finding) must be one of them.
        also_ok: kinds that really follow from the fault; neither required nor penalised.
        why: the mechanism.
    """

    expect: tuple[str, ...]
    also_ok: tuple[str, ...] = ()
    why: str = ""


_BOUNDED = ("tanh", "sigmoid")


def label(fault: str, cfg: dict, recurrent: bool) -> Label:
    """The label of ``fault`` injected into a base with configuration ``cfg``.

    The one table of the benchmark. Where the mechanism depends on the base (a bounded
    activation, a normalisation layer), the table says so from the configuration, never
    from the base's name.
    """
    bounded = cfg.get("act") in _BOUNDED or recurrent  # RNN/LSTM/GRU: tanh and sigmoid gates
    normed = cfg.get("norm") is not None
    sat = ("saturated_activations",) if bounded else ()
    table = {
        "init_x10": Label(
            ("exploding_gradients",) + sat + (("learning_rate_too_low",) if normed else ()),
            ("nonfinite", "learning_rate_too_low", "learning_rate_too_high"),
            "each layer multiplies the signal and δ by ~10 (ReLU, linear parts); bounded units go to "
            "their flat tails instead; behind a normalisation layer the forward scale is undone and "
            "the gradient of a scale-invariant weight falls as 1/‖w‖: steps ÷100 relative to the weights. "
            "The update ratio moves too: Adam's step does not grow with the weights (ratio ÷10), SGD's "
            "grows with the other layers' scale"),
        "init_div10": Label(
            ("vanishing_gradients",) + (("learning_rate_too_high",) if normed else ()),
            ("learning_rate_too_high", "learning_rate_too_low"),
            "each layer shrinks the signal and δ by ~10; behind a normalisation layer the effective "
            "step grows ×100 instead. The update ratio moves too: Adam's step does not shrink with "
            "the weights (ratio ×10), SGD's shrinks with the other layers' scale"),
        "constant_init": Label(
            ("symmetric_weights",), (),
            "all units of a layer start equal, get equal gradients and stay equal (no symmetry breaking)"),
        "saturating_activation": Label(
            ("vanishing_gradients", "saturated_activations"), (),
            "σ′ ≤ ¼ per layer (Glorot & Bengio 2010), tails where σ′ ≈ 0"),
        "depth_x4_no_norm": Label(
            ("vanishing_gradients", "exploding_gradients"), ("nonfinite", "dead_units", "saturated_activations"),
            "a per-layer gain ≠ 1 compounds over 4× as many layers with nothing to rescale it"),
        "lr_x100": Label(
            ("learning_rate_too_high",), ("nonfinite", "exploding_gradients", "dead_units",
                                          "saturated_activations", "vanishing_gradients"),
            "update/weight ratios ×100 above the band: divergence; the wrecked weights then kill ReLUs, "
            "saturate bounded units, overflow"),
        "lr_div1000": Label(
            ("learning_rate_too_low",), (),
            "update/weight ratios ÷1000 below the band while gradients are healthy"),
        "zero_grad_dropped": Label(
            ("gradients_not_zeroed",), ("learning_rate_too_high", "exploding_gradients", "nonfinite"),
            "each step's gradient adds onto all earlier ones (seen exactly: not zero at the first "
            "backward); the growing sum acts as a rate that grows with the step"),
        "detach_inside": Label(
            ("disconnected_layers",), (),
            "layers before the cut get no gradient at all while their optimizer holds them"),
        "post_ln_no_warmup": Label(
            ("learning_rate_too_high", "exploding_gradients"), ("nonfinite",),
            "post-LN puts the norm on the residual path: gradients near the output are large at init, "
            "and without warmup Adam's first steps are too large for them (Xiong et al. 2020)"),
        "log_zero_loss": Label(
            ("nonfinite",), ("exploding_gradients", "saturated_activations"),
            "p rounds to exactly 0 or 1 in fp32 once a logit leads by ~17: 0·log 0 = NaN"),
        "negative_relu_bias": Label(
            ("dead_units",), ("vanishing_gradients",),
            "pre-activations below zero for every input: ReLU outputs 0, its derivative is 0, and the "
            "layers below get no gradient through it"),
        "spectral_radius_gt1": Label(
            ("exploding_gradients",), ("saturated_activations", "vanishing_gradients", "nonfinite"),
            "∂h_t/∂h_{t−1} has gain up to the spectral radius per step: δ grows through time; the "
            "saturated units that follow then stop the gradient (a consequence, not the cause)"),
    }
    return table[fault]
