"""The remedies a finding can prescribe: an id, what it does, and code that applies it.

Code snippets assume the user's names ``model`` and ``opt`` and use gradwatch's remedies
library (``gradwatch.remedies``) or plain PyTorch.

Example:
    >>> "clip_by_global_norm" in prescribe("clip_grad_norm").code
    True
"""

from __future__ import annotations

from typing import Any

import torch

from ..findings import Remedy
from ..probes.activations import MODULE_ACTIVATIONS, family

# code templates; {fields} are filled from the recorded model by :func:`facts`
_RECREATE = ("opt = type(opt)(model.parameters(), **opt.defaults)"
             "  # the new layers' parameters join the optimizer")

_CATALOG: dict[str, tuple[str, str]] = {
    "zero_grad_each_step": (
        "Clear the gradients once per optimizer step, before its first backward",
        "for x, y in batches:\n    opt.zero_grad()          # or: for p in model.parameters(): p.grad = None\n"
        "    loss = loss_fn(model(x), y)\n    loss.backward()\n    opt.step()",
    ),
    "reconnect_graph": (
        "Keep the layers before the cut in the graph: no .detach(), torch.no_grad(), .data or NumPy round "
        "trip between them and the loss (detach only what must not train, and freeze it explicitly)",
        "# inside forward(): h = self.encoder(x)          # not self.encoder(x).detach()\n"
        "# frozen on purpose? say so, and leave it out of the optimizer:\n"
        "# for p in model.encoder.parameters(): p.requires_grad_(False)",
    ),
    "apply_the_update": (
        "Change the parameters in place (and check each param group's learning rate is above 0)",
        "lr = 0.1\nfor x, y in batches:\n    model.zero_grad()\n    loss_fn(model(x), y).backward()\n"
        "    with torch.no_grad():\n        for p in model.parameters():\n"
        "            p -= lr * p.grad   # in place: 'p = p - lr * p.grad' only rebinds the name\n"
        "print([g['lr'] for g in opt.param_groups])   # a group at lr 0 trains nothing",
    ),
    "optimize_the_model_called": (
        "Build the optimizer over the parameters of the model you call, after any copy or re-creation",
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)   # the model whose forward you call, not a copy",
    ),
    "use_relu_with_he_init": (
        "Replace the saturating activations by ReLU and re-initialise with He (Kaiming) init",
        "import gradwatch as gw\nfrom torch import nn\n"
        "model = gw.architecture.swap_activation(model, {saturating}, nn.ReLU)  # re-inits the layers before them (He)"
        "{functional_note}",
    ),
    "use_he_init": (
        "Re-initialise each layer for the activation that follows it (He for ReLU, Xavier for tanh)",
        "import gradwatch as gw\nreport = gw.init.apply(model, 'auto')\nprint(report)  # which layers got which init",
    ),
    "critical_init": (
        "Initialise at the edge of chaos: orthogonal weights scaled so χ₁ = 1 for the activation in use",
        "import gradwatch as gw\ngw.init.apply(model, 'critical')",
    ),
    "add_batchnorm": (
        "Insert {norm_title} after the linear/conv layers to re-scale the signal at every layer",
        "import gradwatch as gw\nmodel = gw.architecture.insert_norm(model, norm='{norm}')\n" + _RECREATE,
    ),
    "add_residual": (
        "Wrap same-shape blocks in residual connections so the gradient has a short path",
        "import gradwatch as gw\nmodel = gw.architecture.add_residual(model)",
    ),
    "clip_grad_norm": (
        "Clip the global gradient norm before each optimizer step",
        "import gradwatch as gw\n"
        "gw.clip.attach(opt, gw.clip.clip_by_global_norm(1.0), model)  # runs before every opt.step()\n"
        "# or in the loop, after backward(): torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)",
    ),
    "orthogonal_init": (
        "Initialise weights orthogonally (recurrent weights: spectral radius exactly 1)",
        "import gradwatch as gw\ngw.init.apply(model, 'orthogonal')",
    ),
    "fixup_init": (
        "Fixup init for the residual blocks (Zhang et al. 2019): each branch's last layer and the classifier "
        "at 0, the other branch layers scaled by L^(−1/(2m−2)), so the residual stream no longer grows with depth",
        "import gradwatch as gw\n"
        "print(gw.init.apply(model, 'fixup', branches={branches}))  # the f of each x + f(x)",
    ),
    "irnn_init": (
        "Start the ReLU recurrence at the identity with zero biases (IRNN, Le et al. 2015): the state carries "
        "itself forward and the gradient through time neither grows nor fades",
        "import gradwatch as gw\nprint(gw.init.irnn(model))  # ReLU recurrences: weight_hh = I, biases 0",
    ),
    "use_lstm": (
        "Replace the plain RNN by an LSTM of the same size (gated, additive memory path)",
        "import gradwatch as gw\nmodel = gw.architecture.rnn_to_lstm(model, cell='lstm')\n" + _RECREATE,
    ),
    "reduce_lr": (
        "Lower the learning rate 10×{lr_was} (or take the range test's suggestion)",
        "for g in opt.param_groups:\n    g['lr'] *= 0.1{lr_comment}",
    ),
    "increase_lr": (
        "Raise the learning rate until updates are ~1e-3 of the weights (the range test suggests one)",
        "import gradwatch as gw\n"
        "# batches: a few (input, target) pairs of your data; loss_fn(output, target) -> loss\n"
        "res = gw.schedules.lr_range_test(model, lambda p: {opt_class}(p, lr=1e-7), batches, loss_fn)\n"
        "for g in opt.param_groups:\n    g['lr'] = res.suggestion",
    ),
    "add_warmup": (
        "Warm the learning rate up linearly over the first steps",
        "import gradwatch as gw\nsched = gw.schedules.to_lambda_lr(opt, gw.schedules.linear_warmup({warmup}))\n"
        "# call sched.step() after every opt.step()",
    ),
    "use_pre_ln": (
        "Move LayerNorm before attention/FFN (pre-LN): gradients stay well-scaled without warmup",
        "import gradwatch as gw\nmodel = gw.architecture.use_pre_ln(model)\n" + _RECREATE,
    ),
    "use_cross_entropy": (
        "Use cross-entropy on logits instead of MSE behind a sigmoid (the gradient becomes a − y)",
        "loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)  # drop the final sigmoid\n"
        "# or, for classes: torch.nn.functional.cross_entropy(logits, labels)",
    ),
    "use_leaky_relu": (
        "Use LeakyReLU so that units below zero still get a gradient",
        "import gradwatch as gw\nfrom torch import nn\n"
        "model = gw.architecture.swap_activation(model, nn.ReLU, nn.LeakyReLU(0.01))",
    ),
    "zero_bias_init": (
        "Start biases at zero (or slightly positive before ReLU) so units begin active",
        "for m in model.modules():\n    if isinstance(getattr(m, 'bias', None), torch.Tensor):\n"
        "        torch.nn.init.zeros_(m.bias)",
    ),
    "break_symmetry": (
        "Initialise with random weights: identical units get identical gradients and stay identical",
        "import gradwatch as gw\ngw.init.apply(model, 'auto')",
    ),
    "guard": (
        "Run under the guard: non-finite or exploding steps are skipped and rolled back",
        "import gradwatch as gw\nwith gw.watch(model, opt, guard=True):\n    ...  # your loop; or: gradwatch run --guard train.py",
    ),
    "check_loss_inputs": (
        "Keep the loss's inputs in range: log/div of zero gives Inf/NaN (add an epsilon, use the *_with_logits losses)",
        "loss = torch.nn.functional.cross_entropy(logits, y)  # not torch.log(softmax(...))",
    ),
    "use_adam": (
        "Use Adam, which scales each parameter's step by its own gradient history",
        "import gradwatch as gw\nopt = gw.remedies.swap_optimizer(opt, model, 'adam')  # lr 1e-3",
    ),
    "use_gru": (
        "Replace the plain RNN by a GRU of the same size",
        "import gradwatch as gw\nmodel = gw.architecture.rnn_to_lstm(model, cell='gru')\n" + _RECREATE,
    ),
    "weight_decay": (
        "Add L2 weight decay to keep weights from growing",
        "import gradwatch as gw\nopt = gw.remedies.with_weight_decay(opt, 1e-4)",
    ),
}

