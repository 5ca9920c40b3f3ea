"""Initialisation policies for a whole model: ``gw.init.apply(model, policy) -> InitReport``.

Weights are written in place (the same parameter objects, so an optimizer built on them keeps
working) with ``torch.nn.init``; biases start at zero unless the policy says otherwise. The
report lists every tensor written, with the rule and the resulting std, and what was left.

Policies (options in brackets):
    zeros                      all weights 0 — kept for teaching: no unit can differ from its
                               neighbours, so symmetry never breaks
    normal / uniform           N(0, scale²) / U(−scale, scale)                     [scale]
    xavier_normal / _uniform   Var = gain²·2/(fan_in+fan_out) (Glorot & Bengio 2010) [gain]
    he_normal / he_uniform     Var = gain²/fan (He et al. 2015)      [a, mode, nonlinearity]
    orthogonal                 W Wᵀ = gain²·I (Saxe et al. 2014)                    [gain]
    delta_orthogonal           convolutions: orthogonal centre tap (Xiao et al. 2018) [gain]
    lsuv                       orthogonal, then each layer rescaled to unit output variance
                               on a batch (Mishkin & Matas 2016)          [data, tol, max_iter]
    critical                   orthogonal at χ₁ = 1 for the activation in use (Schoenholz et
                               al. 2017); or give the fixed point q* instead of σ_b²
                               (Pennington et al. 2017)      [sigma_b2 or q_star, activation]
    fixup                      residual nets without normalisation (Zhang et al. 2019)
                                                             [branches, zero_classifier]
    rezero                     wrap same-shape blocks as x + α·f(x), α = 0 (Bachlechner et al. 2020)
    auto                       per layer, from the activation that follows it: He for ReLU-like
                               (with its negative slope), Xavier with calculate_gain for tanh /
                               sigmoid, Xavier for a linear output, orthogonal recurrent weights
                               (the identity for a ReLU recurrence: IRNN, Le et al. 2015)
Every policy also takes ``bias`` (a constant, or None to leave biases), ``generator`` and
``layers`` (module names: only those are initialised). :func:`irnn` touches only the ReLU
recurrences (identity recurrent matrix, zero biases) and keeps every other weight.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> report = apply(model, "auto")
    >>> report.rule_of("0.weight")
    "kaiming_normal_(a=0, mode='fan_in', nonlinearity='relu')"
    >>> report.rule_of("2.weight")
    'xavier_normal_(gain=1)'
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from . import rules as R
from .critical import activation_fn, critical_for_q, critical_point, critical_sigma_w2  # noqa: F401  (public here)
from .init_report import InitEntry, InitReport
from .layers import WEIGHT_LAYERS, final_layer, following_activation, following_modules  # noqa: F401
from .lsuv import lsuv_rescale
from .pretrained import LoadReport, load_pretrained  # noqa: F401
from .residual import ReZero, Residual, residual_branches, residual_sequentials, wrap_blocks  # noqa: F401
from .rules import delta_orthogonal_  # noqa: F401

_COMMON = {"bias", "generator", "layers", "example"}
OPTIONS: dict[str, set[str]] = {
    "zeros": set(), "normal": {"scale"}, "uniform": {"scale"},
    "xavier_normal": {"gain"}, "xavier_uniform": {"gain"},
    "he_normal": {"a", "mode", "nonlinearity"}, "he_uniform": {"a", "mode", "nonlinearity"},
    "orthogonal": {"gain"}, "delta_orthogonal": {"gain"},
    "lsuv": {"data", "tol", "max_iter"}, "critical": {"sigma_b2", "q_star", "activation"},
    "fixup": {"branches", "zero_classifier"}, "rezero": set(), "auto": set(),
}
POLICIES = tuple(OPTIONS)
_GATES = {"RNN": 1, "RNNCell": 1, "LSTM": 4, "LSTMCell": 4, "GRU": 3, "GRUCell": 3}

LayerRule = Callable[[str, nn.Module, "nn.Module | None"], R.Rule]


def apply(model: nn.Module, policy: str = "auto", **kw: Any) -> InitReport:
    """Initialise every weight layer of ``model`` in place with ``policy``.

    Args:
        model: the model; its parameters are written in place.
        policy: one of :data:`POLICIES` (see the module docstring).
        **kw: the policy's options, plus ``bias`` (default 0.0; None leaves biases),
            ``generator`` (a ``torch.Generator`` for reproducible draws), ``layers`` (only
            these module names; not for lsuv, fixup, rezero) and ``example`` (the inputs of one
            forward call, a tensor or a tuple: the activation after each layer is then also read
            from functional calls such as ``F.relu(self.fc(x))``, which module order cannot see).

    Returns:
        An :class:`InitReport` naming every tensor touched and the rule used.

    Raises:
        ValueError: an unknown policy or option, or a missing required option (``data`` for lsuv).

    Example:
        >>> import torch
        >>> print(apply(torch.nn.Linear(3, 3), "orthogonal", gain=2.0).rule_of("weight"))
        orthogonal_(gain=2)
    """
    if policy not in OPTIONS:
        raise ValueError(f"unknown init policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    unknown = set(kw) - OPTIONS[policy] - _COMMON
    if unknown:
        raise ValueError(f"policy {policy!r} takes no option {sorted(unknown)}; it takes: "
                         f"{sorted(OPTIONS[policy] | _COMMON)}")
    gen, bias = kw.get("generator"), kw.get("bias", 0.0)
    only = set(kw["layers"]) if kw.get("layers") is not None else None
    if only is not None and policy in ("lsuv", "fixup", "rezero"):
        raise ValueError(f"policy {policy!r} acts on the whole model; drop the layers= option")
    if only is not None and only - {n for n, _ in model.named_modules()}:
        raise ValueError(f"no modules named {sorted(only - {n for n, _ in model.named_modules()})} in the model; "
                         "use names from model.named_modules()")
    report = InitReport(policy)
    if policy == "rezero":
        return _rezero(model, report, gen, bias)
    if policy == "fixup":
        return _fixup(model, report, kw.get("branches"), gen, bias, kw.get("example"),
                      kw.get("zero_classifier", True))
    if policy == "lsuv":
        if kw.get("data") is None:
            raise ValueError("policy 'lsuv' needs a batch of inputs: apply(model, 'lsuv', data=x)")
        _walk(model, report, lambda n, m, a: R.orthogonal_rule(1.0, gen), gen, bias, policy)
        for name, var, iters in lsuv_rescale(model, kw["data"], kw.get("tol", 0.1), kw.get("max_iter", 10)):
            if var is None:
                report.notes.append(f"layer {name!r} did not run in the forward pass: kept orthogonal")
            else:
                e = next(e for e in report.entries if e.param == (f"{name}.weight" if name else "weight"))
                e.rule += f", rescaled to output Var={var:.3f} in {iters} passes"
                e.std = float(model.get_submodule(name).weight.detach().float().std()) if name else e.std
        return report
    if policy == "critical":
        sigma_b2 = float(kw.get("sigma_b2", 0.0))
        forced = kw.get("activation")
        if forced is not None:
            forced_mod = forced if isinstance(forced, nn.Module) else _ActFromName(forced)
        if kw.get("q_star") is not None:
            return _critical_q_star(model, report, kw, forced_mod if forced is not None else None, gen, only)
        rule = lambda n, m, a: R.critical_rule(forced_mod if forced is not None else a, sigma_b2, gen)  # noqa: E731
        bias = kw.get("bias", ("normal", math.sqrt(sigma_b2)) if sigma_b2 > 0 else 0.0)
        _walk(model, report, rule, gen, bias, policy, sigma_b2=sigma_b2, only=only, example=kw.get("example"))
        return report
    _walk(model, report, _simple_rule(policy, kw, gen), gen, bias, policy, only=only, example=kw.get("example"))
    return report


def _critical_q_star(model: nn.Module, report: InitReport, kw: dict, forced, gen, only) -> InitReport:
    """``critical`` with a target fixed point q*: (σ_w², σ_b²) from :func:`critical_for_q` for the
    one activation of the model (Pennington et al. 2017); a linear read-out keeps σ_w² = 1."""
    if "sigma_b2" in kw:
        raise ValueError("policy 'critical' takes q_star or sigma_b2, not both; drop one")
    q_star = float(kw["q_star"])
    acts = [forced] if forced is not None else [a for a in following_modules(model).values() if a is not None]
    kinds = sorted({repr(a) for a in acts})
    if len(kinds) != 1:
        raise ValueError(f"q_star needs one activation after the weight layers, found {kinds or 'none'}; "
                         "pass activation='tanh' (or the one to solve for)")
    sigma_w2, sigma_b2 = critical_for_q(acts[0], q_star)
    sigma_w = math.sqrt(sigma_w2)

    def rule(w: torch.Tensor) -> str:
        gain = sigma_w * math.sqrt(max(1.0, w.shape[0] / w.shape[1]))
        R.orthogonal_rule(gain, gen, delta=True)(w)
        kind = "delta_orthogonal_" if w.dim() >= 3 else "orthogonal_"
        return f"{kind}(gain={gain:.4g})  # σ_w²={sigma_w2:.4g}, χ₁=1 at q*={q_star:.4g}"

    layer_rule = lambda n, m, a: rule if (forced is not None or a is not None) \
        else R.critical_rule(None, sigma_b2, gen)  # noqa: E731
    bias = kw.get("bias", ("normal", math.sqrt(sigma_b2)) if sigma_b2 > 0 else 0.0)
    _walk(model, report, layer_rule, gen, bias, "critical", sigma_b2=sigma_b2, only=only)
    return report


def _simple_rule(policy: str, kw: dict, gen) -> LayerRule:
    if policy == "auto":
        return lambda n, m, act: R.auto_rule(act, gen)
    rule = {
        "zeros": lambda: R.zeros_rule(),
        "normal": lambda: R.normal_rule(kw.get("scale", 0.01), gen),
        "uniform": lambda: R.uniform_rule(kw.get("scale", 0.05), gen),
        "xavier_normal": lambda: R.xavier_rule(kw.get("gain", 1.0), "normal", gen),
        "xavier_uniform": lambda: R.xavier_rule(kw.get("gain", 1.0), "uniform", gen),
        "he_normal": lambda: R.he_rule(kw.get("a", 0.0), kw.get("mode", "fan_in"), kw.get("nonlinearity", "relu"),
                                       "normal", gen),
        "he_uniform": lambda: R.he_rule(kw.get("a", 0.0), kw.get("mode", "fan_in"), kw.get("nonlinearity", "relu"),
                                        "uniform", gen),
        "orthogonal": lambda: R.orthogonal_rule(kw.get("gain", 1.0), gen),
        "delta_orthogonal": lambda: R.orthogonal_rule(kw.get("gain", 1.0), gen, delta=True),
    }[policy]()
    return lambda n, m, act: rule


class _ActFromName(nn.Module):
    """An activation given by name, as a module (for ``critical`` with a forced activation)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = activation_fn(name)

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


