"""Load pretrained weights by name and shape, and say exactly what matched.

``model.load_state_dict(sd, strict=False)`` silently skips what it cannot use and fails on a
shape mismatch; transfer learning usually wants the opposite: copy every tensor whose name
and shape agree, keep the model's own init for the rest, and report both.

Example:
    >>> from torch import nn
    >>> src = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> dst = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))   # a new head
    >>> r = load_pretrained(dst, src.state_dict())
    >>> r.matched, [m[0] for m in r.mismatched]
    (['0.weight', '0.bias'], ['2.weight', '2.bias'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Union

import torch
from torch import nn

Source = Union[Mapping[str, torch.Tensor], nn.Module, str, os.PathLike]


@dataclass
class LoadReport:
    """What :func:`load_pretrained` copied and what it could not.

    Attributes:
        matched: names copied from the checkpoint.
        missing: the model's names absent from the checkpoint (kept as they were).
        unexpected: checkpoint names the model does not have.
        mismatched: ``(name, model shape, checkpoint shape)`` for names in both with different shapes.
        prefix: the prefix stripped from checkpoint names (``"module."`` from DataParallel), or "".

    Example:
        >>> r = LoadReport(matched=["0.weight"], missing=["0.bias"]); r.complete
        False
        >>> print(r)
        pretrained: 1 matched, 1 missing, 0 unexpected, 0 shape-mismatched
          missing     0.bias
    """

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    prefix: str = ""

    @property
    def complete(self) -> bool:
        """Every tensor of the model came from the checkpoint."""
        return not self.missing and not self.mismatched

    def __str__(self) -> str:
        lines = [f"pretrained: {len(self.matched)} matched, {len(self.missing)} missing, "
                 f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape-mismatched"
                 + (f" (stripped prefix {self.prefix!r})" if self.prefix else "")]
        lines += [f"  missing     {n}" for n in self.missing]
        lines += [f"  unexpected  {n}" for n in self.unexpected]
        lines += [f"  mismatched  {n}: model {list(a)} vs checkpoint {list(b)}" for n, a, b in self.mismatched]
        return "\n".join(lines)


def _as_state_dict(source: Source) -> Mapping[str, torch.Tensor]:
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, (str, os.PathLike)):
        loaded = torch.load(source, map_location="cpu", weights_only=True)
        return loaded["state_dict"] if isinstance(loaded, dict) and "state_dict" in loaded else loaded
    if isinstance(source, Mapping):
        return source
    raise TypeError(f"load_pretrained takes a state dict, a module or a file path; got {type(source).__name__}")


def _strip(sd: Mapping[str, torch.Tensor], names: set[str]) -> tuple[dict[str, torch.Tensor], str]:
    """Strip a common wrapper prefix when that makes more names match."""
    best, best_prefix = dict(sd), ""
    for prefix in ("module.", "model.", "_orig_mod."):
        stripped = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}
        if len(names & set(stripped)) > len(names & set(best)):
            best, best_prefix = stripped, prefix
    return best, best_prefix


@torch.no_grad()
def load_pretrained(model: nn.Module, state_dict: Source) -> LoadReport:
    """Copy every checkpoint tensor whose name and shape match the model's (in place).

    Args:
        model: the model to fill (parameters and buffers, by name).
        state_dict: a state dict, a module, or a file saved with ``torch.save`` (loaded with
            ``weights_only=True``; a ``{"state_dict": ...}`` wrapper is unwrapped).

    Returns:
        A :class:`LoadReport` of matched, missing, unexpected and shape-mismatched names.

    Example:
        >>> # report = load_pretrained(model, "ckpt.pt"); print(report)
    """
    sd = _as_state_dict(state_dict)
    own = model.state_dict(keep_vars=True)
    sd, prefix = _strip(sd, set(own))
    report = LoadReport(prefix=prefix)
    for name, target in own.items():
        if name not in sd:
            report.missing.append(name)
            continue
        src = sd[name]
        if tuple(src.shape) != tuple(target.shape):
            report.mismatched.append((name, tuple(target.shape), tuple(src.shape)))
            continue
        target.copy_(src)
        report.matched.append(name)
    report.unexpected = [k for k in sd if k not in own]
    return report
