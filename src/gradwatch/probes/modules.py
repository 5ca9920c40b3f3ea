"""Hooks on modules for the statistics steps: δ = ‖∂L/∂h‖ at every module output (per call),
activation statistics, gradient through time, and functional activations.

The hooks exist only while armed (one step in ``every``), so steps in between run with no hook
at all. Forward hooks register a tensor hook on each output; it keeps the gradient's norm as a
0-d tensor, nothing leaves the device. Recurrent modules (``nn.RNN``/``LSTM``/``GRU``) also
record ‖∂L/∂x_t‖ for every time step of their input (where the loss reaches the sequence), and
every recurrence — fused, a cell called per step, a module fed its own output — the per-step
gain of its Jacobian (``time_gain``, :mod:`~gradwatch.probes.recurrence`), which does not
depend on where the loss enters. Functional activations (``torch.sigmoid(h)``,
``F.relu(h)``) are seen through a ``TorchFunctionMode`` entered around the root's forward and
attributed to the module that produced their input (``"fc1:sigmoid"``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1))
    >>> probe = ModuleProbe(m); probe.arm()
    >>> m(torch.randn(5, 3)).sum().backward()
    >>> vec, calls = probe.collect(); probe.disarm()
    >>> bool(torch.isfinite(vec["delta"][1]))   # module "0"
    True
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections import Counter, defaultdict
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .hooks import Picklable
from .activations import FUNCTIONAL_ACTIVATIONS, SATURATION_TAIL, activation_name, family, output_stats
from .model_info import module_kind
from .recurrence import RecurrenceProbe, input_profile, injecting, leaf_input
from .tensors import combined_projection, twin_fraction

#: outputs up to this many elements are copied and their statistics computed together, batched by
#: shape, at the end of the forward pass (thousands of small launches become a few); larger ones
#: are measured at once (no copy)
_BATCH_MAX_NUMEL = 4096
#: on the CPU (launches cost more than copies there) up to this many
_BATCH_MAX_NUMEL_CPU = 1 << 16
#: a unit's "last fired" observation before it ever fires
_NEVER = -(2**30)
_PLAIN = (torch.Tensor, nn.Parameter)


def _identical_units(xs: torch.Tensor, d: int) -> torch.Tensor:
    """:func:`~gradwatch.probes.activations.identical_fraction` of the units of each of the ``k``
    outputs stacked in ``xs`` (k, *shape), units along dimension ``d`` of an output. Each unit is
    projected on one random vector over its samples, with no copy of the outputs: for an image
    batch (N, C, H, W) one (C × HW)·(HW) product per sample, summed over the batch."""
    k, shape = xs.shape[0], xs.shape[1:]
    samples = math.prod(shape) // shape[d]
    r = combined_projection(samples, xs.device)
    if d == len(shape) - 1:  # units last: (k, samples, units)
        return twin_fraction(r @ xs.reshape(k, samples, shape[d]))
    lead = shape[0]  # units second: (k, N, C, rest), samples ordered (n, rest)
    sig = (xs.reshape(k, lead, shape[d], -1) @ r.view(lead, -1, 1)).sum(dim=1).squeeze(-1)
    return twin_fraction(sig)


def _std(flat: torch.Tensor, mean: torch.Tensor, cpu: bool) -> torch.Tensor:
    """The population std of each row of a (k, n) matrix given its mean. On the CPU from the root
    mean square in one pass, √(E[x²] − mean²), and by the two-pass formula only for rows where
    that loses digits (|mean| ≫ std); elsewhere (a sync is not free there) by the two-pass one."""
    n = flat.shape[1]
    if not cpu:
        return torch.linalg.vector_norm(flat - mean[:, None], dim=1) / math.sqrt(n)
    ms = torch.linalg.vector_norm(flat, dim=1).square_() / n
    var = ms - mean.square()
    unsure = ~(var > 1e-2 * ms)  # cancellation costs log10(ms / var) of float32's ~7 digits; NaN too
    if bool(unsure.any()):
        rows = unsure.nonzero().flatten()
        var[rows] = (torch.linalg.vector_norm(flat[rows] - mean[rows, None], dim=1) ** 2) / n
    return var.clamp_(min=0.0).sqrt_()


def _count(flags: torch.Tensor) -> torch.Tensor:
    """Non-zero entries per row of a (k, n) tensor: ``count_nonzero(dim=1)``, ~3x faster on the CPU."""
    return flags.bool().sum(1, dtype=torch.int32 if flags.shape[1] < 2**31 else torch.int64)


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    return None


class _FunctionalActivations(TorchFunctionMode):
    def __init__(self, probe: "ModuleProbe") -> None:
        super().__init__()
        self.probe = probe

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = FUNCTIONAL_ACTIVATIONS.get(func)
        if name is not None and isinstance(out, torch.Tensor) and args:
            self.probe._on_functional(name, args[0], out)
        return out


class ModuleProbe:
    """Arms and disarms the per-module hooks and turns what they saw into per-module vectors.

    Args:
        model: the root module.
        dead_window: number of statistics steps over which a unit must never fire to be dead.
    """

    def __init__(self, model: nn.Module, dead_window: int = 5) -> None:
        self.model = model
        self.entries: list[dict[str, str]] = []  # id -> {name, type, activation, kind}
        self._mods: list[nn.Module] = []
        for name, m in model.named_modules():
            self._add_entry(name, type(m).__name__, activation_name(m), module_kind(m))
            self._mods.append(m)
        self._n_real = len(self._mods)
        self._functional_ids: dict[tuple[int, str], int] = {}
        self.layout_changed = True
        self._handles: list[Any] = []
        self._mode: _FunctionalActivations | None = None
        # where functional activations were seen (see _scope): right after these modules return,
        # and while these modules run their own code (not their children's)
        self._after: set[int] = set()
        self._inside: set[int] = set()
        self._forwards = 0
        self._learning = True
        self._last_post: int | None = None
        self.dead_window = dead_window
        # per module: (observations so far, per unit the observation at which it last fired)
        self._last_fired: dict[int, tuple[int, torch.Tensor]] = {}
        self._rec = RecurrenceProbe()  # the per-step gain of each recurrence
        self._reset()

    def _add_entry(self, name: str, type_: str, act: str, kind: str) -> int:
        self.entries.append({"name": name, "type": type_, "activation": act, "kind": kind})
        return len(self.entries) - 1

    def _reset(self) -> None:
        self._calls: dict[int, int] = defaultdict(int)
        self._delta: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)
        self._time: dict[int, list[torch.Tensor]] = defaultdict(list)
        # statistics as measured, batched: (module ids, metric -> one value per module)
        self._rows: list[tuple[list[int], dict[str, torch.Tensor]]] = []
        self._fired_rows: list[tuple[list[int], torch.Tensor]] = []  # (ids, (k, units) fired)
        self._clean: list[int] = []  # ids whose output was checked free of NaN/Inf
        self._producer: dict[int, tuple[int, weakref.ref]] = {}  # id(output) -> (module, the output)
        self._order: dict[int, int] = {}
        self._stack: list[int] = []
        self._stash: list[tuple[int, str, torch.Tensor]] = []
        self.root_calls = 0

    # ------------------------------------------------------------ hooks
    @property
    def armed(self) -> bool:
        return bool(self._handles)

    def arm(self) -> None:
        """Install the hooks for the next forward/backward (idempotent)."""
        if self._handles:
            return
        for mid, m in enumerate(self._mods):
            # Picklable: torch.save(model) in the middle of a statistics step still works
            self._handles.append(m.register_forward_pre_hook(Picklable(self._make_pre(mid))))
            self._handles.append(m.register_forward_hook(Picklable(self._make_post(mid)), always_call=True))
            if isinstance(m, nn.RNNBase):  # an initial state that records gradients (hx may be a keyword)
                self._handles.append(m.register_forward_pre_hook(Picklable(
                    lambda mod, args, kwargs, mid=mid: self._rec.fused_state(mid, mod, args, kwargs)),
                    with_kwargs=True))

    def enter(self, module: nn.Module, args: tuple) -> tuple | None:
        """Run this probe's forward pre-hook for ``module``, whose forward is starting right now.

        PyTorch collects a module's pre-hooks before it runs the first of them, so hooks armed from
        inside a pre-hook of that same call (a watcher attached, or a step ended, as the model's
        forward begins) would miss it; this runs ours in their place. Returns the replaced
        arguments (a recurrent module's data input made a leaf that records its gradient) or None.

        Example:
            >>> # probe.arm(); new_args = probe.enter(model, args)   # inside a forward pre-hook
        """
        if not self._handles:
            return None
        for mid, m in enumerate(self._mods[:self._n_real]):
            if m is module:
                return self._make_pre(mid)(module, args)
        return None

    def disarm(self) -> None:
        """Remove every hook this probe installed."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._exit_mode()

    def _exit_mode(self) -> None:
        if self._mode is not None:
            mode, self._mode = self._mode, None
            try:
                mode.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - the mode stack was already unwound
                pass

    def _scope(self, on: bool) -> None:
        """Have the functional-activation mode on or off from here. Outside the forward passes that
        learn (the first three, then one in 50), it is on only where a functional activation was
        seen: from the end of the module whose output it took until the next module starts, and
        inside the modules that call one on their own tensors. A mode entered by the model's code
        in the meantime sits above ours; ours then stays until the outermost call returns."""
        if on:
            if self._mode is None:
                self._mode = _FunctionalActivations(self)
                self._mode.__enter__()
        elif self._mode is not None:
            top = torch._C._len_torch_function_stack() - 1
            if top >= 0 and torch._C._get_function_stack_at(top) is self._mode:
                self._exit_mode()

    def _make_pre(self, mid: int):
        recurrent = isinstance(self._mods[mid], nn.RNNBase)

        def pre(module, args):
            if not self._handles:  # disarmed by an earlier hook of this same call (a step ended)
                return None
            outermost = not self._stack  # the root, or a part of a root that is never called itself
            self._stack.append(mid)
            self._last_post = None
            if (mid == 0 or outermost) and torch.is_grad_enabled():
                if mid == 0:
                    self.root_calls += 1
                if outermost:
                    self._learning = self._forwards < 3 or self._forwards % 50 == 0
                    self._forwards += 1
                self._scope(self._learning or mid in self._inside)
            elif not self._learning and self._stack and torch.is_grad_enabled():
                self._scope(mid in self._inside)
            if not torch.is_grad_enabled():
                return None
            tapped = self._rec.before(mid, module, args)  # a cell's state input, through taps
            if tapped is not None:
                return tapped
            if recurrent and args:
                x = leaf_input(args[0])  # a data leaf records dL/dx_t (nothing upstream to disturb)
                if x is not None:
                    return (x,) + tuple(args[1:])
            return None

        return pre

    def _make_post(self, mid: int):
        module = self._mods[mid]
        act = self.entries[mid]["activation"]
        recurrent = isinstance(module, nn.RNNBase)
        batch_first = bool(getattr(module, "batch_first", False))

        def post(mod, args, output):
            if self._stack and self._stack[-1] == mid:
                self._stack.pop()
            outermost = not self._stack
            self._last_post = mid
            if outermost:
                self._exit_mode()
            elif not self._learning:
                self._scope(mid in self._after or self._stack[-1] in self._inside)
            if not torch.is_grad_enabled():
                return
            if self._mode is not None:
                with torch._C.DisableTorchFunction():
                    self._rec.after(mid, mod, output)
            else:
                self._rec.after(mid, mod, output)
            if recurrent and args:
                hook = input_profile(args[0], batch_first)
                if hook is not None:
                    hook(lambda norms: self._time[mid].append(norms))
            out = _first_tensor(output)
            if out is None:
                return
            if self._mode is not None and type(out) in _PLAIN:
                with torch._C.DisableTorchFunction():  # our own ops need not pass through the mode
                    self._record(mid, out, act)
            else:
                self._record(mid, out, act)
            if outermost and self._stash:
                self._flush_stash()

        return post

    def _record(self, mid: int, out: torch.Tensor, act: str) -> None:
        k = self._calls[mid]
        self._calls[mid] = k + 1
        if k == 0:
            self._order[mid] = len(self._order)  # forward order of first outputs
        self._producer[id(out)] = (mid, weakref.ref(out))  # ids are reused once a tensor dies
        if out.requires_grad:
            def delta(g: torch.Tensor) -> None:
                if injecting():  # a recurrence probe's own vector-Jacobian product, not the backward
                    return
                self._delta[mid].append((k, torch.linalg.vector_norm(g.detach()).float()))

            fn = out.grad_fn
            if fn is None:  # a leaf (a module that returns a parameter)
                out.register_hook(delta)
            else:  # what a tensor hook gets: the gradient w.r.t. this output of its node, for half the cost
                nr = out.output_nr
                fn.register_prehook(lambda grads: None if grads[nr] is None else delta(grads[nr]))
        if not out.is_floating_point() or out.layout != torch.strided or out.numel() == 0:
            if act:  # an unusual output (integer, sparse, empty): the one-by-one statistics
                stats = output_stats(out, act)
                fired = stats.pop("fired", None)
                if fired is not None:
                    self._fired_rows.append(([mid], fired[None]))
                if stats:
                    self._rows.append(([mid], {key: v.reshape(1) for key, v in stats.items()}))
            return
        cpu = out.device.type == "cpu"
        limit = _BATCH_MAX_NUMEL_CPU if cpu else _BATCH_MAX_NUMEL
        if not act and cpu:  # only the non-finite check: one sum now (no copy); count only if it says so
            x = out.detach()
            total = x.sum()
            if math.isfinite(float(total)):
                self._clean.append(mid)
            else:
                self._rows.append(([mid], {"act_nonfinite": (~torch.isfinite(x)).sum().float().reshape(1)}))
        elif out.numel() <= limit:
            # a copy: a later in-place op (ReLU(inplace=True), x += r) must not change what we saw
            self._stash.append((mid, act, out.detach().clone()))
        elif act:
            x = out.detach()
            self._batch_stats(act, x.device, tuple(x.shape), [mid], x.unsqueeze(0))
        else:  # every module: where did NaN/Inf first appear?
            self._rows.append(([mid], {"act_nonfinite": (~torch.isfinite(out.detach())).sum().float().reshape(1)}))

    @torch.no_grad()
    def _flush_stash(self) -> None:
        """The statistics of the small outputs kept by :meth:`_record`, one batch per (activation,
        shape): the numbers :func:`~gradwatch.probes.activations.output_stats` gives one by one."""
        stash, self._stash = self._stash, []
        groups: dict[tuple, list[tuple[int, torch.Tensor]]] = defaultdict(list)
        for mid, act, x in stash:
            groups[(act, x.dtype, x.device, tuple(x.shape))].append((mid, x))
        for (act, _, dev, shape), items in groups.items():
            self._batch_stats(act, dev, shape, [mid for mid, _ in items], torch.stack([x for _, x in items]))

    @torch.no_grad()
    def _batch_stats(self, act: str, dev, shape: tuple, mids: list[int], xs: torch.Tensor) -> None:
        """Statistics of ``len(mids)`` outputs of one shape stacked in ``xs``, per module: what
        :func:`~gradwatch.probes.activations.output_stats` gives, in fewer passes over the data.

        On the CPU (where reading a flag is free) a finite sum or mean proves an output has no
        NaN/Inf, so the non-finite count and the exact-NaN handling are only paid when needed.
        """
        k = len(mids)
        xs = xs.float()
        flat = xs.reshape(k, -1)
        n_el = flat.shape[1]
        cpu = xs.device.type == "cpu"
        if not act:
            if cpu and bool(torch.isfinite(flat.sum(1)).all()):
                self._clean += mids
            else:
                self._rows.append((mids, {"act_nonfinite": (~torch.isfinite(flat)).sum(1).float()}))
            return
        fam = family(act)
        mean = flat.mean(1)
        std = _std(flat, mean, cpu) if n_el > 1 else torch.zeros(k, device=dev)
        finite = cpu and bool(torch.isfinite(mean).all())  # any NaN/Inf entry makes the mean NaN/Inf
        stats = {
            "act_mean": mean,
            "act_std": std,
            "act_zero": (n_el - _count(flat)).float() / n_el,
            "act_nonfinite": torch.zeros(k) if finite else (~torch.isfinite(flat)).sum(1).float(),
        }
        if fam == "sigmoid":
            stats["act_sat"] = _count((flat < SATURATION_TAIL) | (flat > 1 - SATURATION_TAIL)).float() / n_el
        elif fam == "tanh":
            stats["act_sat"] = _count(flat.abs() > 1 - SATURATION_TAIL).float() / n_el
        if len(shape) >= 2:
            d = 1 if len(shape) >= 4 else len(shape) - 1  # activations.unit_dim
            if fam in ("relu", "leaky", "smooth"):
                if finite:  # a unit fired somewhere <=> its largest output is > 0
                    others = tuple(i for i in range(1, xs.dim()) if i != d + 1)
                    fired = xs.amax(dim=others) > 0
                else:
                    fired = (xs.movedim(d + 1, -1).reshape(k, -1, shape[d]) > 0).any(dim=1)
                self._fired_rows.append((mids, fired))
            if shape[d] < 2:
                stats["act_identical"] = torch.zeros(k, device=dev)
            else:
                stats["act_identical"] = _identical_units(xs, d)
        self._rows.append((mids, stats))

    def _on_functional(self, name: str, inp: Any, out: torch.Tensor) -> None:
        if self._stack and self.entries[self._stack[-1]]["kind"] == "activation":
            return  # an activation module calling its functional form: already seen
        if not torch.is_grad_enabled():
            return
        hit = self._producer.get(id(inp)) if isinstance(inp, torch.Tensor) else None
        owner = hit[0] if hit is not None and hit[1]() is inp else None
        if owner is not None and owner == self._last_post:
            self._after.add(owner)  # called on a module's output as it returned: F.relu(self.fc(x))
        elif self._stack:
            self._inside.add(self._stack[-1])
        if owner is None:
            owner = self._stack[-1] if self._stack else 0
        key = (owner, name)
        fid = self._functional_ids.get(key)
        if fid is None:
            fid = self._add_entry(f"{self.entries[owner]['name']}:{name}", "function", name, "activation")
            self._functional_ids[key] = fid
            self.layout_changed = True
        self._record(fid, out, name)

    # ------------------------------------------------------------ results
    def collect(self) -> tuple[dict[str, torch.Tensor], list[tuple[int, torch.Tensor]]]:
        """Per-module vectors of this step's statistics, and per-call/per-time-step norms.

        Returns ``(vectors, calls)``: vectors maps metric -> float32 tensor of length
        ``len(entries)`` (NaN where not measured); calls is a list of (module id, vector).
        """
        if self._stash:
            self._flush_stash()
        n = len(self.entries)
        dev = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        delta: dict[int, torch.Tensor] = {}
        calls: list[tuple[int, torch.Tensor]] = []
        for mid, items in self._delta.items():
            if len(items) == 1:  # one call: its norm is the module's δ
                delta[mid] = items[0][1]
                continue
            items.sort(key=lambda t: t[0])
            norms = torch.stack([v.to(dev) for _, v in items])
            delta[mid] = torch.linalg.vector_norm(norms)
            calls.append((mid, norms))
        for mid, seqs in self._time.items():  # ‖∂L/∂x_t‖ per time step, mean over the calls
            length = max(len(s) for s in seqs)
            if length < 2 and len(self._delta.get(mid, ())) > 1:
                continue  # one step per call (a decoder loop): δ per call says more
            seqs = [torch.nn.functional.pad(s.to(dev), (0, length - len(s)), value=float("nan")) for s in seqs]
            calls = [c for c in calls if c[0] != mid]
            calls.append((mid, torch.stack(seqs).nanmean(0)))
        gains, profiles = self._rec.collect()
        for mid, profile in profiles.items():  # a cell: ‖∂L/∂s_t‖ at its state, per time step
            calls = [c for c in calls if c[0] != mid] + [(mid, profile.to(dev))]
        if gains:
            self._rows.append((list(gains), {"time_gain": torch.stack([g.to(dev) for g in gains.values()])}))
        direct = {"calls": self._calls, "order": self._order}  # host numbers: one tensor each
        vectors = {}
        for metric, d in direct.items():
            if d:
                v = torch.full((n,), float("nan"))
                v[torch.tensor(list(d.keys()))] = torch.tensor([float(c) for c in d.values()])
                vectors[metric] = v.to(dev)
        vectors.update(self._gather(n, dev, delta))
        self._reset()
        return vectors, calls

    def _gather(self, n: int, dev: torch.device, delta: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batched statistics and ``delta`` (module -> δ) as one vector per metric: a module
        measured more than once this step (several calls) gets the mean of its values, the sum of
        its non-finite counts, and its units count as fired when they fired in any call."""
        by_metric: dict[str, tuple[list[int], list[torch.Tensor]]] = {}
        if delta:
            by_metric["delta"] = (list(delta), [torch.stack([v.to(dev, torch.float32) for v in delta.values()])])
        for mids, stats in self._rows:
            for metric, v in stats.items():
                ix, vs = by_metric.setdefault(metric, ([], []))
                ix += mids
                vs.append(v)
        if self._clean:
            ix, vs = by_metric.setdefault("act_nonfinite", ([], []))
            ix += self._clean
            vs.append(torch.zeros(len(self._clean)))
        for mids, silent, dead in self._fired_stats():
            for metric, v in (("act_silent", silent), ("act_dead", dead)):
                ix, vs = by_metric.setdefault(metric, ([], []))
                ix += mids
                vs.append(v)
        vectors = {}
        for metric, (ix, vs) in by_metric.items():
            vals = torch.cat([v.to(dev, torch.float32) for v in vs])
            index = torch.tensor(ix, device=dev)
            v = torch.full((n,), float("nan"), device=dev)
            if len(set(ix)) == len(ix):
                v.index_copy_(0, index, vals)
            elif metric == "act_nonfinite":
                v.index_fill_(0, index, 0.0).index_add_(0, index, vals)
            else:
                with warnings.catch_warnings():  # "index_reduce() is in beta": not the user's concern
                    warnings.simplefilter("ignore", UserWarning)
                    v.index_reduce_(0, index, vals, "mean", include_self=False)
            vectors[metric] = v
        return vectors

    def _fired_stats(self) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Per batch of modules: the fraction of units silent this step, and dead (silent in each
        of the module's last ``dead_window`` observations)."""
        seen = Counter(mid for mids, _ in self._fired_rows for mid in mids)
        batches: list[tuple[list[int], torch.Tensor]] = []
        several: dict[int, list[torch.Tensor]] = defaultdict(list)
        for mids, fired in self._fired_rows:
            if all(seen[mid] == 1 for mid in mids):
                batches.append((mids, fired))
            else:
                for j, mid in enumerate(mids):
                    several[mid].append(fired[j])
        for mid, fs in several.items():  # calls of one module: OR, where they agree on the units
            if all(f.shape == fs[0].shape for f in fs):
                batches.append(([mid], torch.stack(fs).any(0, keepdim=True)))
        out = []
        for mids, fired in batches:
            units = fired.shape[1]
            obs, last = [], []
            for mid in mids:
                state = self._last_fired.get(mid)
                if state is None or state[1].shape[0] != units:  # new, or its units changed
                    state = (0, torch.full((units,), _NEVER, dtype=torch.int64, device=fired.device))
                obs.append(state[0])
                last.append(state[1])
            now = torch.tensor(obs, device=fired.device)[:, None]
            last_t = torch.where(fired, now, torch.stack(last))
            dead = (last_t <= now - self.dead_window).float().mean(1)
            for j, mid in enumerate(mids):
                self._last_fired[mid] = (obs[j] + 1, last_t[j])
            out.append((mids, 1.0 - fired.float().mean(1), dead))
        return out