@torch.no_grad()
def _walk(model: nn.Module, report: InitReport, layer_rule: LayerRule, gen, bias, policy: str,
          sigma_b2: float = 0.0, only: set[str] | None = None, example: Any = None) -> None:
    """Apply a per-layer rule to every weight layer, recurrent and attention module; with an
    ``example`` input, functional activations count too (one traced forward pass)."""
    if example is not None:
        from ..probes.traced_activations import traced_following_modules

        follow = traced_following_modules(model, example)
    else:
        follow = following_modules(model)
    done: set[int] = set()

    def note(pname: str, lname: str, m: nn.Module, p: torch.Tensor, rule: str) -> None:
        report.entries.append(InitEntry(pname, lname, type(m).__name__, rule, float(p.detach().float().std())
                                        if p.numel() > 1 else float(p.detach().float().abs().sum())))
        done.add(id(p))

    def full(lname: str, pname: str) -> str:
        return f"{lname}.{pname}" if lname else pname

    for name, m in model.named_modules():
        if only is not None and name not in only:
            continue
        if isinstance(m, WEIGHT_LAYERS):
            # a Bilinear weight (out, in1, in2) is a matrix to the rules, never a conv kernel
            w = m.weight.view(m.weight.shape[0], -1) if isinstance(m, nn.Bilinear) else m.weight
            note(full(name, "weight"), name, m, m.weight, layer_rule(name, m, follow.get(name))(w))
            if getattr(m, "bias", None) is not None and bias is not None:
                note(full(name, "bias"), name, m, m.bias, _bias(m.bias, bias, gen))
        elif isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
            _recurrent(name, m, policy, layer_rule, gen, bias, sigma_b2, note, full)
        elif isinstance(m, nn.MultiheadAttention):
            for pn in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                p = getattr(m, pn, None)
                if isinstance(p, nn.Parameter):
                    chunks = 3 if pn == "in_proj_weight" else 1
                    rule = R.xavier_rule(1.0, "uniform", gen) if policy in ("auto", "critical") \
                        else layer_rule(name, m, None)
                    texts = [rule(c) for c in p.view(chunks, -1, p.shape[1]).unbind(0)]
                    note(full(name, pn), name, m, p, texts[0] + (f" per block ({chunks})" if chunks > 1 else ""))
            if isinstance(m.in_proj_bias, nn.Parameter) and bias is not None:
                note(full(name, "in_proj_bias"), name, m, m.in_proj_bias, _bias(m.in_proj_bias, bias, gen))
    for pname, p in model.named_parameters():
        if id(p) not in done and (only is None or any(pname.startswith(o + ".") or pname == o for o in only)):
            owner = pname.rpartition(".")[0]
            kind = type(model.get_submodule(owner)).__name__ if owner else type(model).__name__
            report.skipped.append((pname, f"{kind} parameter, not a weight layer's"))


