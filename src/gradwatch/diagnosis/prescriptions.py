"""The remedies a finding can prescribe: an id, what it does, and code that applies it.

Code snippets assume the user's names ``model`` and ``opt`` and use gradwatch's remedies
library (``gradwatch.remedies``) or plain PyTorch.

Example:
    >>> prescribe("clip_grad_norm").code.startswith("torch.nn.utils.clip_grad_norm_")
    True
"""

from __future__ import annotations

from ..findings import Remedy

_CATALOG: dict[str, tuple[str, str]] = {
    "use_relu_with_he_init": (
        "Replace the saturating activations by ReLU and re-initialise with He (Kaiming) init",
        "import gradwatch as gw\nfrom torch import nn\n"
        "gw.architecture.swap_activation(model, nn.Sigmoid, nn.ReLU)  # also nn.Tanh\n"
        "gw.init.apply(model, 'auto')  # He for layers followed by ReLU",
    ),
    "use_he_init": (
        "Re-initialise each layer for the activation that follows it (He for ReLU, Xavier for tanh)",
        "import gradwatch as gw\ngw.init.apply(model, 'auto')",
    ),
    "critical_init": (
        "Initialise at the edge of chaos: orthogonal weights scaled so χ₁ = 1 for the activation in use",
        "import gradwatch as gw\ngw.init.apply(model, 'critical')",
    ),
    "add_batchnorm": (
        "Insert BatchNorm after the linear/conv layers to re-scale the signal at every layer",
        "import gradwatch as gw\ngw.architecture.insert_norm(model, norm='batch')",
    ),
    "add_residual": (
        "Wrap same-shape blocks in residual connections so the gradient has a short path",
        "import gradwatch as gw\nmodel = gw.architecture.add_residual(model)",
    ),
    "clip_grad_norm": (
        "Clip the global gradient norm before each optimizer step",
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # after backward(), before opt.step()",
    ),
    "orthogonal_init": (
        "Initialise weights orthogonally (recurrent weights: spectral radius exactly 1)",
        "import gradwatch as gw\ngw.init.apply(model, 'orthogonal')",
    ),
    "use_lstm": (
        "Replace the plain RNN by an LSTM of the same size (gated, additive memory path)",
        "import gradwatch as gw\nmodel = gw.architecture.rnn_to_lstm(model, cell='lstm')",
    ),
    "reduce_lr": (
        "Lower the learning rate (10× to start; or take the range test's suggestion)",
        "for g in opt.param_groups:\n    g['lr'] *= 0.1",
    ),
    "increase_lr": (
        "Raise the learning rate until updates are ~1e-3 of the weights (the range test suggests one)",
        "import gradwatch as gw\nres = gw.schedules.lr_range_test(model, lambda p: type(opt)(p, lr=1e-7), batches, loss_fn)\n"
        "for g in opt.param_groups:\n    g['lr'] = res.suggestion",
    ),
    "add_warmup": (
        "Warm the learning rate up linearly over the first steps",
        "import gradwatch as gw\nsched = gw.schedules.to_lambda_lr(opt, gw.schedules.linear_warmup(500))\n"
        "# call sched.step() after every opt.step()",
    ),
    "use_pre_ln": (
        "Move LayerNorm before attention/FFN (pre-LN): gradients stay well-scaled without warmup",
        "import gradwatch as gw\ngw.architecture.use_pre_ln(model)",
    ),
    "use_cross_entropy": (
        "Use cross-entropy on logits instead of MSE behind a sigmoid (the gradient becomes a − y)",
        "loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)  # drop the final sigmoid\n"
        "# or, for classes: torch.nn.functional.cross_entropy(logits, labels)",
    ),
    "use_leaky_relu": (
        "Use LeakyReLU so that units below zero still get a gradient",
        "import gradwatch as gw\nfrom torch import nn\ngw.architecture.swap_activation(model, nn.ReLU, nn.LeakyReLU)",
    ),
    "zero_bias_init": (
        "Start biases at zero (or slightly positive before ReLU) so units begin active",
        "for m in model.modules():\n    if getattr(m, 'bias', None) is not None:\n        torch.nn.init.zeros_(m.bias)",
    ),
    "break_symmetry": (
        "Initialise with random weights: identical units get identical gradients and stay identical",
        "import gradwatch as gw\ngw.init.apply(model, 'auto')",
    ),
    "guard": (
        "Run under the guard: non-finite or exploding steps are skipped and rolled back",
        "with gw.watch(model, opt, guard=True):\n    ...  # or: gradwatch run --guard train.py",
    ),
    "check_loss_inputs": (
        "Keep the loss's inputs in range: log/div of zero gives Inf/NaN (add an epsilon, use the *_with_logits losses)",
        "loss = torch.nn.functional.cross_entropy(logits, y)  # not torch.log(softmax(...))",
    ),
    "use_adam": (
        "Use Adam, which scales each parameter's step by its own gradient history",
        "import gradwatch as gw\nopt = gw.remedies.swap_optimizer(opt, model, 'adam')",
    ),
    "use_gru": (
        "Replace the plain RNN by a GRU of the same size",
        "import gradwatch as gw\nmodel = gw.architecture.rnn_to_lstm(model, cell='gru')",
    ),
    "weight_decay": (
        "Add L2 weight decay to keep weights from growing",
        "for g in opt.param_groups:\n    g['weight_decay'] = 1e-4",
    ),
}


def prescribe(remedy_id: str) -> Remedy:
    """The :class:`Remedy` for an id in the catalog.

    Raises:
        KeyError: unknown id (the message lists the known ones).
    """
    try:
        description, code = _CATALOG[remedy_id]
    except KeyError:
        raise KeyError(f"unknown remedy {remedy_id!r}; known: {sorted(_CATALOG)}") from None
    return Remedy(remedy_id, description, code)


def prescribe_all(ids: list[str]) -> list[Remedy]:
    """Remedies for the ids, in order, without repeats."""
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(prescribe(i))
    return out


KNOWN = tuple(_CATALOG)
