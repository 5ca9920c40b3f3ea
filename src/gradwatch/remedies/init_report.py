"""What an initialisation policy did: every tensor it touched, with which rule, and what it left.

Example:
    >>> r = InitReport("auto")
    >>> r.entries.append(InitEntry("0.weight", "0", "Linear", "kaiming_normal_(...)", 0.35))
    >>> r.touched
    ['0.weight']
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InitEntry:
    """One tensor (or a group of gate blocks of one tensor) an init policy wrote.

    Example:
        >>> e = InitEntry("0.weight", "0", "Linear", "xavier_normal_(gain=1)", 0.25)
        >>> e.param, e.std
        ('0.weight', 0.25)
    """

    param: str        # dotted parameter name, as in model.named_parameters()
    layer: str        # the module that owns it
    layer_type: str   # its class name
    rule: str         # what was applied, e.g. "kaiming_normal_(a=0, mode='fan_in', nonlinearity='relu')"
    std: float        # the tensor's standard deviation afterwards


@dataclass
class InitReport:
    """The outcome of :func:`gradwatch.remedies.init.apply`: printable, and a list of what it did.

    Attributes:
        policy: the policy applied.
        entries: every parameter written, with the rule and the resulting std.
        skipped: ``(parameter or module, why)`` for parameters left as they were.
        notes: anything the user must act on (new parameters to give the optimizer, fallbacks).
        new_params: names of parameters the policy added to the model (ReZero's α).

    Example:
        >>> r = InitReport("auto", [InitEntry("0.weight", "0", "Linear", "xavier_normal_(gain=1)", 0.25)])
        >>> print(r)
        init policy 'auto': 1 tensors in 1 layers
          0.weight   Linear       std=0.25      xavier_normal_(gain=1)
    """

    policy: str
    entries: list[InitEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_params: list[str] = field(default_factory=list)

    @property
    def touched(self) -> list[str]:
        """Names of the parameters written, in model order."""
        return [e.param for e in self.entries]

    @property
    def layers(self) -> list[str]:
        """Names of the modules whose parameters were written, without repeats."""
        return list(dict.fromkeys(e.layer for e in self.entries))

    def rule_of(self, param: str) -> str:
        """The rule applied to a parameter.

        Raises:
            KeyError: the parameter was not touched (see :attr:`skipped`).
        """
        for e in self.entries:
            if e.param == param:
                return e.rule
        raise KeyError(f"{param!r} was not initialised by policy {self.policy!r}; touched: {self.touched}")

    def __len__(self) -> int:
        return len(self.entries)

    def __str__(self) -> str:
        width = max([len(e.param) for e in self.entries] + [9])
        lines = [f"init policy {self.policy!r}: {len(self.entries)} tensors in {len(self.layers)} layers"]
        for e in self.entries:
            lines.append(f"  {e.param:<{width}}  {e.layer_type:<12} std={e.std:<9.4g} {e.rule}")
        for name, why in self.skipped:
            lines.append(f"  {name:<{width}}  left as is: {why}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