def _bias(b: torch.Tensor, spec, gen) -> str:
    if isinstance(spec, tuple):  # ("normal", std)
        nn.init.normal_(b, 0.0, spec[1], generator=gen)
        return f"normal_(std={spec[1]:.4g})"
    nn.init.constant_(b, float(spec))
    return "zeros_" if float(spec) == 0.0 else f"constant_({float(spec):.4g})"


def _identity_rule(w: torch.Tensor) -> str:
    """The identity recurrence of IRNN: a ReLU state carries itself forward unchanged, so the
    gradient through time is neither amplified nor lost while units stay active (a random
    orthogonal matrix rotates the state and ReLU then zeroes half of it at every step)."""
    nn.init.eye_(w)
    return "eye_ (IRNN, Le et al. 2015)"


def irnn(model: nn.Module) -> InitReport:
    """IRNN (Le, Jaitly & Hinton 2015): every ReLU recurrence (``nn.RNN``/``nn.RNNCell`` with
    ``nonlinearity="relu"``) starts with the identity as its recurrent matrix and zero biases;
    its input weights and every other layer keep their values.

    With W_hh = I a ReLU state is copied forward and the current input added, so the gradient
    through time is neither amplified (a radius above 1) nor lost (below 1, or a rotation after
    which ReLU zeroes half of the state at every step).

    Raises:
        ValueError: the model has no ReLU recurrence.

    Example:
        >>> from torch import nn
        >>> rnn = nn.RNN(2, 4, nonlinearity="relu")
        >>> print(irnn(rnn).rule_of("weight_hh_l0"))
        eye_ (IRNN, Le et al. 2015)
        >>> bool((rnn.weight_hh_l0 == torch.eye(4)).all()), float(rnn.bias_hh_l0.abs().sum())
        (True, 0.0)
    """
    report = InitReport("irnn")
    found = False
    for name, m in model.named_modules():
        if not (isinstance(m, (nn.RNN, nn.RNNCell)) and getattr(m, "nonlinearity", "tanh") == "relu"):
            continue
        found = True
        for pn, p in m.named_parameters(recurse=False):
            full = f"{name}.{pn}" if name else pn
            with torch.no_grad():
                if pn.startswith("weight_hh"):
                    rule = _identity_rule(p)
                elif pn.startswith("bias"):
                    nn.init.zeros_(p)
                    rule = "zeros_"
                else:
                    report.skipped.append((full, "input weights keep their values"))
                    continue
            report.entries.append(InitEntry(full, name, type(m).__name__, rule, float(p.detach().float().std())))
    if not found:
        raise ValueError("irnn needs an nn.RNN or nn.RNNCell with nonlinearity='relu'; this model has none "
                         "(for tanh recurrences use orthogonal init, or replace the RNN by an LSTM)")
    return report


