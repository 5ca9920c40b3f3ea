"""The gain of one step of a recurrence, measured so that where the loss enters plays no part.

How the gradient propagates back through time is a property of the recurrence's Jacobians
J_t = ∂s_t/∂s_{t−1} (Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013): with a gain
above 1 the gradient explodes geometrically with the distance, below 1 it vanishes. The total
gradient at a state, ‖∂L/∂s_t‖, mixes that with where the loss enters — in a language model whose
last positions are padding (``ignore_index=-1``) the last states get no loss at all — so the
ratio of two of them is not measured here. Two measurements are, on statistics steps only:

* **A cell called once per time step** (``nn.RNNCell``/``GRUCell``/``LSTMCell``, whose state is
  the ``hx`` argument, ``(h, c)`` for the LSTM cell; or any module one of whose positional
  arguments, or a tensor in a tuple argument, is a tensor its own previous call returned — a
  hand-written cell ``h = cell(x_t, h)``). Its state input passes through a tap (an alias with a
  gradient hook) and its output state gets a hook: in the backward pass they give
  ‖∂L/∂s_{t−1} through this call‖ = ‖J_tᵀ g_t‖ and ‖g_t‖ = ‖∂L/∂s_t‖ of the *same* call, whose
  ratio is the gain of that step along the gradient that actually flows. The loss entering at
  s_{t−1} is not in it (it joins after the tap), a step whose output got no gradient (the padded
  tail) is skipped, and for ``J = a·I`` the ratio is exactly ``a``. When no loss enters between
  the ends the product of the ratios telescopes to ‖∂L/∂s_0‖ / ‖∂L/∂s_T‖.
* **A fused** ``nn.RNN``/``LSTM``/``GRU``, whose internals are invisible. It is handed an initial
  state that records gradients (zeros, what PyTorch would use, when none is given); right after
  it returns, a random unit vector v per sequence is laid on the final state ``h_n`` (and
  ``c_n``), and ``torch.autograd.grad(v·h_n, h_0, retain_graph=True)``
  gives ‖∂(v·h_T)/∂h_0‖: the gain of all T steps of that layer, no loss involved, per sequence
  (each of a packed batch over its own length). One backward pass serves both directions of the
  last layer, which is the one measured (a lower layer's final state depends on its initial state
  through the layers above too). When that product leaves float32's range the decay of
  ‖∂(v·h_T)/∂x_t‖ along the input gives the rate instead (for packed input the gain is then a
  bound). The direction with the larger |log gain| speaks for the module, and the sequences'
  per-step gains are combined by their root mean square. These gradients are the
  probe's own: not accumulated into ``.grad``, and hidden from the δ hooks (:func:`injecting`).

A module's per-step gain is the geometric mean over its measured time steps. Nothing here runs
outside statistics steps: the hooks that call it exist only while the module probe is armed.

What is not seen: a state passed by keyword to a cell (``cell(x, hx=h)``), a hand-written
cell's state changed between calls by code outside it (``h = cell(x, dropout(h))``; the ``hx``
of the standard cells is seen whatever made it), a recurrence written with raw tensor
operations inside one module's ``forward``, a cell that changes its state input in place, and
anything under ``torch.compile`` or a ``torch.func`` transform, under saved-tensor hooks (``torch.utils.checkpoint``,
``save_on_cpu``) or inside a backward pass. None of these changes what the model computes. A hand-written cell that also
returns a non-state output computed from its state input (``return self.out(h), h``) lets the
loss entering there into its tap: its gain then reads closer to 1 in a language model.

Example:
    >>> import torch
    >>> from torch import nn
    >>> cell = nn.RNNCell(3, 4, nonlinearity="relu", bias=False)
    >>> with torch.no_grad():
    ...     _ = cell.weight_hh.copy_(0.5 * torch.eye(4)), cell.weight_ih.fill_(1.0)
    >>> rec, h, x = RecurrenceProbe(), torch.zeros(2, 4), torch.ones(2, 3)
    >>> for t in range(5):
    ...     args = rec.before(0, cell, (x, h)) or (x, h)
    ...     h = cell(*args)
    ...     rec.after(0, cell, h)
    >>> h.sum().backward()
    >>> gains, profiles = rec.collect()
    >>> round(float(gains[0]), 4), profiles[0].shape   # ReLU active everywhere: J = 0.5·I
    (0.5, torch.Size([5]))
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

#: gradients beyond these bounds are taken as having left float32's range (under- or overflow)
_TINY, _HUGE = 1e-30, 1e30
#: set while a probe's own vector-Jacobian product runs: gradient hooks that record the user's
#: backward pass (δ at module outputs) skip what fires then. A list, not a thread-local: on a GPU
#: autograd runs the hooks on its device threads while the caller waits.
_BUSY = [False]


def injecting() -> bool:
    """Whether the gradients flowing now are a recurrence probe's own, not the user's backward.

    Example:
        >>> injecting()
        False
    """
    return _BUSY[0]


def _vjp(total: torch.Tensor, inputs: list[torch.Tensor]) -> tuple:
    _BUSY[0] = True
    try:
        return torch.autograd.grad(total, inputs, retain_graph=True, allow_unused=True)
    finally:
        _BUSY[0] = False


def _hooked(ts: list[torch.Tensor]) -> bool:
    """Whether someone has a gradient hook on one of these tensors (differentiating through them
    would make it fire outside the user's backward)."""
    return any(getattr(t, "_backward_hooks", None) for t in ts)


def _tensors(x: Any) -> list[torch.Tensor]:
    """The tensors of an output or argument, one level deep (a tensor, or a tuple/list of them)."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for t in x if isinstance(t, torch.Tensor)]
    return []


def _differentiable(ts: list[torch.Tensor]) -> bool:
    return bool(ts) and all(t.requires_grad and t.is_floating_point() for t in ts)


def _inside_backward() -> bool:
    task = getattr(torch._C, "_current_graph_task_id", None)
    return task is not None and task() >= 0


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling()


def _saving_hooks() -> bool:
    """Whether saved-tensor hooks are active (``torch.utils.checkpoint`` without reentry,
    ``save_on_cpu``): checkpointing re-runs the forward in the backward pass and insists that it
    saves the same tensors, so a measurement there would break the user's backward."""
    top = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)
    try:
        return top is not None and top(False) is not None
    except Exception:  # noqa: BLE001 - an older torch: assume none
        return False


