"""The watcher: attaches to a model (and optimizer), measures every step, writes the run store.

Every optimizer step: per-parameter gradient L2 norm and max |g|, the global norm, the loss,
the learning rates and the step time — a few fused kernels whose results stay on the device.
On the statistics steps, the slow statistics: δ = ‖∂L/∂h‖ at every module output (and per
call, and per time step for recurrent modules), activation statistics, weight norms, the
optimizer's update ‖w_after − w_before‖, identical units and non-finite counts. They come every
``every`` steps (step 0 first) for the first ten, then as often as ``stats_budget`` allows
(:mod:`gradwatch.schedule`: by default they may add 0.5 % to the training time). Records are moved
to the host in one transfer per flush and written by the store's thread.

Example:
    >>> import torch, tempfile
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> out = tempfile.mkdtemp()
    >>> with watch(model, opt, out=out) as w:
    ...     for _ in range(3):
    ...         loss = model(torch.randn(16, 4)).pow(2).mean()
    ...         opt.zero_grad(); loss.backward(); opt.step()
    >>> from gradwatch.record import load
    >>> len(load(out).steps)
    3
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .guard import Guard
from .probes.hooks import Picklable
from .probes.model_info import describe_model, describe_optimizer
from .probes.modules import ModuleProbe
from .probes.tensors import TensorStats
from .schedule import StatsSchedule
from .store import DB_NAME, RunStore


class WatchError(ValueError):
    """The model, optimizer or settings given to :func:`watch` cannot be watched as they are.

    Example:
        >>> from torch import nn
        >>> try:
        ...     watch(nn.ReLU(), out="runs/never")
        ... except WatchError as e:
        ...     print(str(e).split(",")[0])
        ReLU has no parameters
    """


_ACTIVE: "weakref.WeakKeyDictionary[nn.Module, Watcher]" = weakref.WeakKeyDictionary()
_LIVE: "weakref.WeakSet[Watcher]" = weakref.WeakSet()
#: the live watchers as a tuple, for the patched backward() (a WeakSet's iterator is slow Python)
_LIVE_NOW: tuple = ()
_ORIGINAL_BACKWARD = torch.Tensor.backward


def is_loss(t: torch.Tensor) -> bool:
    """Whether a tensor ``backward()`` is called on is a loss the watcher records (one number)."""
    return t.numel() == 1


def _backward_with_loss_capture(self, *args, **kwargs):
    live = _LIVE_NOW
    if live and is_loss(self):
        for w in (_owners(self, list(live)) if len(live) > 1 else live):
            w._saw_loss(self)
    return _ORIGINAL_BACKWARD(self, *args, **kwargs)


def _set_live(watcher: "Watcher", live: bool) -> None:
    global _LIVE_NOW
    if live:
        _LIVE.add(watcher)
    else:
        _LIVE.discard(watcher)
    _LIVE_NOW = tuple(_LIVE)


def _graph_nodes(fn, depth: int | None = None):
    """The autograd nodes reachable from ``fn``, breadth first, each once (to ``depth`` levels)."""
    frontier, seen, level = [fn], set(), 0
    while frontier and (depth is None or level < depth):
        nxt = []
        for node in frontier:
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            nxt.extend(n for n, _ in getattr(node, "next_functions", ()))
        frontier, level = nxt, level + 1


def _graph_leaves(fn) -> set[int]:
    """ids of the leaf tensors (parameters) a loss's autograd graph reaches."""
    # AccumulateGrad nodes hold their leaf as .variable
    return {id(n.variable) for n in _graph_nodes(fn) if getattr(n, "variable", None) is not None}


def _owners(loss: torch.Tensor, watchers: list) -> list:
    """With several models watched (a GAN's generator and discriminator), a loss belongs to the
    watchers whose parameters its graph reaches; and when a watcher's gradients were zeroed since
    the losses it holds, those losses' gradients were discarded: they do not belong to its step."""
    if loss.grad_fn is None:
        return []
    leaves = _graph_leaves(loss.grad_fn)
    out = []
    for w in watchers:
        if leaves.isdisjoint(w._param_ids):
            continue
        params = w.tensors.params
        if params and params[0].grad is None:
            w._losses = []
        out.append(w)
    return out


def _save_after_flush(*args, **kwargs):
    """``torch.save`` while a watcher is live: the record is committed up to the step being
    checkpointed first, so a run resumed from that checkpoint finds every step before it recorded
    (at a checkpoint's cost a flush is nothing; a distributed watcher's flush, a collective, is not
    made here)."""
    me = threading.get_ident()
    for w in _LIVE_NOW:
        if w.flush_on_save and w._thread_id == me and not w._closed:
            try:
                w.flush(wait=True)
            except Exception:  # noqa: BLE001 - the script's checkpoint matters more than our record
                pass
    return _ORIGINAL_SAVE(*args, **kwargs)


_ORIGINAL_SAVE = torch.save


def _patch_torch(on: bool) -> None:
    """Install (or remove) the watcher's patches: ``Tensor.backward`` (loss capture),
    ``torch.save`` (commit the record at a checkpoint), AMP's ``GradScaler``."""
    torch.Tensor.backward = _backward_with_loss_capture if on else _ORIGINAL_BACKWARD
    if on and torch.save is _ORIGINAL_SAVE:
        torch.save = _save_after_flush
    elif not on and torch.save is _save_after_flush:
        torch.save = _ORIGINAL_SAVE
    from .integrations import amp  # GradScaler: unscaled loss and δ, skipped steps as events

    amp.patch(on)