def _recurrent(name, m, policy, layer_rule, gen, bias, sigma_b2, note, full) -> None:
    kind = type(m).__name__
    gates = _GATES.get(kind, 1)
    nonlin = getattr(m, "nonlinearity", "tanh") if gates == 1 else None
    for pn, p in m.named_parameters(recurse=False):
        if pn.startswith("weight_hr"):
            rule = R.orthogonal_rule(1.0, gen)
            note(full(name, pn), name, m, p, rule(p))
            continue
        if pn.startswith("weight"):
            hh = pn.startswith("weight_hh")
            if policy == "auto" and hh and nonlin == "relu":
                rule = _identity_rule  # IRNN (Le, Jaitly & Hinton 2015): ReLU keeps h_{t-1} unchanged
            elif policy == "auto":
                rule = R.orthogonal_rule(1.0, gen) if hh else R.xavier_rule(1.0, "uniform", gen)
            elif policy == "critical":
                act = nn.Tanh() if nonlin == "tanh" else nn.ReLU() if nonlin == "relu" else None
                sw = R.critical_sigma_w(act, sigma_b2) if act is not None else 1.0
                rule = R.orthogonal_rule(sw or 1.0, gen)
            elif policy in ("lsuv", "delta_orthogonal"):
                rule = R.orthogonal_rule(1.0, gen)
            else:
                rule = layer_rule(name, m, None)
            texts = [rule(c) for c in p.view(gates, -1, p.shape[1]).unbind(0)]
            note(full(name, pn), name, m, p, texts[0] + (f" per gate ({gates})" if gates > 1 else ""))
        elif bias is not None:
            text = _bias(p, bias if not (policy == "critical" and pn.startswith("bias_hh")) else 0.0, gen)
            if policy == "auto" and kind in ("LSTM", "LSTMCell") and pn.startswith("bias_ih"):
                p.view(4, -1)[1].fill_(1.0)  # forget gate open at the start (Jozefowicz et al. 2015)
                text = "zeros_, forget gate 1"
            note(full(name, pn), name, m, p, text)


