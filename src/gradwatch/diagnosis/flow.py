"""Gradient flow measured three ways, shared by the vanishing and exploding rules:
across layers (δ at each layer's output, input→output), through time (the per-step gain of
a recurrence over its sequence length), and step over step (the global gradient norm).

Example:
    >>> # across_layers(ctx) -> FlowSpan(log10_ratio=-9.2, layers=[...], step=0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .context import Context, robust_profile


@dataclass
class FlowSpan:
    """log10 of (signal at the input end / signal at the output end); negative = vanishing."""

    log10_ratio: float
    source: str  # "delta" | "weight_grad"
    first_step: int
    layers: list[str] = field(default_factory=list)  # where the signal is weakest/strongest
    profile: list[float] = field(default_factory=list)
    #: median log10 change of δ per layer, input-ward (NaN: not read per layer)
    per_layer: float = float("nan")
    #: read at the first step only (the init's per-layer gain), not over the run
    first_step_only: bool = False

    def per_layer_factor(self) -> float:
        """δ's typical factor per layer towards the input (< 1: shrinking): the median change
        where it was read per layer, else the end-to-end ratio spread evenly over the layers."""
        per = self.per_layer if np.isfinite(self.per_layer) else self.log10_ratio / max(1, len(self.profile) - 1)
        return float(10 ** per)

    def describe(self) -> str:
        """Where the reading was taken and its per-layer factor, for a finding's summary."""
        f = self.per_layer_factor()
        when = "at the first step, " if self.first_step_only else ""
        return f"{when}≈{max(f, 1 / f):.2g}× per layer"


def across_layers(ctx: Context, min_layers: int = 3) -> FlowSpan | None:
    """δ (∂L/∂h) across weight layers, median over the measured steps in log space."""
    d = ctx.delta_profile()
    source = "delta"
    if d.shape[1] < min_layers or d.shape[0] == 0:
        d = ctx.weight_grad_profile()
        source = "weight_grad"
    if d.shape[1] < min_layers or d.shape[0] == 0:
        return None
    prof = robust_profile(d)
    ok = np.isfinite(prof) & (prof > 0)
    if ok.sum() < min_layers:
        # all-zero gradients (e.g. symmetric zero init) say nothing about flow
        return None
    names = [c for c, k in zip(d.columns, ok) if k]
    prof = prof[ok]
    top = prof[-1]
    ratio = float(np.log10(prof[0]) - np.log10(top))
    # layers whose signal is 1000× away from the output layer's
    far = [n for n, v in zip(names, prof) if abs(np.log10(v) - np.log10(top)) >= 3]
    first_step = _first_step_beyond(d, names, sign=np.sign(ratio))
    return FlowSpan(ratio, source, first_step, far, [float(v) for v in prof])


def at_first_step(ctx: Context, min_layers: int = 3) -> FlowSpan | None:
    """δ across the weight layers at the first watched step (None without ≥ ``min_layers``);
    ``FlowSpan.per_layer`` is its median change per layer (log10), the factor an init off by a
    constant sets at every layer.

    The initial weights set a per-layer gain (He et al. 2015: ½·n·Var[w] for ReLU, 1 at the
    critical scale), so an init off by a constant factor makes δ fall or grow geometrically
    with depth at the first step, before the optimizer has moved anything. Adam then rescales
    such weights within tens of steps, and the median over the run no longer shows it; the first
    step does. The median change per layer is what the init did: one large change among small
    ones has another cause — an average pool over T positions divides δ's norm by √T while the
    weight gradient, a sum over those positions, keeps its scale — and one layer left at another
    scale (a default-init output layer) does not hide the others. Weight gradients cannot show
    that gain: ∂L/∂W_l = δ_l·a_{l−1}ᵀ, and a forward signal that shrinks layer by layer cancels
    a δ that shrinks the other way. Only δ is read.

    Example:
        >>> # at_first_step(ctx) -> FlowSpan(log10_ratio=-3.0, ...)  # a ReLU MLP with weights ÷10
    """
    d = ctx.delta_profile()
    if d.shape[1] < min_layers or d.shape[0] == 0:
        return None
    row = d.iloc[0].to_numpy(dtype=float)
    ok = np.isfinite(row) & (row > 0)
    # below float32's resolution relative to the largest δ: a sum that cancels (the gradient into
    # identical units behind a softmax is exactly Σ(p − y) = 0), not a gain
    ok &= row >= np.finfo(np.float32).eps * np.nanmax(np.where(ok, row, 0.0), initial=0.0)
    if ok.sum() < min_layers:
        return None
    logs = np.log10(row[ok])
    change = -np.diff(logs)  # log10 of (δ one layer nearer the input / δ at the layer above)
    names = [c for c, k in zip(d.columns, ok) if k]
    far = [n for n, v in zip(names, logs) if abs(v - logs[-1]) >= 2]
    return FlowSpan(float(logs[0] - logs[-1]), "delta", int(d.index[0]), far, [float(v) for v in row[ok]],
                    per_layer=float(np.median(change)))