#: metadata keys the watcher writes itself (a user's ``meta=`` must not overwrite them)
_OWN_META = ("schema", "gradwatch", "torch", "started", "resumed", "argv", "config", "model", "loss_graph", "compiled",
             "ended", "steps")


def _default_out() -> Path:
    return fresh_dir(Path("gradwatch-runs") / time.strftime("%Y%m%d-%H%M%S"))


def fresh_dir(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``… : the first that holds no run (for default run
    directories, named by the time to the second, of runs started in the same second).

    Example:
        >>> import tempfile
        >>> fresh_dir(Path(tempfile.mkdtemp()) / "t").name
        't'
    """
    candidate, n = path, 1
    while (candidate / DB_NAME).exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


class Watcher:
    """Watches one model (and its optimizers) and records every step into a run store.

    Use :func:`watch` to create one. Leaving the ``with`` block, or :meth:`detach`, removes every
    hook and commits the record.

    Args:
        model: the ``nn.Module`` being trained.
        optimizer: its optimizer (optional; more can be added with :meth:`add_optimizer`).
            Without one, a step ends when a backward pass through the model ends.
        out: run directory (default ``gradwatch-runs/<time>``).
        every: steps between the slow statistics (δ, activations, updates) for the first ten
            statistics steps, and for the whole run when ``stats_budget`` is None. ``1`` = always.
        stats_budget: after those, space the statistics steps so their measured extra time stays
            within this fraction of the training time (default ``0.005``: the per-step gradient
            norms already take up to ~2 % on a CPU, the store ~0.3 %); ``None`` keeps
            ``every`` for the whole run. See :class:`~gradwatch.schedule.StatsSchedule`.
        stats: ``"default"`` or ``"all"`` (every statistic every step, including non-finite
            counts: the most detail, the most cost).
        dead_window: statistics steps over which a ReLU unit must never fire to count as dead.
        flush_every: the most steps held before a transfer to the store.
        flush_seconds: the longest time between transfers (default 10 s): a killed run
            (``kill -9``) loses at most this much; an exception or exit loses nothing. Each
            transfer costs milliseconds of cold caches however few steps it carries, so the
            store is written on this clock rather than every few steps.
        precision: ``"bfloat16"`` or ``"float32"`` for the stored per-layer vectors.
        meta: extra JSON-serialisable metadata to store with the run.
        first_stats_step: the first step that gets the slow statistics.
        guard: ``True`` (or a :class:`~gradwatch.guard.Guard`) to skip non-finite or exploding
            steps and roll back after repeated failures; needs the optimizer.
        resume: continue the run recorded in ``out`` (after a restart from a checkpoint); a new
            run when none is recorded there. Step numbers carry on from ``start_step``, else from
            the optimizer state's ``step`` (Adam's ``state['step']``: the checkpoint's step count;
            0 for a fresh Adam, the script started over), else (plain SGD keeps no count) from the
            last recorded step; the recorded steps from there on, which the resumed
            run trains again, are kept as superseded (:meth:`RunStore.restart
            <gradwatch.store.RunStore.restart>`), and a ``restart`` event marks the resume. Without
            ``resume`` or ``overwrite`` a directory that already holds a run is refused
            (:class:`~gradwatch.store.RunExists`): no record is ever replaced silently.
        overwrite: delete the run recorded in ``out`` and start a new one.
        start_step: the number of the first step this watcher records (the checkpoint's global
            step when resuming; default: see ``resume``, 0 for a new run).

    Example:
        >>> # w = Watcher(model, opt, out="runs/a"); ...; w.detach()
    """

    #: where records go; a subclass may substitute (a distributed rank that does not write)
    store_class: type = RunStore
    #: commit the record when the script calls ``torch.save`` (a checkpoint); a distributed
    #: watcher, whose flush is a collective, does not
    flush_on_save: bool = True
    #: how the losses of a step's backward passes combine: "mean", or "sum" where the framework
    #: divides each micro-batch loss by the accumulation steps (Lightning, the HF Trainer)
    loss_reduction: str = "mean"

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        out: str | os.PathLike | None = None,
        every: int = 10,
        stats: str = "default",
        stats_budget: float | None = 0.005,
        dead_window: int = 5,
        flush_every: int = 500,
        flush_seconds: float = 10.0,
        precision: str = "bfloat16",
        meta: dict[str, Any] | None = None,
        first_stats_step: int = 0,
        guard: "bool | Guard" = False,
        resume: bool = False,
        overwrite: bool = False,
        start_step: int | None = None,
    ) -> None:
        _validate_model(model)
        from .integrations.compiled import unwrap

        model, compiled = unwrap(model)  # torch.compile: watch the module it wraps; note what is seen
        if stats not in ("default", "all"):
            raise WatchError(f"stats must be 'default' or 'all', got {stats!r}")
        if not isinstance(every, int) or every < 1:
            raise WatchError(f"every must be a positive integer (steps between slow statistics), got {every!r}")
        clash = sorted(set(meta or {}) & set(_OWN_META))
        if clash:
            raise WatchError(f"meta keys {clash} are gradwatch's own; give your metadata other names (e.g. 'my_config')")
        if not isinstance(dead_window, int) or dead_window < 1:
            raise WatchError(f"dead_window must be a positive integer (statistics steps a dead unit stays silent), "
                             f"got {dead_window!r}")
        if resume and overwrite:
            raise WatchError("resume=True and overwrite=True exclude each other: continue the recorded run "
                             "(resume) or replace it (overwrite)")
        if start_step is not None and (not isinstance(start_step, int) or start_step < 0):
            raise WatchError(f"start_step must be a step number (an int ≥ 0), got {start_step!r}")
        if model in _ACTIVE:
            raise WatchError(
                "this model is already watched; detach the first watcher (w.detach() or leave its "
                "`with` block) before watching it again"
            )
        self.model = model
        self.every = 1 if stats == "all" else every
        self.full = stats == "all"
        try:
            self.schedule = StatsSchedule(self.every, first=first_stats_step,
                                          budget=None if self.full else stats_budget)
        except ValueError as e:
            raise WatchError(str(e)) from None
        self.trace_steps = 50  # after a guard skip, all statistics for this many steps
        self.flush_every = max(1, int(flush_every))
        self.flush_seconds = flush_seconds
        self.out = Path(out) if out is not None else _default_out()
        self.optimizers: list[torch.optim.Optimizer] = []
        self._residual_blocks: list[str] | None = None
        self._opt_handles: list[Any] = []
        self._handles: list[Any] = []

        named = [(n, p) for n, p in model.named_parameters()]
        self.param_names = [n for n, _ in named]
        self._own_params = [p for _, p in named]  # the model's own (tensors.params may be shard views)
        self._param_ids = {id(p): i for i, (_, p) in enumerate(named)}
        self.tensors = TensorStats([p for _, p in named], keep_snapshot=self.full)
        self.probe = ModuleProbe(model, dead_window=dead_window)
        self.module_stats = compiled is None or compiled["module_stats"]
        self.store = self.store_class(self.out, precision=precision, resume=resume, overwrite=overwrite)
        last = getattr(self.store, "last_step", None)
        self.resume = resume
        self._first_stats_step = first_stats_step
        self.step, source = _start_step(start_step, optimizer, last, resume)
        self._start = self.step
        #: the ``restart`` event's detail when this watcher continues a record (None otherwise)
        self.restarted: dict[str, Any] | None = None
        if self.step:  # numbered from a checkpoint: the statistics schedule starts there, step 0 alike
            self._schedule_from_start()
        if resume and (getattr(self.store, "continued", False) or self.step):
            self.restarted = self.store.restart(self.step, source=source, time=time.time())
        if compiled is not None:
            self.store.set_meta(compiled=compiled)
            self.store.event(self.step, "compiled", compiled)
        self._write_module_layout()
        started = {"resumed": time.time()} if resume and last is not None else {"started": time.time()}
        self.store.set_meta(
            gradwatch=_version(), torch=torch.__version__, **started, argv=sys.argv,
            config={"every": self.every, "stats": stats, "stats_budget": self.schedule.budget,
                    "dead_window": dead_window,
                    "precision": precision, "flush_every": self.flush_every},
            **(meta or {}),
        )
        self._pending: list[dict[str, Any]] = []
        self._losses: list[torch.Tensor] = []
        self._log_target: dict[str, Any] | None = None
        self._last_flush = time.monotonic()
        self._last_step_end = time.perf_counter()
        self._loss_graph_saved = False
        self._loss_scale: torch.Tensor | None = None  # GradScaler's factor in this step's backward
        self._extra_next: dict[str, Any] = {}  # w.log() scalars for the step under way
        self._in_backward = False
        self._closed = False
        # without an optimizer a step is a backward pass, then the hand-written update: it ends
        # once sampled weights moved (checked at the next call or backward), so the update is measured
        self._awaiting_update = False
        self._manual_handles: list[Any] = []
        self._marked: list[torch.Tensor] = []  # a few weights, sampled: did the hand-written update happen?
        self._marks: list[torch.Tensor] = []
        self._ever_moved = False
        self._waited = 0
        # statistics steps: the gradients as they stood when this step's first backward reached
        # the parameters (zero or None unless the previous step's gradients were never cleared)
        self._prior_handles: list[Any] = []
        self._prior_readings: list[torch.Tensor] = []

        self.guard = Guard() if guard is True else (guard or None)
        if self.guard is not None and optimizer is None:
            self.store.close()
            raise WatchError("guard=True needs the optimizer: pass it, e.g. watch(model, opt, guard=True)")
        if optimizer is not None:
            try:
                self.add_optimizer(optimizer)
            except BaseException:
                self.store.close()  # nothing recorded, the directory free again
                raise
        self._describe()
        if self.optimizers == []:
            self._manual_handles = [model.register_forward_pre_hook(Picklable(self._on_root_input)),
                                    model.register_forward_hook(Picklable(self._on_root_output))]
            self._mark_weights()
        self._thread_id = threading.get_ident()
        _ACTIVE[model] = self
        if not _LIVE:
            _patch_torch(True)
        _set_live(self, True)
        self._begin_step()

    # ------------------------------------------------------------ attaching
    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Watch another optimizer of this model (each of its steps is a recorded step)."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise WatchError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                "pass the optimizer that trains this model, or none"
            )
        foreign = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in self._param_ids]
        if foreign:
            raise WatchError(
                f"{len(foreign)} of the optimizer's parameters are not in the watched model; "
                "watch the model the optimizer trains (the module whose .parameters() you gave it)"
            )
        self.optimizers.append(optimizer)
        if self._manual_handles:  # an optimizer now makes the steps (one built after the first forward)
            for h in self._manual_handles:
                h.remove()
            self._manual_handles = []
            self._awaiting_update = False
        self._opt_handles.append(optimizer.register_step_pre_hook(self._before_step))
        self._opt_handles.append(optimizer.register_step_post_hook(self._after_step))
        if len(self.optimizers) > 1 or not self._closed:
            self._describe()

    def _describe(self) -> None:
        info = describe_model(self.model, self.optimizers[0] if self.optimizers else None)
        info["optimizers"] = [describe_optimizer(o) for o in self.optimizers]
        params = self._own_params
        info["frozen_params"] = [n for n, p in zip(self.param_names, params) if not p.requires_grad]
        held = {id(p) for o in self.optimizers for g in o.param_groups for p in g["params"]}
        info["params_without_optimizer"] = (
            [n for n, p in zip(self.param_names, params) if p.requires_grad and id(p) not in held]
            if self.optimizers else None)
        if self._residual_blocks is not None:
            info["residual_blocks"] = self._residual_blocks
        self.store.set_meta(model=info)

    def describe_forward(self, *args: Any, max_copy_bytes: int = 256 * 2**20, **kwargs: Any) -> list[str]:
        """Record what only a forward pass shows: the residual blocks written in ``forward``
        (``x + f(x)``), read from one traced pass on these inputs. ``gradwatch run`` does this
        with the script's first batch; the diagnosis then knows an unnormalised residual stream
        when it sees one. Returns the block names.

        The pass runs on a copy of the model without its hooks (no_grad, eval mode, random
        generators restored), so nothing a forward pass may change — an RNN's stored hidden
        state, a counter, a hook's captured features — changes in the model being trained. A
        model whose parameters and buffers exceed ``max_copy_bytes`` is not copied and not
        traced (an empty list).

        Example:
            >>> # with gw.watch(model, opt) as w:
            >>> #     w.describe_forward(x_first_batch)   # -> ['blocks.0', 'blocks.1', ...]
        """
        import copy

        from .probes.traced_residuals import traced_residual_blocks

        size = sum(t.numel() * t.element_size() for t in [*self.model.parameters(), *self.model.buffers()])
        blocks: list[str] = []
        if size <= max_copy_bytes:
            try:
                twin = copy.deepcopy(self.model)
            except Exception:  # noqa: BLE001 - a model that cannot be copied is not traced
                twin = None
            if twin is not None:
                for m in twin.modules():
                    for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                                  "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
                                  "_forward_hooks_always_called"):
                        getattr(m, hooks, {}).clear()
                blocks = traced_residual_blocks(twin, args, kwargs)
        self._residual_blocks = blocks
        self._describe()
        return blocks

    # ------------------------------------------------------------ step cycle
    def _begin_step(self) -> None:
        if self.schedule.is_stats(self.step):
            if self.module_stats:
                self.probe.arm()
            self._arm_prior()

    def _arm_prior(self) -> None:
        """Tensor hooks on the trainable parameters: in each backward pass of the step, the first
        to fire — before that pass accumulates into any ``.grad`` — reads every gradient as it
        stands. The step started clean if any pass found them clear (a GAN's generator loss may
        reach the discriminator's ``.grad`` before its ``zero_grad()``); what is kept is the
        reading with the least in it."""
        in_pass: list[int] = []
        readings: list[torch.Tensor] = []

        def pass_ended():
            in_pass.clear()

        def hook(grad):
            if not in_pass:
                in_pass.append(1)
                torch.autograd.Variable._execution_engine.queue_callback(pass_ended)
                readings.append(self.tensors.grad_norms())
            return None

        self._prior_readings = readings
        self._prior_handles = [p.register_hook(hook) for p in self._own_params if p.requires_grad]

    def _least_prior(self) -> torch.Tensor | None:
        readings, self._prior_readings = self._prior_readings, []
        if len(readings) <= 1:
            return readings[0] if readings else None
        stacked = torch.stack(readings)
        return stacked[torch.nan_to_num(stacked).square().sum(1).argmin()]  # stays on the device

    def _disarm_prior(self) -> None:
        for h in self._prior_handles:
            h.remove()
        self._prior_handles = []

    def _before_step(self, optimizer=None, args=None, kwargs=None):
        if kwargs or (args is not None and len(args) > 1):  # opt.step(closure)
            wrapped = _measure_after_closure(self, args, kwargs)
            if wrapped is not None:
                return wrapped
        stat = self.schedule.is_stats(self.step)
        rec = self.tensors.grad_stats(full=self.full or stat)
        if stat:
            rec.update(self.tensors.weight_stats())
            self.tensors.snapshot()
        self._current = rec
        if self.guard is not None:
            self.guard.before_step(self.step, float(rec["global_norm"]), self.tensors.params,
                                   self.optimizers, self._guard_event)

    def _after_step(self, optimizer=None, args=None, kwargs=None) -> None:
        if self.guard is not None:
            self.guard.after_step(self.step, self.tensors.params, self.optimizers, self._guard_event)
        self._end_step()

    def _scaler_skipped(self, scale: torch.Tensor) -> None:
        """GradScaler found Inf/NaN in the scaled gradients and did not step the optimizer: not an
        optimizer step (no row, no statistics) but an ``amp_skip`` event; what the skipped
        backward measured is dropped, so no rule takes the overflow for an explosion."""
        self.store.event(self.step, "amp_skip", {
            "loss_scale": float(scale),
            "reason": "GradScaler found Inf/NaN in the scaled gradients; optimizer.step() skipped, scale reduced"})
        self._losses = []
        self._loss_scale = None
        self._current = None
        if self.probe.armed:
            self.probe.collect()

    def _guard_event(self, kind: str, detail: dict[str, Any]) -> None:
        self.store.event(self.step, kind, detail)
        if kind == "guard_skip":  # look closely for a while: which module makes the NaN
            self.schedule.force(range(self.step + 1, self.step + 1 + self.trace_steps))

    def _on_root_output(self, module, args, output) -> None:
        # no optimizer: the step ends when the backward pass through the model ends
        out = _first_grad_tensor(output)  # (output, hidden), a dict of outputs: the first that trains
        if out is None or not torch.is_grad_enabled():
            return

        def hook(grad):
            if not self._in_backward:
                self._in_backward = True
                torch.autograd.Variable._execution_engine.queue_callback(self._end_backward)

        out.register_hook(hook)

    def _end_backward(self) -> None:
        self._in_backward = False
        if self._closed:
            return
        self._before_step()
        self._awaiting_update = True

    def _on_root_input(self, module, args):
        # no optimizer: the model called again after a backward may mean the update is done
        armed = self.probe.armed
        if not self._end_manual_step():
            return None
        return None if armed else self.probe.enter(module, args)

    #: backward passes one hand-written step may gather (micro-batches) before it ends regardless
    max_manual_accumulation = 64

    def _end_manual_step(self) -> bool:
        """End the step of a loop without an optimizer once its update has happened: sampled
        weights changed since the step began. Until a first update is seen every backward is a
        step (a loop whose update never reaches the weights stays visible step by step); after
        it, backward passes that leave the weights alone are micro-batches of one step."""
        if not self._awaiting_update:
            return False
        moved = self._weights_moved()
        self._ever_moved |= moved
        if not moved and self._ever_moved and self._waited < self.max_manual_accumulation:
            self._waited += 1
            return False
        self._awaiting_update = False
        self._waited = 0
        self._end_step()
        self._mark_weights()
        return True

    @torch.no_grad()
    def _mark_weights(self) -> None:
        trained = [p for p in self._own_params if p.requires_grad and p.numel()]
        picks = {0, len(trained) // 3, 2 * len(trained) // 3, len(trained) - 1} if trained else set()
        self._marked = [trained[i] for i in sorted(picks)]
        self._marks = [_sample(p).clone() for p in self._marked]

    @torch.no_grad()
    def _weights_moved(self) -> bool:
        if not self._marks:
            return True
        return any(not torch.equal(_sample(p), mark) for p, mark in zip(self._marked, self._marks))

    def _end_step(self) -> None:
        if self._closed:
            return
        vectors = getattr(self, "_current", None) or self.tensors.grad_stats(full=self.full)
        self._current = None
        grad_norm = vectors.pop("global_norm", None)
        stat = self.schedule.is_stats(self.step)
        self._disarm_prior()
        prior = self._least_prior()
        if prior is not None:
            vectors["grad_prior_norm"] = prior
        calls: list = []
        if stat:
            upd = self.tensors.update_norm()
            if upd is not None:
                vectors["update_norm"] = upd
            mod_vectors, calls = self.probe.collect()
            if self._loss_scale is not None:  # δ of a GradScaler-scaled loss: divide the scale out
                if "delta" in mod_vectors:
                    mod_vectors["delta"] = mod_vectors["delta"] / self._loss_scale
                calls = [(m, v / self._loss_scale) for m, v in calls]
            vectors.update(mod_vectors)
            if self.probe.layout_changed:
                self._write_module_layout()
        now = time.perf_counter()
        self.schedule.observe(self.step, now - self._last_step_end)
        if stat and not self.schedule.is_stats(self.step + 1):
            self.probe.disarm()
        if len(self._losses) == 1:  # the common case: one backward, its loss as it is
            loss = self._losses[0]
        elif self._losses:
            loss = torch.stack(self._losses).float()
            loss = loss.sum() if self.loss_reduction == "sum" else loss.mean()
        else:
            loss = None
        self._losses = []
        self._loss_scale = None
        record = {
            "step": self.step, "time": time.time(), "loss": loss,
            "grad_norm": grad_norm, "step_time": now - self._last_step_end,
            "lr": [g["lr"] for o in self.optimizers for g in o.param_groups],
            "stats": stat, "vectors": vectors, "calls": calls,
            "extra": self._extra_next,  # w.log() between backward and step
        }
        self._extra_next = {}
        self._last_step_end = now
        self._pending.append(record)
        self._log_target = record
        self.step += 1
        self._flush_if_due()
        self._begin_step()

    def _flush_if_due(self) -> None:
        if len(self._pending) > self.flush_every or time.monotonic() - self._last_flush > self.flush_seconds:
            # the step just recorded stays: w.log() after opt.step() may still add to it
            self._hand_over(self._pending[:-1])
            self._pending = self._pending[-1:]

    def _write_module_layout(self) -> None:
        self.store.write_layout(
            params=self._param_rows(),
            modules=[(e["name"], e["type"], e["activation"], e["kind"]) for e in self.probe.entries],
        )
        self.probe.layout_changed = False

    def _param_rows(self):
        rows = []
        owner = {}
        for mname, m in self.model.named_modules():
            for _, p in m.named_parameters(recurse=False):
                owner.setdefault(id(p), mname)
        for n, p in zip(self.param_names, self.tensors.params):
            rows.append((n, owner.get(id(p), ""), tuple(p.shape), p.numel(), str(p.dtype).replace("torch.", "")))
        return rows

    def _saw_loss(self, loss: torch.Tensor) -> None:
        if self._closed:
            return
        if self._awaiting_update:  # a second backward before the model was called again
            self._end_manual_step()
        value = loss.detach()
        if value.dim():
            value = value.reshape(())
        if value.dtype != torch.float32:
            value = value.float()
        scale = getattr(loss, "_gradwatch_loss_scale", None)  # set by GradScaler.scale (integrations.amp)
        if scale is not None:
            value = value / scale
            self._loss_scale = scale
        self._losses.append(value)
        self._log_target = None  # a new step is in progress
        if not self._loss_graph_saved and loss.grad_fn is not None:
            self._loss_graph_saved = True
            self.store.set_meta(loss_graph=_graph_names(loss.grad_fn))

    # ------------------------------------------------------------ checkpoints
    def _schedule_from_start(self) -> None:
        """A fresh statistics schedule whose first statistics step is counted from this
        watcher's first step, as a new run's is from step 0."""
        self.schedule = StatsSchedule(self.every, first=self._start + self._first_stats_step,
                                      budget=self.schedule.budget)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to carry on as this one would have: the step number, the
        statistics schedule, the guard's history and snapshot, the dead-unit windows. Plain data
        and tensors: put it in your checkpoint (``torch.save``, ``weights_only`` loading works).

        Example:
            >>> # torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
            >>> #             "gradwatch": w.state_dict()}, "ckpt.pt")
        """
        return {
            "gradwatch_state": 1, "step": self.step, "out": str(Path(self.out).resolve()),
            "schedule": self.schedule.state_dict(),
            "guard": self.guard.state_dict() if self.guard is not None else None,
            "dead_units": {int(k): [int(n), t.detach().clone()] for k, (n, t) in self.probe._last_fired.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Carry on from a checkpoint's :meth:`state_dict`: the step numbers continue from its
        step (with ``resume=True``, the recorded steps from there on become superseded), and the
        schedule, guard and dead-unit windows are restored. Call it before the first step.

        Raises:
            WatchError: a step was already recorded by this watcher, or ``state`` is not a
                watcher's state.

        Example:
            >>> # ckpt = torch.load("ckpt.pt")
            >>> # with gw.watch(model, opt, out="runs/a", resume=True) as w:
            >>> #     w.load_state_dict(ckpt["gradwatch"])
        """
        if not isinstance(state, dict) or "gradwatch_state" not in state:
            raise WatchError("load_state_dict takes what Watcher.state_dict() returned (a dict with "
                             "'gradwatch_state'); pass the watcher state saved in your checkpoint")
        if self.step != self._start or self._pending:
            raise WatchError(f"load_state_dict must come before the first step; this watcher already "
                             f"recorded steps {self._start}..{self.step - 1}: call it right after watch()")
        self.step = self._start = int(state["step"])
        self._schedule_from_start()
        if state.get("schedule"):
            self.schedule.load_state_dict(state["schedule"])
        if self.guard is not None and state.get("guard"):
            self.guard.load_state_dict(state["guard"])
        for k, (n, t) in (state.get("dead_units") or {}).items():
            self.probe._last_fired[int(k)] = (int(n), t)
        if self.resume:
            self.restarted = self.store.restart(self.step, source="watcher state", time=time.time())
        self.probe.disarm()
        self._disarm_prior()
        self._begin_step()

    # ------------------------------------------------------------ user API
    def log(self, **scalars: Any) -> None:
        """Attach scalars to the step just finished (or, after a backward, to the step under way).

        ``loss=`` replaces the loss picked up from ``backward()``; other names are stored as
        extra scalars (e.g. ``accuracy=0.93``). Tensors stay on the device until the flush.

        Example:
            >>> # w.log(loss=loss, accuracy=acc)
        """
        target = self._log_target
        loss = scalars.pop("loss", None)
        if loss is not None and torch.as_tensor(loss).numel() != 1:
            raise WatchError(f"w.log(loss=...) takes one number, got a tensor of shape "
                             f"{tuple(torch.as_tensor(loss).shape)}; log its mean, e.g. w.log(loss=loss.mean())")
        if target is None:  # a step is under way: keep the values for it
            if loss is not None:
                self._losses = [torch.as_tensor(loss).detach().float().reshape(())]
            self._extra_next.update(scalars)
            return
        if loss is not None:
            target["loss"] = torch.as_tensor(loss).detach().float().reshape(())
        target["extra"].update(scalars)

    def set_meta(self, **values: Any) -> None:
        """Store JSON-serialisable metadata with the run (e.g. ``metrics={"accuracy": 0.97}``)."""
        self.store.set_meta(**values)

    def event(self, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Record a one-off event (shown in the report) at the current step."""
        self.store.event(self.step, kind, detail)

    def record_crash(self, exc: BaseException) -> None:
        """Record that the training code died, and any NaN/Inf scalar tensors in its frames
        (a ``loss`` that went NaN before ``backward()`` is seen only there)."""
        bad: dict[str, str] = {}
        tb = exc.__traceback__
        while tb is not None:
            for name, value in list(tb.tb_frame.f_locals.items())[:200]:
                if isinstance(value, torch.Tensor) and 0 < value.numel() <= 16 and value.is_floating_point():
                    with torch.no_grad():
                        if not bool(torch.isfinite(value).all()):
                            bad[name] = str(value.detach().flatten()[0].item())
            tb = tb.tb_next
        text = f"{type(exc).__name__}: {exc}"
        self.store.event(self.step, "crash", {
            "exception": text[:500], "nonfinite_locals": bad,
            "mentions_nonfinite": bool(re.search(r"\b(nan|inf)\b", str(exc), re.IGNORECASE)),
        })

    def flush(self, wait: bool = True) -> None:
        """Hand the pending records to the store (one transfer to the host for all of them).

        On the CPU the records go as they are and the store's thread makes the rows; on an
        accelerator the transfer is made here, on the training thread's stream. ``wait`` waits
        until they are committed.
        """
        self._hand_over(self._pending)
        self._pending = []
        if wait:
            self.store.flush()

    def _hand_over(self, pending: list[dict[str, Any]]) -> None:
        self._last_flush = time.monotonic()
        if not pending:
            return
        if pending[-1] is self._log_target:  # the store's thread gets its own copy of what w.log() changes
            last = dict(pending[-1], extra=dict(pending[-1]["extra"]))
            pending = pending[:-1] + [last]
        if self.tensors.device.type == "cpu":
            self.store.write_later(lambda: _to_host(pending))
        else:
            self.store.write_batch(*_to_host(pending))

    def detach(self) -> None:
        """Remove every hook, write what is pending, close the store. Safe to call twice."""
        if self._closed:
            return
        if self._awaiting_update:
            self._awaiting_update = False
            self._end_step()
        if self._extra_next and self._pending:
            self._pending[-1]["extra"].update(self._extra_next)
        self.probe.disarm()
        self._disarm_prior()
        for h in self._handles + self._opt_handles + self._manual_handles:
            h.remove()
        self._handles.clear()
        self._opt_handles.clear()
        self._manual_handles = []
        try:
            self.flush(wait=False)
            self.store.set_meta(ended=time.time(), steps=self.step)
        finally:
            self._closed = True
            _ACTIVE.pop(self.model, None)
            _set_live(self, False)
            if not _LIVE:
                _patch_torch(False)
            self.store.close()

    close = detach

    @property
    def hooks(self) -> int:
        """How many hooks this watcher has installed right now (0 after detach)."""
        return (len(self._handles) + len(self._opt_handles) + len(self._manual_handles)
                + len(self._prior_handles) + len(self.probe._handles))

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()


def watch(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **kwargs: Any) -> Watcher:
    """Watch a model's training; use as a context manager.

    Args:
        model: any ``torch.nn.Module``.
        optimizer: the optimizer training it (optional).
        **kwargs: see :class:`Watcher` (``out``, ``every``, ``stats``, ...).

    Raises:
        WatchError: the model or optimizer cannot be watched (the message says why and what to do).
        StoreError: ``out`` cannot be written.

    Example:
        >>> # with gw.watch(model, opt, out="runs/exp1") as w:
        >>> #     for x, y in loader:
        >>> #         loss = loss_fn(model(x), y)
        >>> #         opt.zero_grad(); loss.backward(); opt.step()
    """
    return Watcher(model, optimizer, **kwargs)


# ---------------------------------------------------------------- helpers


def _validate_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise WatchError(
            f"gradwatch.watch expects a torch.nn.Module, got {type(model).__name__}; "
            "pass your model, e.g. watch(model, optimizer)"
        )
    params = list(model.parameters())
    if not params:
        raise WatchError(
            f"{type(model).__name__} has no parameters, so there are no gradients to watch; "
            "watch the module that holds the trainable weights"
        )
    if any(p.is_meta for p in params):
        raise WatchError(
            "the model is on the meta device (no data yet); materialise it first, e.g. "
            "model.to_empty(device='cpu') and initialise its weights, then watch it"
        )
    if not any(p.requires_grad for p in params):
        raise WatchError(
            "every parameter of the model is frozen (requires_grad=False); nothing trains, so "
            "there is nothing to watch — unfreeze the layers you train"
        )


#: torch optimizers that count their steps in their state (``state[p]['step']``)
_COUNTS_STEPS = tuple(getattr(torch.optim, n) for n in (
    "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "ASGD", "Rprop", "SparseAdam",
    "Adafactor") if hasattr(torch.optim, n))


def optimizer_step(optimizer: torch.optim.Optimizer | None) -> int | None:
    """The step count an optimizer's state holds (Adam's ``state[p]['step']``): 0 for such an
    optimizer with no state yet (a script that restarted from scratch), None for one that keeps
    no count (plain SGD).

    Example:
        >>> p = torch.nn.Parameter(torch.ones(2)); opt = torch.optim.Adam([p])
        >>> optimizer_step(opt), optimizer_step(torch.optim.SGD([p], lr=0.1))
        (0, None)
        >>> for _ in range(3):
        ...     p.grad = torch.ones(2); opt.step()
        >>> optimizer_step(opt)
        3
    """
    if optimizer is None:
        return None
    steps = [v["step"] for v in optimizer.state.values() if isinstance(v, dict) and "step" in v]
    if not steps:
        return 0 if isinstance(optimizer, _COUNTS_STEPS) and not optimizer.state else None
    return max(int(float(s)) for s in steps)


def _start_step(given: int | None, optimizer, last: int | None, resume: bool) -> tuple[int, str]:
    """The first step number and where it came from (see Watcher's ``resume``)."""
    if given is not None:
        return given, "given"
    if not resume:
        return 0, "start"
    from_opt = optimizer_step(optimizer)
    if from_opt is not None:
        return from_opt, "optimizer state"
    if last is not None:
        return last + 1, "record"
    return 0, "start"


def _sample(p: torch.Tensor, n: int = 64) -> torch.Tensor:
    """About ``n`` entries spread evenly over a tensor (a view: no copy)."""
    flat = p.detach().reshape(-1)
    return flat[::max(1, flat.numel() // n)]


def _first_grad_tensor(output: Any) -> torch.Tensor | None:
    """The first tensor that records gradients in a module's output (a tensor, a tuple or list,
    a dict such as a Hugging Face ModelOutput), or None."""
    if isinstance(output, torch.Tensor):
        return output if output.requires_grad else None
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else ()
    return next((t for t in items if isinstance(t, torch.Tensor) and t.requires_grad), None)


def _measure_after_closure(watcher: Watcher, args, kwargs):
    """``opt.step(closure)`` (Lightning's default loop, LBFGS): the gradients exist only once the
    closure has run its backward — and, in Lightning, its clipping. Returns the step's
    ``(args, kwargs)`` with a closure that measures on its first call, before the update (None
    when there is no closure)."""
    args, kwargs = tuple(args or ()), dict(kwargs or {})  # args[0] is the optimizer itself
    closure = kwargs.get("closure") if kwargs.get("closure") is not None else (args[1] if len(args) > 1 else None)
    if not callable(closure):
        return None
    calls = []

    def measured():
        out = closure()
        if not calls:
            calls.append(1)
            watcher._before_step()
        return out

    if kwargs.get("closure") is not None:
        kwargs["closure"] = measured
    else:
        args = args[:1] + (measured,) + args[2:]
    return args, kwargs


def _graph_names(fn, depth: int = 8, limit: int = 24) -> list[str]:
    """Names of the autograd nodes nearest the loss, breadth first (e.g. MseLossBackward0)."""
    return [node.name() for node in itertools.islice(_graph_nodes(fn, depth), limit)]


def _to_host(pending: list[dict[str, Any]]):
    """One device→host transfer for a batch of records; returns (steps, series, calls) rows.

    The records' tensors are stacked by (device, shape): a batch of hundreds of steps is a
    handful of ``torch.stack`` calls and one copy, not a conversion per number.
    """
    groups: dict[tuple, list[tuple[Any, Any, torch.Tensor, bool]]] = {}

    def put(container, key, value, is_vector=False):
        if isinstance(value, torch.Tensor):
            groups.setdefault((value.device, tuple(value.shape)), []).append((container, key, value, is_vector))

    for r in pending:
        put(r, "loss", r["loss"])
        put(r, "grad_norm", r["grad_norm"])
        for i, lr in enumerate(r["lr"]):
            put(r["lr"], i, lr)
        for k, v in r["extra"].items():
            put(r["extra"], k, v)
        for k, v in r["vectors"].items():
            put(r["vectors"], k, v, True)
        r["calls"] = [list(c) for c in r["calls"]]
        for c in r["calls"]:
            put(c, 1, c[1], True)
    if groups:
        slots = [slot for items in groups.values() for slot in items]
        parts = [torch.stack([t.detach() for _, _, t, _ in items]).reshape(-1).float() for items in groups.values()]
        if len({t.device for t in parts}) > 1:
            parts = [t.cpu() for t in parts]
        host = torch.cat(parts).cpu().numpy()
        pos = 0
        for container, key, value, is_vector in slots:
            n = value.numel()
            chunk = host[pos:pos + n]
            pos += n
            container[key] = chunk if is_vector else float(chunk[0])
    steps = [{k: r[k] for k in ("step", "time", "loss", "grad_norm", "step_time", "lr", "stats", "extra")}
             for r in pending]
    series = [(r["step"], r["vectors"]) for r in pending if r["vectors"]]
    calls = [(r["step"], c[0], c[1]) for r in pending for c in r["calls"]]
    return steps, series, calls


def _version() -> str:
    from . import __version__

    return __version__


@atexit.register
def _close_all() -> None:
    for w in list(_LIVE):
        try:
            w.detach()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
