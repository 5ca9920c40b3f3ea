"""Hugging Face Transformers: ``GradwatchTrainerCallback`` for ``Trainer``, a thin adapter over
the watcher.

Example:
    >>> # Trainer(model, args, train_dataset=ds, callbacks=[GradwatchTrainerCallback()]).train()
    >>> # -> <output_dir>/gradwatch/run.db and report.html
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("gradwatch.integrations.transformers needs Hugging Face Transformers: pip install "
                      "transformers accelerate (or pip install 'gradwatch[integrations]')") from e

from ..watcher import Watcher
from .summary import Summary, finish


def _torch_optimizer(opt: Any) -> torch.optim.Optimizer | None:
    """The torch optimizer inside Accelerate's ``AcceleratedOptimizer`` (itself an ``Optimizer``
    subclass whose hooks are not the inner optimizer's), or any such wrapper."""
    for _ in range(4):
        inner = getattr(opt, "optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer):
            break
        opt = inner
    return opt if isinstance(opt, torch.optim.Optimizer) else None


def _unwrap_model(model: Any) -> Any:
    while hasattr(model, "module") and isinstance(getattr(model, "module"), torch.nn.Module):
        model = model.module  # DistributedDataParallel, DataParallel
    return model


#: the watcher's state inside each of the Trainer's checkpoint folders
STATE_FILE = "gradwatch_state.pt"


def _checkpoint_dir(args, state) -> Path:
    """Where the Trainer keeps the checkpoint of ``state.global_step`` (its own naming)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


class GradwatchTrainerCallback(TrainerCallback):
    """Watch a ``transformers.Trainer`` run: record every optimizer step, diagnose at the end of
    training and write the report into ``<output_dir>/gradwatch``.

    **Which gradients.** The watcher reads them in the torch optimizer's own step hook: after
    the backward of every accumulated micro-batch, after the Trainer's clipping
    (``max_grad_norm``) and after AMP unscaling — the gradients the optimizer uses, as HF's
    ``on_pre_optimizer_step`` sees them. (The ``grad_norm`` the Trainer logs is the norm
    *before* clipping.) The recorded loss of a step is the sum of its micro-batch losses as
    ``backward()`` saw them, which the Trainer scales by the accumulation: the step's loss.

    **Resuming.** ``trainer.train(resume_from_checkpoint=...)`` continues the record: the step
    numbers carry on from the checkpoint's ``global_step``, the steps recorded after it (trained
    again now) are kept as superseded and a ``restart`` event marks it. Each checkpoint the
    Trainer saves (``<output_dir>/checkpoint-N``) also gets the watcher's state
    (:meth:`~gradwatch.watcher.Watcher.state_dict`: statistics schedule, guard history and
    snapshot, dead-unit windows) as ``gradwatch_state.pt``, and a resumed run loads it from the
    checkpoint of its ``global_step`` when there is one. A fresh ``train()`` into
    an ``output_dir`` that already holds a record is refused unless ``overwrite=True`` or
    ``TrainingArguments(overwrite_output_dir=True)``.

    Args:
        out: run directory (default ``<args.output_dir>/gradwatch``).
        every: slow statistics (δ, activations, updates) every ``every`` steps.
        guard: ``True`` or a :class:`~gradwatch.guard.Guard`: skip non-finite or exploding steps.
        report: write ``report.html`` at the end of training.
        quiet: do not print the diagnosis.
        resume: continue the record in ``out``; default (None): when the Trainer resumes from a
            checkpoint (its ``global_step`` is past 0 as training begins).
        overwrite: replace a record already in ``out``.
        **watch_kwargs: passed to :class:`~gradwatch.watcher.Watcher`.

    Attributes:
        watcher: the live watcher during ``train()``.
        summary: :class:`~gradwatch.integrations.summary.Summary` after ``train()``; its headline
            numbers are also appended to ``trainer.state.log_history``.

    Example:
        >>> # cb = GradwatchTrainerCallback(every=20)
        >>> # Trainer(model, args, train_dataset=ds, callbacks=[cb]).train(); cb.summary.diagnosis
    """

    def __init__(self, out: str | os.PathLike | None = None, every: int = 10, guard: bool = False,
                 report: bool = True, quiet: bool = False, resume: bool | None = None, overwrite: bool = False,
                 **watch_kwargs: Any) -> None:
        self.resume = resume
        self.overwrite = overwrite
        self.out = out
        self.every = every
        self.guard = guard
        self.report = report
        self.quiet = quiet
        self.watch_kwargs = watch_kwargs
        self.watcher: Watcher | None = None
        self.summary: Summary | None = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs) -> None:
        opt = _torch_optimizer(optimizer)
        if model is None or opt is None:
            raise ValueError("GradwatchTrainerCallback needs the Trainer's model and optimizer; "
                             "add it with Trainer(..., callbacks=[GradwatchTrainerCallback()])")
        out = Path(self.out) if self.out is not None else Path(args.output_dir) / "gradwatch"
        cls, extra = Watcher, {}
        if args.world_size > 1:  # every rank watches, rank 0 writes, all get the diagnosis
            from .distributed import DistributedWatcher as cls

            extra = {"report": self.report, "quiet": self.quiet}
        resuming = state.global_step > 0 if self.resume is None else bool(self.resume)
        if resuming:
            extra.update(resume=True, start_step=int(state.global_step))
        elif self.overwrite or getattr(args, "overwrite_output_dir", False):
            extra["overwrite"] = True
        self.watcher = cls(_unwrap_model(model), opt, out=out, every=self.every, guard=self.guard,
                           **extra, **self.watch_kwargs)
        saved = _checkpoint_dir(args, state) / STATE_FILE
        if resuming and saved.is_file():
            import torch

            self.watcher.load_state_dict(torch.load(saved, weights_only=True))
        self.watcher.loss_reduction = "sum"  # the Trainer scales each micro-batch loss by the accumulation
        import transformers

        self.watcher.set_meta(framework={
            "name": "transformers", "version": transformers.__version__,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "max_grad_norm": args.max_grad_norm, "fp16": args.fp16, "bf16": args.bf16})

    def on_save(self, args, state, control, **kwargs) -> None:
        """Put the watcher's state into the checkpoint the Trainer has just written."""
        ckpt = _checkpoint_dir(args, state)
        if self.watcher is not None and state.is_world_process_zero and ckpt.is_dir():
            import torch

            torch.save(self.watcher.state_dict(), ckpt / STATE_FILE)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        w, self.watcher = self.watcher, None
        if w is None:
            return
        w.detach()
        self.summary = getattr(w, "summary", None)
        if self.summary is None and state.is_world_process_zero:
            self.summary = finish(w.out, report=self.report, quiet=self.quiet)
        if self.summary is not None:
            state.log_history.append({**self.summary.metrics, "step": state.global_step})


__all__ = ["GradwatchTrainerCallback"]
