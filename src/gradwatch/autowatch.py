"""Zero-code watching: every optimizer and module of an unmodified script, via PyTorch's
global hooks (``register_optimizer_step_pre_hook``, ``register_module_forward_pre_hook`` /
``register_module_forward_hook``) and the optimizers' construction.

The optimizers are learnt as they are built. The model gets its
:class:`~gradwatch.watcher.Watcher` as its first training forward pass begins — the first
top-level call, with gradients enabled, of a module with trainable parameters — so step 0 is
measured in full and the guard covers it. The watcher trains with the optimizers that hold the
model's parameters; where none does (updates written by hand, ``p -= lr * p.grad``), a step is a
backward pass through the model followed by the parameters' change. When the model cannot be told
at its first call (one optimizer over parts called one by one), the first optimizer step decides,
as before: the top-level module holding most of its parameters. The global module hooks are then
removed, so the rest of the run pays only for the watcher.

Example:
    >>> # with AutoWatch(out="runs/x") as aw:
    >>> #     runpy.run_path("train.py", run_name="__main__")
"""

from __future__ import annotations

import gc
import sys
import weakref
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

from .store import StoreError
from .watcher import WatchError, Watcher, is_loss


class AutoWatch:
    """Attaches a watcher to the first model an optimizer steps, through global hooks.

    Args:
        out: run directory.
        **watch_kwargs: passed to :class:`Watcher` (``every``, ``stats``...).
    """

    def __init__(self, out: str, remedy: str | None = None, max_steps: int | None = None,
                 **watch_kwargs: Any) -> None:
        from .inject import split_combination

        # "use_he_init+add_warmup:25": one model remedy at most, step remedies in their order
        self.model_remedy, self.step_remedies, guard = (
            split_combination(remedy) if remedy is not None else (None, [], False))
        self.out = out
        self.watch_kwargs = watch_kwargs
        if guard:
            self.watch_kwargs["guard"] = True
        self.max_steps = max_steps
        self._remedied: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()
        self.watcher: Watcher | None = None
        self._roots: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()
        self._first_args: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
        self._tracing = False
        self._depth = 0
        self._declined: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()
        self._ignored: "weakref.WeakSet[torch.optim.Optimizer]" = weakref.WeakSet()
        self._module_handles = [
            module_hooks.register_module_forward_pre_hook(self._pre),
            module_hooks.register_module_forward_hook(self._post, always_call=True),
        ]
        self._opt_handle = optimizer_hooks.register_optimizer_step_pre_hook(self._on_step)
        self._optimizers: "weakref.WeakSet[torch.optim.Optimizer]" = weakref.WeakSet()
        self._learn_optimizers()
        self._first_loss: torch.Tensor | None = None
        self._capture_first_loss()

    # every optimizer the script builds, so the model can be watched before its first step
    def _learn_optimizers(self) -> None:
        original = torch.optim.Optimizer.__init__
        known = self._optimizers

        def __init__(opt, *args, **kwargs):
            original(opt, *args, **kwargs)
            known.add(opt)

        self._optimizer_init = __init__
        self._original_optimizer_init = original
        torch.optim.Optimizer.__init__ = __init__

    def _forget_optimizers(self) -> None:
        if torch.optim.Optimizer.__dict__.get("__init__") is self._optimizer_init:
            torch.optim.Optimizer.__init__ = self._original_optimizer_init

    # the first step's backward runs before any watcher exists: keep its loss for the watcher
    def _capture_first_loss(self) -> None:
        original = torch.Tensor.backward
        aw = self

        def backward(tensor, *args, **kwargs):
            if is_loss(tensor) and tensor.grad_fn is not None:
                aw._first_loss = tensor
            return original(tensor, *args, **kwargs)

        self._loss_capture = backward
        self._original_backward = original
        torch.Tensor.backward = backward

    def _release_first_loss(self) -> torch.Tensor | None:
        if getattr(torch.Tensor, "backward", None) is self._loss_capture:
            torch.Tensor.backward = self._original_backward
        loss, self._first_loss = self._first_loss, None
        return loss

    # global module hooks: remember the modules called at the top level
    def _pre(self, module, args):
        if self._tracing:  # the watcher's traced pass on a copy of the model: not the script's call
            return
        new_args = None
        if self._depth == 0:
            self._stop_if_done()  # a trial's step budget, also where no optimizer makes the steps
            self._roots[module] = self._roots.get(module, 0) + 1
            if self.watcher is None and module not in self._first_args and torch.is_grad_enabled():
                self._first_args[module] = args  # one batch per top-level module, until the watcher exists
            if self.model_remedy and module not in self._remedied and torch.is_grad_enabled() \
                    and any(p.requires_grad for p in module.parameters()):
                from .inject import apply_to_model

                self._remedied.add(module)  # the traced forward inside must not apply it again
                apply_to_model(self.model_remedy, module, example=args)
                for m in module.modules():
                    self._remedied.add(m)
                print(f"gradwatch: applied {self.model_remedy} to {type(module).__name__}", file=sys.stderr)
            if self.watcher is None and torch.is_grad_enabled() and module not in self._declined:
                new_args = self._attach_at_forward(module, args)
        self._depth += 1
        return new_args

    def _attach_at_forward(self, module: nn.Module, args: tuple):
        """Watch ``module`` from this, its first training call, with the optimizers that hold its
        parameters. Returns the forward's arguments as the watcher's probe replaced them (or None)."""
        params = list(module.parameters())
        if not any(p.requires_grad for p in params):
            self._declined.add(module)
            return None
        if any(nn.parameter.is_lazy(p) for p in params):
            return None  # shapes come with this call: watch from the next one
        own = {id(p) for p in params}
        opts = [o for o in list(self._optimizers) if o not in self._ignored
                and any(id(p) in own for g in o.param_groups for p in g["params"])]
        if not opts and any(o not in self._ignored for o in list(self._optimizers)):
            # the script trains with optimizers, none of them this module's (a frozen feature
            # extractor, a teacher, a loss network): the first optimizer step finds the model
            self._declined.add(module)
            return None
        held = {id(p) for o in opts for g in o.param_groups for p in g["params"]}
        root = module
        if not held <= own:  # the optimizer trains more than this module: the model holds them all
            root = _tightest(_live_modules(), held, whole=True)
            if root is None:
                self._declined.add(module)  # parts called one by one: the first step decides
                return None
        try:
            watcher = Watcher(root, opts[0] if opts else None, out=self.out, first_stats_step=0,
                              **self.watch_kwargs)
            for o in opts[1:]:
                watcher.add_optimizer(o)
        except (WatchError, StoreError) as e:  # the script goes on, unwatched: never fail it for our sake
            self._declined.add(module)
            print(f"gradwatch: this model is not watched: {e}", file=sys.stderr)
            return None
        self._release_first_loss()
        # without an optimizer step to stop at, a step budget is kept at the model's calls
        self._adopt(watcher, args, keep_module_hooks=self.max_steps is not None)
        return watcher.probe.enter(root, args) if root is module else None

    def _adopt(self, watcher: Watcher, first_args: tuple | None, keep_module_hooks: bool = False) -> None:
        """Make ``watcher`` the run's: describe what only a forward pass shows from the first
        batch, hold no batch any longer, and drop the global module hooks unless a model remedy or
        ``keep_module_hooks`` still needs the top-level calls."""
        self.watcher = watcher
        self._first_args = weakref.WeakKeyDictionary()
        if first_args is not None:
            self._tracing = True
            try:
                watcher.describe_forward(*first_args)  # residual blocks written in forward()
            except Exception:  # noqa: BLE001 - a forward that cannot be traced on a copy is not described
                pass
            finally:
                self._tracing = False
        if not self.model_remedy and not keep_module_hooks:
            self._remove_module_hooks()

    def _post(self, module, args, output):
        if self._tracing:
            return
        self._depth = max(0, self._depth - 1)

    def _stop_if_done(self) -> None:
        w = self.watcher
        if w is not None and self.max_steps is not None and w.step >= self.max_steps:
            from .inject import StopAfter

            raise StopAfter(f"stopped after {self.max_steps} steps")

    def _remove_module_hooks(self) -> None:
        for h in self._module_handles:
            h.remove()
        self._module_handles = []

    def _on_step(self, optimizer, args, kwargs) -> None:
        for step_remedy in self.step_remedies:
            step_remedy.before_step(optimizer)
        w = self.watcher
        self._stop_if_done()
        if w is not None and (optimizer in w.optimizers or optimizer in self._ignored):
            return
        params = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if w is not None and not w.optimizers and not (params & set(w._param_ids)):
            # the watched model has no optimizer, and this one trains another module: often an
            # optimizer built over a copy of the model, whose updates never reach the model trained
            self._ignored.add(optimizer)
            names = sorted({type(m).__name__ for m in _live_modules()
                            if any(id(p) in params for p in m.parameters(recurse=False))})
            _note_foreign_optimizer(w, optimizer, len(params), names,
                                    f"a {type(optimizer).__name__} steps parameters of none of the watched "
                                    f"{type(w.model).__name__}'s modules")
            print(f"gradwatch: a {type(optimizer).__name__} steps parameters outside the watched "
                  f"{type(w.model).__name__}; not watched", file=sys.stderr)
            return
        root = self._find_root(params)
        if root is None:
            self._ignored.add(optimizer)
            print("gradwatch: an optimizer steps parameters of no module seen; not watched", file=sys.stderr)
            return
        if w is None and not self._roots and _has_closure(args, kwargs):
            return  # opt.step(closure) before any forward: the closure's forward attaches the watcher
        if w is None:
            try:
                watcher = Watcher(root, optimizer, out=self.out, first_stats_step=1, **self.watch_kwargs)
            except (WatchError, StoreError) as e:  # the script goes on, unwatched: never fail it for our sake
                self._ignored.add(optimizer)
                print(f"gradwatch: this optimizer is not watched: {e}", file=sys.stderr)
                return
            first_loss = self._release_first_loss()
            if not any(any(c is m for c in root.modules()) for m in self._roots):
                # the modules called are not the ones it trains: an optimizer over a copy
                called = sorted({_script_name(m) for m in self._roots if any(p.requires_grad for p in m.parameters())})
                if called:
                    _note_foreign_optimizer(watcher, optimizer, len(params), called,
                                            f"the {type(optimizer).__name__} steps {_script_name(root)}, which is "
                                            f"never called, while {', '.join(called[:3])} run")
            if first_loss is not None:
                watcher._saw_loss(first_loss)
            self._adopt(watcher, self._first_args.get(root))
        elif params <= set(w._param_ids):
            try:
                w.add_optimizer(optimizer)
            except WatchError as e:
                self._ignored.add(optimizer)
                print(f"gradwatch: a second optimizer is not watched: {e}", file=sys.stderr)
        else:
            self._ignored.add(optimizer)
            print(
                f"gradwatch: a second model ({type(root).__name__}) has its own optimizer; "
                f"only the first ({type(w.model).__name__}) is watched",
                file=sys.stderr,
            )

    def _find_root(self, params: set[int]) -> nn.Module | None:
        """The model an optimizer trains: of the modules called at the top level, the one
        holding most of its parameters (then the tightest fit). When that one does not hold them
        all — parts kept in an ``nn.ModuleDict`` and called one by one (``head(enc(emb(x)))``) —
        the smallest live module that holds them all, so every parameter has a name; with no
        such module (an encoder and a decoder, one optimizer over both), the parts joined in an
        ``nn.ModuleDict`` named after the script's variables (:func:`_join`)."""
        live = None if self._roots else _live_modules()
        candidates = list(self._roots.keys()) or live  # no forward seen: every live module
        best = _tightest(candidates, params)
        if best is None or not params <= {id(p) for p in best.parameters()}:
            container = _tightest(live if live is not None else _live_modules(), params, whole=True)
            best = container or _join(candidates, params) or best
        return best

    def note_crash(self, exc: BaseException) -> None:
        """Tell the watcher (if any) that the script died with ``exc``."""
        if self.watcher is not None:
            self.watcher.record_crash(exc)

    def close(self) -> Watcher | None:
        """Remove the global hooks and detach the watcher (commits the record)."""
        self._remove_module_hooks()
        self._release_first_loss()
        self._forget_optimizers()
        if self._opt_handle is not None:
            self._opt_handle.remove()
            self._opt_handle = None
        if self.watcher is not None:
            self.watcher.detach()
        return self.watcher

    def __enter__(self) -> "AutoWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _note_foreign_optimizer(watcher: Watcher, optimizer: torch.optim.Optimizer, n_params: int,
                            modules: list[str], reason: str) -> None:
    """The ``foreign_optimizer`` event the diagnosis reads (modules_without_optimizer)."""
    watcher.event("foreign_optimizer", {"optimizer": type(optimizer).__name__, "parameters": n_params,
                                        "modules": modules[:8], "reason": reason})