def _rezero(model: nn.Module, report: InitReport, gen, bias) -> InitReport:
    """Turn Residual wrappers into ReZero and wrap the remaining same-shape blocks."""
    converted = 0
    for name, m in list(model.named_modules()):
        for cname, child in list(m.named_children()):
            if isinstance(child, Residual):
                setattr(m, cname, ReZero(child.fn))
                converted += 1
    wrapped = [f"{n}.{w}" if n else w for n, seq in residual_sequentials(model) for w in wrap_blocks(seq, ReZero)]
    if not converted and not wrapped:
        raise ValueError("policy 'rezero' found no residual wrappers and no same-shape blocks "
                         "(Linear(n, n) + activation) in any nn.Sequential; wrap blocks with ReZero(block) yourself")
    for name, m in model.named_modules():
        if isinstance(m, ReZero):
            report.entries.append(InitEntry(f"{name}.alpha" if name else "alpha", name, "ReZero", "zeros_ (α = 0)", 0.0))
            report.new_params.append(f"{name}.alpha" if name else "alpha")
    report.notes.append(f"{len(report.new_params)} new α parameters: build the optimizer after this call "
                        "(or opt.add_param_group({'params': [...]}))")
    return report


def _fixup(model: nn.Module, report: InitReport, branches, gen, bias, example=None,
           zero_classifier: bool = True) -> InitReport:
    """Fixup (Zhang et al. 2019): the last layer of each branch and the classifier at 0, the other
    branch layers He-initialised and scaled by L^(−1/(2m−2)). With ``example`` the activation
    after each layer is also read from functional calls (``F.relu(self.a(x))``: He, not Xavier)."""
    from .fixup import fixup_layer_rules

    follow = None
    if example is not None:
        from ..probes.traced_activations import traced_following_modules

        follow = traced_following_modules(model, example)
    layer_rules, notes = fixup_layer_rules(model, branches, gen, follow, zero_classifier)
    report.notes += notes
    _walk(model, report, lambda n, m, a: layer_rules.get(n) or R.auto_rule(a, gen), gen, bias, "fixup",
          example=example)
    return report
