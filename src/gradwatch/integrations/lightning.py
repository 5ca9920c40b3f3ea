"""PyTorch Lightning: ``GradwatchCallback``, a thin adapter over the watcher.

Example:
    >>> # trainer = L.Trainer(callbacks=[GradwatchCallback()]); trainer.fit(model, data)
    >>> # -> <log_dir>/gradwatch/run.db and report.html; gradwatch/* metrics in the logger
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("gradwatch.integrations.lightning needs Lightning: pip install lightning "
                      "(or pip install 'gradwatch[integrations]')") from e

from ..watcher import Watcher
from .summary import Summary, finish


class GradwatchCallback(pl.Callback):
    """Watch a Lightning fit: record every optimizer step, diagnose at the end of training,
    write the report next to the Lightning logs and log the headline numbers to the loggers.

    **Which gradients.** The watcher reads the gradients from the torch optimizer's own step
    hooks, at the moment the optimizer reads them: after the backward of every accumulated
    micro-batch, after AMP unscaling (``precision="16-mixed"``) and after Lightning's gradient
    clipping (``gradient_clip_val``). That is later than Lightning's ``on_before_optimizer_step``
    hook, which sees them unscaled but *before* clipping. Steps the GradScaler skips (Inf/NaN
    found) are recorded as ``amp_skip`` events, not steps. The recorded loss of a step is the
    loss its optimizer step minimises: the sum of the micro-batch losses Lightning divided by
    ``accumulate_grad_batches``.

    **Resuming.** When the fit resumes from a checkpoint (``fit(ckpt_path=...)``), the record
    continues: the step numbers carry on from the trainer's ``global_step``, the steps recorded
    after that checkpoint (trained again now) are kept as superseded, a ``restart`` event marks it,
    and the watcher's schedule, guard and dead-unit state come back from the checkpoint, where
    Lightning keeps this callback's :meth:`state_dict` — with the record's directory, so a resumed
    fit writing its logs to a new ``version_N`` still continues the record it began.

    Args:
        out: run directory (default: the record the checkpoint names, else
            ``<trainer.log_dir>/gradwatch``).
        every: slow statistics (δ, activations, updates) every ``every`` steps.
        guard: ``True`` or a :class:`~gradwatch.guard.Guard`: skip non-finite or exploding steps.
        report: write ``report.html`` at the end of training.
        quiet: do not print the diagnosis.
        resume: continue the record in ``out``; default (None): when the fit resumes from a checkpoint.
        overwrite: replace a record already in ``out`` (otherwise a fresh fit into a directory
            that holds one is refused).
        **watch_kwargs: passed to :class:`~gradwatch.watcher.Watcher` (``stats``, ``precision``…).

    Attributes:
        watcher: the live watcher during ``fit`` (None before and after).
        summary: the :class:`~gradwatch.integrations.summary.Summary` after ``fit``.

    Example:
        >>> # cb = GradwatchCallback(every=20, guard=True)
        >>> # L.Trainer(callbacks=[cb], gradient_clip_val=1.0).fit(model, loader)
        >>> # cb.summary.diagnosis.verdict
    """

    def __init__(self, out: str | os.PathLike | None = None, every: int = 10, guard: bool = False,
                 report: bool = True, quiet: bool = False, resume: bool | None = None, overwrite: bool = False,
                 **watch_kwargs: Any) -> None:
        super().__init__()
        self.resume = resume
        self.overwrite = overwrite
        self._state: dict[str, Any] | None = None  # the watcher state a checkpoint brought back
        self.out = out
        self.every = every
        self.guard = guard
        self.report = report
        self.quiet = quiet
        self.watch_kwargs = watch_kwargs
        self.watcher: Watcher | None = None
        self.summary: Summary | None = None

    def state_dict(self) -> dict[str, Any]:
        """The watcher's state (step, schedule, guard, record directory), kept by Lightning in
        every checkpoint."""
        if self.watcher is not None:
            return self.watcher.state_dict()
        return dict(self._state or {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning gives back the state saved in the checkpoint a fit resumes from."""
        self._state = dict(state_dict) if state_dict else None

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        resuming = trainer.ckpt_path is not None if self.resume is None else bool(self.resume)
        state = self._state if resuming else None
        if self.out is not None:
            out = Path(self.out)
        elif state and state.get("out"):
            out = Path(state["out"])  # the record this checkpoint belongs to
        else:
            out = Path(trainer.log_dir or trainer.default_root_dir) / "gradwatch"
        opts = list(trainer.optimizers)
        kwargs = dict(out=out, every=self.every, guard=self.guard, **self.watch_kwargs)
        if resuming:
            kwargs.update(resume=True, start_step=int(trainer.global_step))
        elif self.overwrite:
            kwargs["overwrite"] = True
        if trainer.world_size > 1:  # DDP: every rank watches, rank 0 writes, all get the diagnosis
            from .distributed import DistributedWatcher as cls

            kwargs.update(report=self.report, quiet=self.quiet)
        else:
            cls = Watcher
        self.watcher = cls(pl_module, opts[0] if opts else None, **kwargs)
        self.watcher.loss_reduction = "sum"  # Lightning divides each micro-batch loss by the accumulation
        for opt in opts[1:]:
            self.watcher.add_optimizer(opt)
        if state:
            self.watcher.load_state_dict(state)
        self.watcher.set_meta(framework={"name": "lightning", "version": pl.__version__,
                                         "precision": str(trainer.precision),
                                         "accumulate_grad_batches": trainer.accumulate_grad_batches,
                                         "gradient_clip_val": trainer.gradient_clip_val})

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.watcher is not None:
            self.watcher.record_crash(exception)
            self._finish(trainer)

    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._finish(trainer)

    def _finish(self, trainer: "pl.Trainer") -> None:
        w, self.watcher = self.watcher, None
        if w is None:
            return
        self._state = w.state_dict()
        w.detach()
        if not trainer.is_global_zero:
            self.summary = getattr(w, "summary", None)
            return
        self.summary = getattr(w, "summary", None) or finish(w.out, report=self.report, quiet=self.quiet)
        for logger in trainer.loggers:
            logger.log_metrics(self.summary.metrics, step=trainer.global_step)
            logger.save()


__all__ = ["GradwatchCallback"]
