"""Where users train: adapters over the framework-free watcher, each imported only when used.

========================================  ====================================================
module                                    what
========================================  ====================================================
``gradwatch.integrations.lightning``      ``GradwatchCallback`` for PyTorch Lightning
``gradwatch.integrations.transformers``   ``GradwatchTrainerCallback`` for the HF ``Trainer``
``gradwatch.integrations.distributed``    ``DistributedWatcher`` for DDP / FSDP2 jobs
``gradwatch.integrations.sinks``          TensorBoard, MLflow and W&B sinks
``gradwatch.integrations.amp``            GradScaler support (installed by the watcher)
``gradwatch.integrations.compiled``       what a ``torch.compile``'d model lets the watcher see
========================================  ====================================================

Example:
    >>> # from gradwatch.integrations.lightning import GradwatchCallback
"""
