"""Remedies for unstable gradients, each usable on its own and each citing its source.

    init           initialisation policies for a whole model: ``init.apply(model, policy)``
    clip           gradient transforms in the optax style: clipping, AutoClip, AGC, skip non-finite
    schedules      ``step -> factor`` learning-rate schedules, ``LambdaLR`` adapter, range test
    architecture   rewrites that keep weights: activations, norms, residuals, pre-LN, RNN → LSTM
    functional_swap  functional activations in ``forward`` (``torch.sigmoid(self.fc(x))``) swapped at run time
    optim          optimizer swaps and weight decay

Example:
    >>> import torch
    >>> from torch import nn
    >>> import gradwatch as gw
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))
    >>> model = gw.remedies.swap_activation(model, nn.Sigmoid, nn.ReLU)
    >>> gw.remedies.following_activation(model)
    {'0': 'relu', '2': None}
"""

from __future__ import annotations

from . import architecture, clip, init, optim, schedules
from .architecture import (LSTMAsRNN, RewriteReport, add_residual, insert_norm, rewrites, rnn_to_lstm,
                           swap_activation, use_pre_ln)
from .clip import (adaptive_grad_clip, attach, autoclip, chain, clip_by_global_norm, clip_by_value,
                   final_layer_params, skip_nonfinite, unitwise_norm, zscore_clip)
from .functional_swap import FunctionalSwap, leaky_relu, swap_functional_activation
from .critical import chi1, critical_for_q, critical_point, critical_sigma_w2, fixed_point_q, gaussian_moments
from .init import POLICIES, InitEntry, InitReport, LoadReport, load_pretrained
from .layers import final_layer, following_activation, following_modules
from .optim import swap_optimizer, with_weight_decay
from .residual import Residual, ReZero
from .rules import delta_orthogonal_
from .schedules import (RangeTestResult, linear_warmup, lr_range_test, to_lambda_lr, warmup_cosine,
                        warmup_inverse_sqrt, warmup_linear_decay)
from .transform import GradientTransform, flatten_info, log_sink

init_model = init.apply  # ``gw.remedies.init_model(model, "auto")`` is ``gw.init.apply(model, "auto")``

__all__ = [
    "architecture", "clip", "init", "optim", "schedules",
    # init
    "init_model", "POLICIES", "InitEntry", "InitReport", "LoadReport", "load_pretrained", "following_activation",
    "following_modules", "final_layer", "critical_sigma_w2", "critical_point", "critical_for_q", "chi1",
    "fixed_point_q", "gaussian_moments", "delta_orthogonal_", "Residual", "ReZero",
    # clip
    "GradientTransform", "chain", "attach", "log_sink", "flatten_info", "clip_by_value", "clip_by_global_norm", "autoclip", "zscore_clip",
    "adaptive_grad_clip", "skip_nonfinite", "final_layer_params", "unitwise_norm",
    # schedules
    "linear_warmup", "warmup_cosine", "warmup_linear_decay", "warmup_inverse_sqrt", "to_lambda_lr",
    "lr_range_test", "RangeTestResult",
    # architecture and optimizers
    "swap_activation", "insert_norm", "add_residual", "use_pre_ln", "rnn_to_lstm", "LSTMAsRNN", "rewrites",
    "RewriteReport", "swap_optimizer", "with_weight_decay",
    "swap_functional_activation", "FunctionalSwap",
]