def _transformed() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vmap``) is running: autograd's own API may
    not be used inside one."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return active is not None and active()


def _blind() -> bool:
    """Where nothing may be measured: inside a backward pass, under ``torch.compile`` or a
    ``torch.func`` transform, or under saved-tensor hooks."""
    return _inside_backward() or _compiling() or _transformed() or _saving_hooks()


class _Call:
    """One call of a cell: the squared norms of the gradient leaving it through its state input
    (``tap``: ‖∂L/∂s_{t−1} through this call‖² = ‖J_tᵀ g_t‖²) and arriving at its output state
    (``out``: ‖g_t‖² = ‖∂L/∂s_t‖²), recorded in the backward pass; their ratio is this step's gain
    along the gradient that actually flows, whatever mix of losses made it. ``link`` is False for
    the call that starts a sequence (its state came from outside the recurrence)."""

    __slots__ = ("link", "index", "tap", "out")

    def __init__(self, link: bool, index: list[int] | None = None) -> None:
        self.link, self.index = link, index
        self.tap: list[torch.Tensor] = []
        self.out: list[torch.Tensor] = []

    def record_tap(self, g: torch.Tensor) -> None:
        if not injecting():
            self.tap.append(_square_sum(g))

    def record_out(self, g: torch.Tensor) -> None:
        if not injecting():
            self.out.append(_square_sum(g))


def _square_sum(g: torch.Tensor) -> torch.Tensor:
    """‖g‖², in float64 where the device has it: a gradient of 1e-20 per entry is still measured
    (its float32 square would be 0)."""
    g = g.detach()
    return g.to(torch.float32 if g.device.type == "mps" else torch.float64).square().sum()


def leaf_input(x: Any) -> Any:
    """A fused RNN's data input made a leaf that records its gradient (a tensor, or the data of a
    ``PackedSequence``), or None when it already records one or is not floating point.

    Example:
        >>> leaf_input(torch.zeros(2, 3, 4)).requires_grad, leaf_input(torch.zeros(2, 3, requires_grad=True))
        (True, None)
    """
    data = x.data if isinstance(x, PackedSequence) else x
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.requires_grad or _blind():
        return None
    leaf = data.detach().requires_grad_(True)
    return x._replace(data=leaf) if isinstance(x, PackedSequence) else leaf


