"""Architecture rewrites that keep the weights where they can.

Each rewrite changes the model in place and returns it — or, with ``inplace=False``, changes
and returns a deep copy. When the root itself is replaced (a bare ``nn.Sigmoid`` or
``nn.RNN``) only the returned module is the new model, so write ``model = rewrite(model)``.
What each call did is kept beside the model: ``rewrites(model)`` lists the reports.

    swap_activation(model, nn.Sigmoid, nn.ReLU)   every Sigmoid becomes a ReLU; the layers before
                                                  get the matching init (Glorot & Bengio 2010; He et al. 2015)
    insert_norm(model, norm="batch")              BatchNorm/LayerNorm after Linear/Conv layers (Ioffe & Szegedy 2015; Ba et al. 2016)
    add_residual(model)                           same-shape blocks become x + f(x) (He et al. 2016)
    use_pre_ln(model)                             Transformer layers normalise first (Xiong et al. 2020)
    rnn_to_lstm(model, cell="lstm"|"gru")         nn.RNN → nn.LSTM / nn.GRU of the same size (Hochreiter & Schmidhuber 1997; Cho et al. 2014)

New modules bring new parameters: build the optimizer after the rewrite (or use
``gw.remedies.swap_optimizer(opt, model, ...)``, which adds parameters it does not hold yet).

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))
    >>> model = swap_activation(model, nn.Sigmoid, nn.ReLU)
    >>> model[1], rewrites(model)[-1].changed
    (ReLU(), ['1'])
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

from torch import nn

from .layers import final_layer, following_modules, get_module, is_leaf, set_module
from .residual import Residual, residual_sequentials, wrap_blocks

ModuleSpec = Union[type, nn.Module, Callable[[], nn.Module]]
_HISTORY: "weakref.WeakKeyDictionary[nn.Module, list[RewriteReport]]" = weakref.WeakKeyDictionary()


@dataclass
class RewriteReport:
    """What one rewrite did: the modules it changed, whether weights were kept, and notes.

    Example:
        >>> print(RewriteReport("insert_norm(batch)", ["0"], new_params=True))
        insert_norm(batch): 1 changed (0); weights kept; new parameters — rebuild the optimizer
    """

    action: str
    changed: list[str] = field(default_factory=list)
    kept_weights: bool = True
    new_params: bool = False
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.action}: {len(self.changed)} changed ({', '.join(self.changed) or 'none'})"
        head += "; weights kept" if self.kept_weights else "; new weights"
        if self.new_params:
            head += "; new parameters — rebuild the optimizer"
        return "\n".join([head] + [f"  note: {n}" for n in self.notes])


def rewrites(model: nn.Module) -> list[RewriteReport]:
    """The reports of the rewrites applied to this model object, oldest first.

    Example:
        >>> from torch import nn
        >>> m = swap_activation(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), nn.Tanh, nn.ReLU)
        >>> [r.action for r in rewrites(m)], rewrites(nn.Linear(2, 2))
        (['swap_activation(Tanh → ReLU)'], [])
    """
    return list(_HISTORY.get(model, []))


def _done(model: nn.Module, report: RewriteReport) -> nn.Module:
    _HISTORY.setdefault(model, []).append(report)
    return model


def _make(spec: ModuleSpec) -> nn.Module:
    if isinstance(spec, nn.Module):
        return copy.deepcopy(spec)
    return spec()


def swap_activation(model: nn.Module, old: type | tuple = nn.Sigmoid, new: ModuleSpec = nn.ReLU,
                    reinit: bool = True, inplace: bool = True) -> nn.Module:
    """Replace every activation module of class ``old`` by ``new``.

    Args:
        model: the model.
        old: the class (or tuple of classes) to replace; subclasses count.
        new: a module class, an instance to copy (``nn.LeakyReLU(0.1)``) or a factory.
        reinit: re-initialise the layers just before each swapped activation with the init that
            matches the new activation (He for ReLU-like, Xavier for tanh/sigmoid); False keeps
            their weights.
        inplace: False works on a deep copy.

    Returns:
        The model (the new module when the root itself was an ``old`` activation). Functional
        calls (``torch.sigmoid`` inside ``forward``) are not visible and stay.

    Example:
        >>> from torch import nn
        >>> m = swap_activation(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), nn.Tanh, nn.LeakyReLU(0.1))
        >>> m[1]
        LeakyReLU(negative_slope=0.1)
    """
    model = model if inplace else copy.deepcopy(model)
    report = RewriteReport(f"swap_activation({_name(old)} → {_name(new)})")
    fresh: list[nn.Module] = []
    for name, m in list(model.named_modules()):
        if isinstance(m, old) and is_leaf(m):
            repl = _make(new)
            fresh.append(repl)
            model = set_module(model, name, repl)
            report.changed.append(name)
    if reinit and fresh:
        from .init import apply

        ids = {id(m) for m in fresh}
        before = [n for n, act in following_modules(model).items() if act is not None and id(act) in ids]
        if before:
            init_report = apply(model, "auto", layers=before)
            report.kept_weights = False
            report.notes += [f"{e.param}: {e.rule}" for e in init_report.entries if e.param.endswith("weight")]
    if not report.changed:
        report.notes.append(f"no {_name(old)} module found (functional calls in forward are not visible)")
    return _done(model, report)


def _name(spec) -> str:
    if isinstance(spec, tuple):
        return "/".join(_name(s) for s in spec)
    if isinstance(spec, type):
        return spec.__name__
    return repr(spec) if isinstance(spec, nn.Module) else getattr(spec, "__name__", str(spec))


def _norm_for(layer: nn.Module, norm: str) -> nn.Module:
    w = layer.weight
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        n = layer.out_features
        return nn.BatchNorm1d(n, **kw) if norm == "batch" else nn.LayerNorm(n, **kw)
    dims = len(layer.kernel_size)
    c = layer.out_channels
    if norm == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](c, **kw)
    return nn.GroupNorm(1, c, **kw)  # layer norm over (C, *spatial) of each sample


def insert_norm(model: nn.Module, after: Sequence[str] | None = None,
                kind: type | tuple = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d), norm: str = "batch",
                skip_last: bool = True, inplace: bool = True) -> nn.Module:
    """Put a normalisation layer right after chosen layers: each becomes ``Sequential(layer, norm)``.

    Args:
        model: the model.
        after: names of the layers to normalise; by default every ``kind`` layer.
        kind: the layer classes picked when ``after`` is None.
        norm: ``"batch"`` (BatchNorm; Ioffe & Szegedy 2015) or ``"layer"`` (LayerNorm for
            Linear, GroupNorm(1, C) for convolutions; Ba et al. 2016). BatchNorm1d after a
            Linear expects (N, C) inputs: use "layer" for sequences.
        skip_last: leave the final layer (the output) unnormalised when ``after`` is None.
        inplace: False works on a deep copy.

    Returns:
        The model. Layers already followed by a norm are skipped.

    Raises:
        ValueError: an unknown ``norm``, a name that is not a Linear/Conv layer, or nothing to do.

    Example:
        >>> from torch import nn
        >>> m = insert_norm(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> [type(x).__name__ for x in m[0]]
        ['Linear', 'BatchNorm1d']
    """
    if norm not in ("batch", "layer"):
        raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}")
    model = model if inplace else copy.deepcopy(model)
    modules = dict(model.named_modules())
    if after is not None:
        bad = [n for n in after if not isinstance(modules.get(n), (nn.Linear, nn.modules.conv._ConvNd))]
        if bad:
            raise ValueError(f"insert_norm: {bad} are not Linear/Conv layers of the model")
        targets = list(after)
    else:
        last = final_layer(model) if skip_last else None
        targets = [n for n, m in modules.items() if isinstance(m, kind) and n != last]
    report = RewriteReport(f"insert_norm({norm})", new_params=True)
    leaves = [n for n, m in modules.items() if is_leaf(m)]
    for name in targets:
        i = leaves.index(name) if name in leaves else -1
        nxt = modules[leaves[i + 1]] if 0 <= i < len(leaves) - 1 else None
        if nxt is not None and _is_norm(nxt):
            report.notes.append(f"{name!r} is already followed by {type(nxt).__name__}: skipped")
            continue
        layer = get_module(model, name)
        model = set_module(model, name, nn.Sequential(layer, _norm_for(layer, norm)))
        report.changed.append(name)
    if not report.changed and not report.notes:
        raise ValueError("insert_norm found no Linear/Conv layer to normalise (the final layer is skipped); "
                         "pass after=[names]")
    if report.changed:
        report.notes.append("each layer X became Sequential(X, norm): its parameters are now under X.0")
    return _done(model, report)


def _is_norm(m: nn.Module) -> bool:
    from ..probes.model_info import is_norm

    return is_norm(m)


def add_residual(model: nn.Module, inplace: bool = True, wrapper: Callable[[nn.Module], nn.Module] = Residual) -> nn.Module:
    """Wrap the same-shape blocks of every ``nn.Sequential`` (``Linear(n, n)`` or a
    shape-keeping conv, optional norm/dropout, then an activation) as ``x + f(x)``.

    Args:
        model: the model (any module containing ``nn.Sequential`` stacks, or one itself).
        inplace: False works on a deep copy.
        wrapper: the residual wrapper: :class:`Residual` (default) or ``ReZero`` (x + α·f(x)).

    Returns:
        The model, weights kept (the same parameter objects, under new names).

    Raises:
        ValueError: no same-shape block anywhere.

    Example:
        >>> from torch import nn
        >>> m = add_residual(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)))
        >>> type(m[2]).__name__, len(m)
        ('Residual', 4)
    """
    model = model if inplace else copy.deepcopy(model)
    report = RewriteReport(f"add_residual({getattr(wrapper, '__name__', 'wrapper')})")
    for name, seq in residual_sequentials(model):
        report.changed += [f"{name}.{w}" if name else w for w in wrap_blocks(seq, wrapper)]
    if not report.changed:
        raise ValueError("add_residual found no same-shape block (Linear(n, n) or a shape-keeping conv, then an "
                         "activation) in any nn.Sequential; wrap blocks yourself with gw.init.Residual(block)")
    report.new_params = wrapper is not Residual
    return _done(model, report)


def use_pre_ln(model: nn.Module, final_norm: bool = True, inplace: bool = True) -> nn.Module:
    """Switch every ``nn.TransformerEncoderLayer`` / ``DecoderLayer`` to ``norm_first=True``.

    Post-LN's gradient at the last layers does not shrink with depth and needs warmup; pre-LN
    trains without it (Xiong et al. 2020). Weights are kept; with ``final_norm``, a stack
    (``nn.TransformerEncoder`` / ``Decoder``) without a final LayerNorm gets one, as pre-LN
    models have.

    Raises:
        ValueError: no Transformer layer in the model.

    Example:
        >>> from torch import nn
        >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 2, enable_nested_tensor=False)
        >>> bool(use_pre_ln(enc).layers[0].norm_first), type(enc.norm).__name__
        (True, 'LayerNorm')
    """
    model = model if inplace else copy.deepcopy(model)
    report = RewriteReport("use_pre_ln")
    layers = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    if not any(isinstance(m, layers) for m in model.modules()):
        raise ValueError("use_pre_ln found no nn.TransformerEncoderLayer/DecoderLayer; for a custom block move "
                         "each LayerNorm before its sublayer: x = x + f(norm(x))")
    switched = set()
    for name, m in model.named_modules():
        if isinstance(m, layers) and not m.norm_first:
            m.norm_first = True
            switched.add(id(m))
            report.changed.append(name)
    for name, m in model.named_modules():
        if not isinstance(m, (nn.TransformerEncoder, nn.TransformerDecoder)) or not len(m.layers):
            continue
        if isinstance(m, nn.TransformerEncoder) and m.layers[0].norm_first:
            m.use_nested_tensor = False  # as a norm_first stack is built: the nested fast path does not apply
        if final_norm and m.norm is None and id(m.layers[0]) in switched:
            ref = m.layers[0].norm1
            p = next(ref.parameters(), None)
            m.norm = nn.LayerNorm(ref.normalized_shape, eps=ref.eps, elementwise_affine=ref.elementwise_affine,
                                  device=p.device if p is not None else None, dtype=p.dtype if p is not None else None)
            report.new_params = True
            report.notes.append(f"final LayerNorm added as {name + '.norm' if name else 'norm'}")
    return _done(model, report)


from .recurrent import LSTMAsRNN, rnn_to_lstm  # noqa: E402,F401
