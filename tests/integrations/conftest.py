import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def need(module: str):
    """Import an optional package or skip the test, saying which extra installs it."""
    return pytest.importorskip(module, reason=f"{module} is not installed: pip install 'gradwatch[integrations]'")