def input_profile(x: Any, batch_first: bool):
    """For a fused RNN's input ``x`` that records its gradient: a function that registers
    ``callback(norms)``, called in the backward pass with ‖∂L/∂x_t‖ for every time step t
    (over the batch and the features; a ``PackedSequence`` too). None when ``x`` records no
    gradient. This is where the loss reaches the inputs, not how the gradient propagates.

    Example:
        >>> x = torch.randn(2, 5, 3, requires_grad=True)
        >>> seen = []; input_profile(x, batch_first=True)(seen.append)
        >>> (x * 2).sum().backward(); seen[0].shape
        torch.Size([5])
    """
    packed = isinstance(x, PackedSequence)
    data = x.data if packed else x
    if not isinstance(data, torch.Tensor) or not data.requires_grad or data.dim() not in (2, 3):
        return None
    if packed:
        sizes = x.batch_sizes

        def norms(g: torch.Tensor) -> torch.Tensor:
            t = torch.repeat_interleave(torch.arange(len(sizes), device=g.device), sizes.to(g.device))
            sq = torch.zeros(len(sizes), device=g.device).index_add_(0, t, g.detach().float().square().sum(1))
            return sq.sqrt()
    else:
        dims = ((0, 2) if batch_first else (1, 2)) if data.dim() == 3 else (1,)

        def norms(g: torch.Tensor) -> torch.Tensor:
            return torch.linalg.vector_norm(g.detach(), dim=dims).float()

    def register(callback) -> None:
        data.register_hook(lambda g: None if injecting() else callback(norms(g)))

    return register