#: log10 of the per-layer factor that marks an init far from the critical scale: 4×, what a
#: sigmoid layer loses at best (σ′ ≤ ¼, Glorot & Bengio 2010). PyTorch's own default init
#: (kaiming_uniform with a = √5: Var[w] = 1/(3·fan_in)) loses ≈2.4× per ReLU layer, so a deep net
#: at its defaults shows a smooth decline at the first step that is no fault of the run
FAR_PER_LAYER = float(np.log10(4.0))


def layer_span(ctx: Context, sign: int, orders: float = 3.0, first_step_orders: float = 2.0) -> FlowSpan | None:
    """The across-layers reading that crosses its threshold in direction ``sign`` (−1 vanishing,
    +1 exploding): the median over the measured steps at ≥ ``orders`` decades, else the first
    step at ≥ ``first_step_orders`` end to end (outside the healthy band of 100×) with a median
    change per layer of at least :data:`FAR_PER_LAYER` (see :func:`at_first_step`); None when
    neither does. ``FlowSpan.first_step_only`` says which.

    Example:
        >>> # layer_span(ctx, -1).log10_ratio  # -3.0: δ 1000× smaller at the first layer
    """
    span = across_layers(ctx)
    if span is not None and sign * span.log10_ratio >= orders:
        return span
    span = at_first_step(ctx)
    if (span is not None and sign * span.log10_ratio >= first_step_orders
            and sign * span.per_layer >= FAR_PER_LAYER):
        span.first_step_only = True
        return span
    return None


