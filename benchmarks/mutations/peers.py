"""Peer tools run on the same cases: Lightning's loss-spike detector.

``lightning.fabric.utilities.spike.SpikeDetection`` (the logic behind
``lightning.pytorch.callbacks.SpikeDetection``) is a function of the loss sequence alone: it
keeps a running mean over a window and raises ``TrainingSpikeException`` at the first step
whose loss is non-finite or above the mean by more than ``rtol`` × the mean (and not an
improvement on the previous step). It is fed the very losses the run printed, step by step,
with its defaults (window 10, warmup 1, rtol 2), through the few members of a single-process
``Fabric`` it calls. It names no cause, so its column counts runs flagged at all.

Example:
    >>> spike_step([1.0, 0.9, 0.8, 50.0, 0.7])
    3
"""

from __future__ import annotations

import math
import tempfile


class _SingleProcess:
    """The parts of ``Fabric`` that SpikeDetection uses, for one process on the CPU."""

    global_rank = 0

    class strategy:  # noqa: N801 - mirrors fabric.strategy
        import torch as _torch

        root_device = _torch.device("cpu")

        @staticmethod
        def barrier():
            return None

        @staticmethod
        def reduce_boolean_decision(decision, all=True):  # noqa: A002 - Lightning's keyword
            return decision


def spike_step(losses: list[float | None]) -> int | None:
    """The first step at which Lightning's SpikeDetection (defaults) stops the run, or None."""
    import warnings

    import torch
    from lightning.fabric.utilities.spike import SpikeDetection, TrainingSpikeException

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = SpikeDetection(exclude_batches_path=tmp)
        fabric = _SingleProcess()
        for i, v in enumerate(losses):
            value = torch.tensor(math.nan if v is None else float(v))
            try:
                detector.on_train_batch_end(fabric, value, None, i)
            except TrainingSpikeException:
                return i
    return None