#: activation name -> its nn class name (``"tanh"`` -> ``"Tanh"``)
_CLASS_OF = {name: cls.__name__ for cls, name in MODULE_ACTIVATIONS.items()}


def _names_expr(names: list[str]) -> str:
    """Python for a list of module names: ``[f"blocks.{i}" for i in range(30)]`` when they are
    one ModuleList's items in order, the plain list otherwise.

    Example:
        >>> _names_expr(["b.0", "b.1", "b.2"]), _names_expr(["x", "y"])
        ('[f"b.{i}" for i in range(3)]', "['x', 'y']")
    """
    prefixes = {n.rpartition(".")[0] for n in names}
    tails = [n.rpartition(".")[2] for n in names]
    if len(names) > 2 and len(prefixes) == 1 and tails == [str(i) for i in range(len(names))]:
        return f'[f"{prefixes.pop()}.{{i}}" for i in range({len(names)})]'
    return repr(names)


def facts(ctx: Any = None) -> dict[str, str]:
    """The model facts the code templates need, read off a rule context (defaults without one).

    Example:
        >>> facts()["saturating"]
        '(nn.Sigmoid, nn.Tanh)'
    """
    out = {"saturating": "(nn.Sigmoid, nn.Tanh)", "functional_note": "", "norm": "batch",
           "norm_title": "BatchNorm", "opt_class": "type(opt)", "lr_was": "", "lr_comment": "", "warmup": "500",
           "branches": "None"}
    if ctx is None:
        return out
    blocks = ctx.model.get("residual_blocks")
    if blocks:
        out["branches"] = _names_expr(list(blocks))
    mods = ctx.run.modules
    acts = mods[mods["kind"] == "activation"] if len(mods) else mods
    module_classes, functional = set(), set()
    for _, row in acts.iterrows():
        act = str(row["activation"])
        if family(act) not in ("sigmoid", "tanh"):  # the saturating families
            continue
        name = _CLASS_OF[act]
        if row["type"] == name:
            module_classes.add(f"nn.{name}")
        else:  # a functional call seen by the probe ("fc1:sigmoid")
            functional.add(act)
    if module_classes:
        classes = sorted(module_classes)
        out["saturating"] = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
    if functional:
        calls = ", ".join(f"torch.{f}" for f in sorted(functional))
        out["functional_note"] = f"\n# {calls} called inside forward(): replace by torch.relu there by hand"
    if ctx.model.get("recurrent") or ctx.model.get("transformer_layers"):
        out["norm"], out["norm_title"] = "layer", "LayerNorm"
    opt = ctx.model.get("optimizer") or {}
    if opt.get("class") and hasattr(torch.optim, opt["class"]):
        out["opt_class"] = f"torch.optim.{opt['class']}"
    lrs = [g.get("lr") for g in opt.get("param_groups", []) if isinstance(g.get("lr"), (int, float))]
    if lrs:
        lr = float(lrs[0])
        out["lr_was"] = f" (it is {lr:g})"
        out["lr_comment"] = f"  # {lr:g} → {lr * 0.1:g}"
    if ctx.n_steps:
        out["warmup"] = str(max(10, min(2000, ctx.n_steps // 10)))
    return out


def prescribe(remedy_id: str, ctx: Any = None) -> Remedy:
    """The :class:`Remedy` for an id in the catalog, its code written for the model of ``ctx``.

    Raises:
        KeyError: unknown id (the message lists the known ones).
    """
    try:
        description, code = _CATALOG[remedy_id]
    except KeyError:
        raise KeyError(f"unknown remedy {remedy_id!r}; known: {sorted(_CATALOG)}") from None
    f = facts(ctx)
    return Remedy(remedy_id, description.format(**f), code.format(**f))


def prescribe_all(ids: list[str], ctx: Any = None) -> list[Remedy]:
    """Remedies for the ids, in order, without repeats, written for the model of ``ctx``.

    Example:
        >>> [r.id for r in prescribe_all(["reduce_lr", "guard", "reduce_lr"])]
        ['reduce_lr', 'guard']
    """
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(prescribe(i, ctx))
    return out


KNOWN = tuple(_CATALOG)