def _first_step_beyond(d: pd.DataFrame, names: list[str], sign: float, orders: float = 3.0) -> int:
    for step, row in d[names].iterrows():
        v = row.to_numpy(dtype=float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size >= 2 and sign * (np.log10(v[0]) - np.log10(v[-1])) >= orders:
            return int(step)
    return int(d.index[0])


#: module types whose time steps run inside one call
_FUSED = ("RNN", "LSTM", "GRU")
#: log10 of "the first inputs get no gradient at all" (below float32's smallest number)
STARVED_FLOOR = -45.0


@dataclass
class TimeReading:
    """One judgement of a module's gradient through time: the per-step ``gain`` of its
    recurrence, the sequence ``length`` T, ``log10_total`` = (T − 1)·log10(gain) (from the last time
    step back to the first), ``starved`` = log10 of the gradient at the first inputs over the
    largest along the sequence, and the ``first_step`` where the pathology showed."""

    module: str
    gain: float
    length: int
    log10_total: float
    starved: float
    first_step: int


@dataclass
class TimeSpan:
    """The gradient through one recurrent module's time steps, per measured step.

    ``logs`` holds log10 of the per-step gain of the recurrence (``time_gain``: a property of its
    Jacobians, blind to where the loss enters) and ``lengths`` the sequence length T, so the
    gradient's gain from the last time step back to the first is ``gain ** (T − 1)``
    (``totals``). ``starvation`` is log10 of the gradient that reaches the first inputs over the
    largest along the sequence (where the loss does enter): near 0 when every input has a loss
    next to it (a language model), very negative when the first inputs are taught only through
    the recurrence (a loss at the end).
    """

    module: str
    steps: list[int] = field(default_factory=list)
    logs: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    starvation: list[float] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"time:{self.module}"

    @property
    def totals(self) -> list[float]:
        return [g * (n - 1) for g, n in zip(self.logs, self.lengths)]

    def median(self) -> TimeReading:
        """The median over the measured steps of each quantity."""
        return TimeReading(self.module, float(10 ** np.median(self.logs)), int(np.median(self.lengths)),
                           float(np.median(self.totals)), float(np.median(self.starvation)), self.steps[0])

    def first(self) -> TimeReading:
        """The first measured step."""
        return TimeReading(self.module, float(10 ** self.logs[0]), self.lengths[0], self.totals[0],
                           self.starvation[0], self.steps[0])

    def exploding(self, orders: float = 3.0) -> TimeReading | None:
        """The gain over the sequence when it is ≥ ``10**orders`` at the median of the measured
        steps or at the first of them (an explosion at initialisation may saturate the units a
        few steps later and leave a vanishing gradient behind)."""
        return self._judge(lambda r: r.log10_total >= orders)

    def vanishing(self, orders: float = 3.0) -> TimeReading | None:
        """The gain over the sequence when the recurrence loses ≥ ``orders`` decades over it *and*
        the first inputs get ≥ ``orders`` decades less gradient than the best-fed ones, at the
        median of the measured steps: a gated recurrence that starts forgetting and learns to
        remember within the run (its forget gates open) was not kept from learning."""
        return self._judge(lambda r: r.log10_total <= -orders and r.starved <= -orders, at_start=False)

    def _judge(self, bad, at_start: bool = True) -> TimeReading | None:
        if not self.steps:
            return None
        reading = self.median()
        if not bad(reading):
            reading = self.first()
            if not at_start or not bad(reading):
                return None
        at = [i for i in range(len(self.steps)) if bad(TimeReading(
            self.module, 10 ** self.logs[i], self.lengths[i], self.totals[i], self.starvation[i], self.steps[i]))]
        reading.first_step = self.steps[at[0]]
        return reading


def through_time(ctx: Context) -> list[TimeSpan]:
    """The gradient through time of each module whose recurrence was measured (``time_gain``).

    The sequence length comes from the per-call records: a fused RNN's ‖∂L/∂x_t‖ has one entry
    per time step (one called once per step, a decoder loop, has one δ per call, divided by the
    forward passes of the step); a cell's ‖∂L/∂s_t‖ at its state has one per time step. A module
    that holds another measured one (a hand-written cell around an ``nn.GRUCell``) is left to the
    inner one.

    Example:
        >>> # [t.median().gain for t in through_time(ctx)]   # per-step gain of each recurrence
    """
    gains = ctx.series("time_gain")
    if gains.empty:
        return []
    calls = ctx.run.calls()
    cut = ctx.first_nonfinite_step
    if cut is not None and not calls.empty:
        calls = calls[calls["step"] < cut]
    counts = ctx.series("calls")
    by = {key: g for key, g in calls.groupby(["module", "step"], sort=False)} if not calls.empty else {}
    fused = {n: t in _FUSED for n, t in zip(ctx.run.modules["name"], ctx.run.modules["type"])}
    out = []
    for module in gains.columns:
        span = TimeSpan(module)
        for step, g in gains[module].items():
            if not np.isfinite(g) or g < 0 or (module, step) not in by:
                continue
            v = by[(module, step)].sort_values("call")["delta"].to_numpy(dtype=float)
            if fused.get(module, False):
                v, T = _sequence(v, _count(counts, module, step), _root_calls(counts, step), root=module == "")
            else:  # a cell: one entry per time step of its sequences already
                T = int(v.size)
            if T < 2:
                continue
            span.steps.append(int(step))
            span.logs.append(float(np.log10(max(g, 1e-45))))
            span.lengths.append(T)
            span.starvation.append(_starvation(v))
        if span.steps:
            out.append(span)
    names = {t.module for t in out}
    return [t for t in out if not any(o != t.module and (t.module == "" or o.startswith(t.module + "."))
                                      for o in names)]


def time_evidence(r: TimeReading) -> dict:
    """The evidence of a through-time finding: the measured per-step gain, the sequence length,
    the gain over the sequence and how much gradient the first inputs get.

    Example:
        >>> e = time_evidence(TimeReading("rnn", 0.5, 11, -3.01, -2.9, 0))
        >>> e["gain_per_step"], e["sequence_length"], e["module"]
        (0.5, 11, 'rnn')
    """
    return {"gain_per_step": r.gain, "sequence_length": r.length, "horizon_steps": r.length - 1,
            "gain_over_sequence": 10 ** r.log10_total,
            "first_inputs_grad_vs_peak": 0.0 if r.starved <= STARVED_FLOOR else 10 ** r.starved,
            "module": r.module, "measured": "through_time",
            "healthy_band": "a gain within 1/1000 … 1000× over the sequence (per step ≈ 1)"}


def steps_to(gain: float, orders: float = 3.0) -> str:
    """The number of time steps over which a per-step ``gain`` changes the gradient ``10**orders``×
    (the horizon of the recurrence's memory, or of its blow-up), as text.

    Example:
        >>> steps_to(0.5), steps_to(2.0), steps_to(1.0)
        ('10', '10', '∞')
    """
    if not np.isfinite(gain) or gain <= 0:
        return "1"
    if gain == 1:
        return "∞"
    return f"{max(1.0, orders / abs(np.log10(gain))):.0f}"


def _sequence(v: np.ndarray, module_calls: float, root_calls: int, root: bool) -> tuple[np.ndarray, int]:
    """A fused RNN's per-time-step profile of one step and its length T. One δ per call (as many
    entries as the module's calls) is split into the step's forward passes and averaged over
    them; its ‖∂L/∂x_t‖ is already one entry per time step."""
    if np.isfinite(module_calls) and v.size == int(module_calls) and root_calls > 1 and not root \
            and v.size % root_calls == 0:
        v = v.reshape(root_calls, -1).mean(0)
    return v, int(v.size)


def _starvation(v: np.ndarray, floor: float | None = None) -> float:
    """log10 of the gradient at the first tenth of the sequence (its mean) over the largest
    anywhere along it; ``floor`` when the first inputs get none at all."""
    floor = STARVED_FLOOR if floor is None else floor
    v = np.where(np.isfinite(v), v, np.nan)
    k = max(1, v.size // 10)
    if not np.isfinite(v[:k]).any() or not np.isfinite(v).any():
        return 0.0
    early, peak = np.nanmean(v[:k]), np.nanmax(v)
    if peak <= 0:
        return 0.0
    return float(max(floor, np.log10(early / peak))) if early > 0 else floor


def _count(counts: pd.DataFrame, module: str, step: int) -> float:
    if module in counts.columns and step in counts.index:
        return float(counts.loc[step, module])
    return float("nan")


def _root_calls(roots: pd.DataFrame, step: int) -> int:
    if "" in roots.columns and step in roots.index:
        v = roots.loc[step, ""]
        if np.isfinite(v) and v >= 1:
            return int(v)
    return 1


def step_over_step(ctx: Context, orders: float = 3.0) -> tuple[float, int] | None:
    """log10(peak global gradient norm / its early median), and the step of the peak."""
    g = ctx.steps["grad_norm"].astype(float)
    cut = ctx.first_nonfinite_step
    if cut is not None:
        g = g[g.index < cut]
    g = g[np.isfinite(g) & (g > 0)]
    if len(g) < 10:
        return None
    head = g.iloc[: max(3, len(g) // 10)]
    base = float(np.median(head))
    rest = g.iloc[len(head):]
    if rest.empty or base <= 0:
        return None
    peak_step = int(rest.idxmax())
    return float(np.log10(rest.max() / base)), peak_step