class RecurrenceProbe:
    """Measures the per-step gain of every recurrence called while it is in use.

    :class:`~gradwatch.probes.modules.ModuleProbe` calls :meth:`before` from each module's
    forward pre-hook (:meth:`fused_state` for the fused RNNs, which may need their arguments
    replaced), :meth:`after` from its forward hook, and :meth:`collect` at the end of the step.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> rnn = nn.GRU(3, 5, num_layers=2, batch_first=True)
        >>> rec = RecurrenceProbe()
        >>> args, kwargs = rec.fused_state(0, rnn, (torch.randn(4, 7, 3),), {})
        >>> rec.after(0, rnn, rnn(*args, **kwargs))
        >>> 0 < float(rec.collect()[0][0]) < 1   # PyTorch's default GRU forgets: gain < 1 per step
        True
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self._reset()

    def _reset(self) -> None:
        # per fused module: (Σ log10 gain over the time steps, time steps) of each measured call
        self._logs: dict[int, list[tuple[torch.Tensor, float]]] = defaultdict(list)
        # per cell: its calls, in order
        self._calls: dict[int, list[_Call]] = defaultdict(list)
        # per hand-written cell: its previous call, when that one was measured
        self._last: dict[int, _Call | None] = {}
        # per module: what its last call returned, as (id, weak reference) of each output tensor
        self._outs: dict[int, list[tuple[int, Any]]] = {}
        # per module: state inputs of the calls under way (a stack: a module may call itself)
        self._pending: dict[int, list[Any]] = defaultdict(list)

    # ------------------------------------------------------------ hooks
    def before(self, mid: int, module: nn.Module, args: tuple) -> tuple | None:
        """A call is starting: its state input (if it has one) goes through taps that record the
        gradient flowing back out of this call. Returns the arguments with the taps in, or None."""
        if isinstance(module, nn.RNNBase) or not torch.is_grad_enabled():
            return None
        depth = len(self._pending[mid])
        try:
            return self._before(mid, module, args)
        except Exception:  # noqa: BLE001 - a measurement must never break the user's training
            del self._pending[mid][depth:]
            self._pending[mid].append(None)
            return None

    def _before(self, mid: int, module: nn.Module, args: tuple) -> tuple | None:
        where: list[tuple[int, int | None]] = []  # (argument, element of a tuple argument)
        index: list[int] | None = None  # which of the previous call's outputs each one was
        if isinstance(module, nn.RNNCellBase):
            if len(args) > 1:
                a = args[1]
                where = [(1, None)] if isinstance(a, torch.Tensor) else \
                    [(1, j) for j, t in enumerate(a) if isinstance(t, torch.Tensor)] if isinstance(a, (tuple, list)) else []
        elif mid in self._outs:
            prev = {i: k for k, (i, ref) in enumerate(self._outs[mid])}
            index = []
            for i, a in enumerate(args):
                elems = [(None, a)] if isinstance(a, torch.Tensor) else \
                    list(enumerate(a)) if isinstance(a, (tuple, list)) else []
                for j, t in elems:
                    k = prev.get(id(t)) if isinstance(t, torch.Tensor) else None
                    if k is not None and self._outs[mid][k][1]() is t:
                        where.append((i, j))
                        index.append(k)
        state = [args[i] if j is None else args[i][j] for i, j in where]
        linked = bool(state) and _differentiable(state) and not _blind()
        cell = isinstance(module, nn.RNNCellBase)
        if not linked:
            # a standard cell's sequence starts here (its output is still measured); a
            # hand-written one's is only known to have started once its next call is fed it
            call = _Call(link=False) if cell and not _blind() else None
            if call is not None:
                self._calls[mid].append(call)
            self._pending[mid].append(call)
            return None
        if not cell and self._last.get(mid) is None:  # the previous call started the sequence
            start = _Call(link=False)
            for t in state:
                t.register_hook(start.record_out)
            self._calls[mid].append(start)
        call = _Call(link=True, index=index)
        self._calls[mid].append(call)
        self._pending[mid].append(call)
        taps = [t.view_as(t) for t in state]
        for tap in taps:
            tap.register_hook(call.record_tap)
        new = list(args)
        for (i, j), tap in zip(where, taps):
            if j is None:
                new[i] = tap
            else:
                seq = list(new[i])
                seq[j] = tap
                new[i] = type(args[i])(seq) if isinstance(args[i], list) else tuple(seq)
        return tuple(new)

    def fused_state(self, mid: int, module: nn.RNNBase, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """The arguments of a fused ``nn.RNN``/``LSTM``/``GRU`` call with an initial state that
        records gradients: zeros (what PyTorch uses) when none is given, a leaf copy of a state
        that records none, the caller's own otherwise. Returns ``(args, kwargs)``."""
        depth = len(self._pending[mid])
        try:
            return self._fused_state(mid, module, args, kwargs)
        except Exception:  # noqa: BLE001 - a measurement must never break the user's training
            del self._pending[mid][depth:]
            self._pending[mid].append(None)
            return args, kwargs

    def _fused_state(self, mid: int, module: nn.RNNBase, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if not args or not torch.is_grad_enabled() or _blind():
            self._pending[mid].append(None)
            return args, kwargs
        x = args[0]
        packed = isinstance(x, PackedSequence)
        data = x.data if packed else x
        in_args = len(args) > 1
        hx = args[1] if in_args else kwargs.get("hx")
        if not isinstance(data, torch.Tensor) or not data.is_floating_point():
            self._pending[mid].append(None)
            return args, kwargs
        if hx is None:
            if packed:
                batch: tuple[int, ...] = (int(x.batch_sizes[0]),)
            elif data.dim() == 3:
                batch = (data.shape[0] if module.batch_first else data.shape[1],)
            else:  # unbatched input (T, features)
                batch = ()
            layers = module.num_layers * (2 if module.bidirectional else 1)
            proj = getattr(module, "proj_size", 0) or module.hidden_size
            h0 = torch.zeros(layers, *batch, proj, dtype=data.dtype, device=data.device, requires_grad=True)
            if isinstance(module, nn.LSTM):
                c0 = torch.zeros(layers, *batch, module.hidden_size, dtype=data.dtype, device=data.device,
                                 requires_grad=True)
                hx = (h0, c0)
            else:
                hx = h0
        else:
            parts = _tensors(hx)
            if not parts or not all(t.is_floating_point() for t in parts):
                self._pending[mid].append(None)
                return args, kwargs
            fresh = [t if t.requires_grad else t.detach().requires_grad_(True) for t in parts]
            hx = tuple(fresh) if isinstance(hx, (tuple, list)) else fresh[0]
        if in_args:
            args = (args[0], hx) + tuple(args[2:])
        else:
            kwargs = dict(kwargs, hx=hx)
        lengths = None
        if packed:  # each sequence's length, in the caller's order (that of h_n)
            sizes = x.batch_sizes.to(torch.int64)
            sorted_len = (sizes[None, :] > torch.arange(int(sizes[0]))[:, None]).sum(1)
            lengths = sorted_len if x.unsorted_indices is None else sorted_len[x.unsorted_indices.cpu()]
        self._pending[mid].append((_tensors(hx), args[0], lengths))
        return args, kwargs

    def after(self, mid: int, module: nn.Module, output: Any) -> None:
        """A call returned ``output``: hook its output state (a cell) or measure it (a fused RNN)."""
        outs = _tensors(output)
        if not isinstance(module, nn.RNNBase):
            self._outs[mid] = [(id(t), weakref.ref(t)) for t in outs]
        stack = self._pending.get(mid)
        if not stack or not torch.is_grad_enabled():
            return
        pending = stack.pop()
        if not isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
            self._last[mid] = None  # until this call proves measured
        if pending is None:
            return
        try:
            if isinstance(module, nn.RNNBase):
                state, x, lengths = pending
                if isinstance(output, tuple) and len(output) == 2:
                    self._measure_fused(mid, module, state, _tensors(output[1]), x, lengths)
                return
            call = pending
            new = outs if call.index is None else [outs[k] for k in call.index if k < len(outs)]
            if not _differentiable(new) or (call.index is not None and len(new) != len(call.index)):
                return
            for t in new:
                t.register_hook(call.record_out)
            if not isinstance(module, nn.RNNCellBase):
                self._last[mid] = call
        except Exception:  # noqa: BLE001 - a measurement must never break the user's training
            return

    # ------------------------------------------------------------ measurements
    def _unit(self, like: list[torch.Tensor], batched: bool) -> list[torch.Tensor]:
        """A random direction over the state tensors ``like``, of unit norm per sequence (dim 0
        when ``batched``), drawn from the probe's own generator (the caller's random stream is
        left alone)."""
        dev = like[0].device
        gen = self._generators.get(dev)
        if gen is None:
            gen = torch.Generator(device=dev)
            gen.manual_seed(self.seed)
            self._generators[dev] = gen
        vs = [torch.randn(t.shape, generator=gen, device=dev, dtype=torch.float32) for t in like]
        if batched:
            sq = sum(v.reshape(v.shape[0], -1).square().sum(1) for v in vs)
            norm = sq.sqrt().clamp_min(1e-12)
            vs = [v / norm.view(-1, *([1] * (v.dim() - 1))) for v in vs]
        else:
            norm = torch.sqrt(sum(v.square().sum() for v in vs)).clamp_min(1e-12)
            vs = [v / norm for v in vs]
        return [v.to(t.dtype) for v, t in zip(vs, like)]

    def _measure_fused(self, mid: int, module: nn.RNNBase, h0: list[torch.Tensor], hn: list[torch.Tensor],
                       x: Any, lengths: torch.Tensor | None) -> None:
        """Per-step gain of a fused RNN call, from its last layer's initial state to its final
        one, each direction (they do not touch each other within a layer, so one backward pass
        serves both); the larger |log gain| is kept. Lower layers are not measured on their own:
        their final states depend on theirs through the layers above, which would mix in."""
        if len(hn) != len(h0) or not _differentiable(hn) or _hooked(hn):
            return
        packed = isinstance(x, PackedSequence)
        xd = x.data if packed else x
        batched = hn[0].dim() == 3
        t_dim = 0
        if packed:
            steps = lengths.to(hn[0].device, torch.float32)
        else:
            t_dim = (1 if module.batch_first else 0) if xd.dim() == 3 else 0
            T = xd.shape[t_dim]
            steps = torch.full((hn[0].shape[1] if batched else 1,), float(T), device=hn[0].device)
        dirs = 2 if module.bidirectional else 1
        top = list(range(hn[0].shape[0] - dirs, hn[0].shape[0]))
        vs = {i: self._unit([t[i] for t in hn], batched) for i in top}
        total = sum((v * t[i]).sum() for i in top for v, t in zip(vs[i], hn))
        grads = _vjp(total, list(h0))
        if all(g is None for g in grads):
            return
        rates, lost = [], []
        for i in top:
            g2 = sum(g[i].detach().float().reshape(-1, g.shape[-1]).square().sum(1) if batched
                     else g[i].detach().float().square().sum().reshape(1) for g in grads if g is not None)
            g = g2.sqrt()
            ok = (g > _TINY) & (g < _HUGE)
            per_step = torch.log10(g.clamp(1e-38, 1e38)) / steps.clamp_min(1.0)  # per sequence, log10
            w = ok.float()  # the RMS over the sequences of their per-step gains, those in range
            rate = torch.log10((torch.pow(10.0, 2 * per_step) * w).sum() / w.sum().clamp_min(1.0)) / 2
            bound = torch.log10(torch.pow(10.0, 2 * per_step).mean()) / 2  # where none is: a bound
            rates.append(torch.where(ok.any(), rate, bound))
            lost.append(~ok.any())
        with_x = not packed and isinstance(xd, torch.Tensor) and xd.requires_grad and xd.dim() >= 2
        if with_x and bool(torch.stack(lost).any()):  # one sync, on a statistics step
            for j, i in enumerate(top):  # out of float32's range: read the rate off the input's decay
                if bool(lost[j]):
                    gx = _vjp(sum((v * t[i]).sum() for v, t in zip(vs[i], hn)), [xd])[0]
                    if gx is not None:
                        rates[j] = self._profile_rate(gx.detach(), t_dim, reverse=(i % dirs == 1))
        r = torch.stack(rates)
        best = r[r.abs().nan_to_num(-1.0).argmax()]
        mean_steps = float(lengths.float().mean()) if packed else float(T)
        self._logs[mid].append((best * mean_steps, mean_steps))

    @staticmethod
    def _profile_rate(gx: torch.Tensor, t_dim: int, reverse: bool) -> torch.Tensor:
        """log10 per-step rate of ‖∂(v·h_T)/∂x_t‖ (batch-pooled) from the last step back to the
        farthest one still in float32's range (from the first step forward when ``reverse``)."""
        dims = tuple(d for d in range(gx.dim()) if d != t_dim)
        p = torch.linalg.vector_norm(gx.float(), dim=dims)
        if reverse:
            p = p.flip(0)
        T = p.shape[0]
        ok = (p > _TINY) & (p < _HUGE) & torch.isfinite(p)
        far = torch.argmax(ok.int())  # the first step in range (the farthest from the end)
        dist = (T - 1 - far).float()
        rate = (torch.log10(p[far].clamp_min(1e-38)) - torch.log10(p[-1].clamp_min(1e-38))) / dist.clamp_min(1.0)
        return torch.where(ok[-1] & (dist > 0), rate, torch.tensor(float("nan"), device=p.device))

    # ------------------------------------------------------------ results
    def collect(self) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """What was measured since the last collect, then reset.

        Returns ``(gains, profiles)``: module id → per-step gain (a 0-d float32 tensor, the
        geometric mean over the time steps of every measured call; NaN when no gradient came
        back), and for the cells, module id → ‖∂L/∂s_t‖ at the output state of each time step of a
        sequence (the mean over the step's sequences when they are equally long, else the
        longest; NaN where none arrived) — where the loss reaches the recurrence.
        """
        gains, profiles = {}, {}
        for mid, calls in self._calls.items():
            done = [(torch.stack(c.tap).sum(), torch.stack(c.out).sum()) for c in calls if c.link and c.tap and c.out]
            if done:
                tap, arrived = (torch.stack(v) for v in zip(*done))
                # a step whose output got no gradient (a padded tail), or one so small that
                # float32 has lost its digits, says nothing about the gain
                ok = (arrived > _TINY ** 2) & torch.isfinite(arrived) & torch.isfinite(tap)
                logs = torch.where(ok, (torch.log10(tap) - torch.log10(arrived.clamp_min(_TINY ** 2))) / 2, 0.0)
                gains[mid] = torch.pow(10.0, logs.sum() / ok.sum()).float()
            profile = self._profile(calls)
            if profile is not None:
                profiles[mid] = profile
        for mid, items in self._logs.items():
            steps = sum(s for _, s in items)
            if steps <= 0:
                continue
            dev = items[0][0].device
            log_sum = torch.stack([v.to(dev).float() for v, _ in items]).sum()
            gains[mid] = torch.pow(10.0, log_sum / steps)
        self._reset()
        return gains, profiles

    @staticmethod
    def _profile(calls: list[_Call]) -> torch.Tensor | None:
        chains: list[list[_Call]] = []
        for c in calls:
            if not c.link or not chains:
                chains.append([])
            chains[-1].append(c)
        chains = [ch for ch in chains if len(ch) >= 2]
        if not chains:
            return None
        dev = next((c.out[0].device for ch in chains for c in ch if c.out), None)
        if dev is None:
            return None
        nan = torch.tensor(float("nan"), device=dev, dtype=torch.float64)
        norms = [torch.stack([torch.stack(c.out).sum().sqrt() if c.out else nan for c in ch]) for ch in chains]
        if len({len(n) for n in norms}) == 1:
            return torch.stack(norms).nanmean(0).float()
        return max(norms, key=len).float()


__all__ = ["RecurrenceProbe", "injecting", "input_profile", "leaf_input"]