def _script_name(module: nn.Module) -> str:
    """The script's own name for a module (``model``, ``ema``), or its class name."""
    script = getattr(sys.modules.get("__main__"), "__dict__", {})
    for k, v in script.items():
        if v is module and k.isidentifier() and not k.startswith("_"):
            return f"'{k}' ({type(module).__name__})"
    return type(module).__name__


def _has_closure(args, kwargs) -> bool:
    return any(callable(a) and not isinstance(a, torch.optim.Optimizer) for a in (*(args or ()), *(kwargs or {}).values()))


def _tightest(modules: list[nn.Module], params: set[int], whole: bool = False) -> nn.Module | None:
    """The module holding most of ``params`` (with ``whole``: all of them), fewest parameters
    of its own first among equals; None if none holds any (or, with ``whole``, all)."""
    best, best_key = None, None
    for m in modules:
        own = {id(p) for p in m.parameters()}
        overlap = len(own & params)
        if overlap == 0 or (whole and overlap < len(params)):
            continue
        key = (overlap, -len(own))
        if best_key is None or key > best_key:
            best, best_key = m, key
    return best


def _live_modules() -> list[nn.Module]:
    """Every ``nn.Module`` alive in the process (the garbage collector's view)."""
    import warnings

    with warnings.catch_warnings():  # isinstance() on some lazy torch objects warns (torch.distributed.reduce_op)
        warnings.simplefilter("ignore")
        return [o for o in gc.get_objects() if isinstance(o, nn.Module)]


def _join(candidates: list[nn.Module], params: set[int]) -> nn.Module | None:
    """The top-level modules that together hold ``params`` (each holding some), in one
    ``nn.ModuleDict`` keyed by the names the script gave them (``encoder``, ``decoder``; the class
    name where it has none); None when they do not hold all of ``params``."""
    parts = [m for m in candidates if any(id(p) in params for p in m.parameters())]
    parts = [m for m in parts if not any(o is not m and any(c is m for c in o.modules()) for o in parts)]
    covered = {id(p) for m in parts for p in m.parameters()}
    if len(parts) < 2 or not params <= covered:
        return None
    script = getattr(sys.modules.get("__main__"), "__dict__", {})
    by_id = {id(v): k for k, v in script.items() if isinstance(v, nn.Module) and k.isidentifier()}
    names: dict[str, nn.Module] = {}
    for i, m in enumerate(parts):
        name = by_id.get(id(m)) or type(m).__name__.lower()
        names[name if name not in names else f"{name}_{i}"] = m
    return nn.ModuleDict(names)
