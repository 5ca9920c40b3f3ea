"""Rule: non-finite values — the first step and place where NaN/Inf appeared (loss, which
parameter's gradient, which module's activation), and what grew before it.

Example:
    >>> # check(ctx) -> [Finding(kind="nonfinite", first_step=37, layers=["fc3.weight"], ...)]
"""

from __future__ import annotations

import numpy as np

from ..findings import Cause, Finding
from . import causes as C
from .context import Context
from .learning_rate import hot_steps
from .prescriptions import prescribe_all
from .scale import initial_scale


def _first_bad_row(df):
    """First row with a non-finite value: ±Inf, or NaN in a column that was finite before
    (NaN alone also means "no gradient this step")."""
    v = df.to_numpy(dtype=float)
    seen = np.maximum.accumulate(np.isfinite(v), axis=0)
    seen = np.vstack([np.zeros((1, v.shape[1]), dtype=bool), seen[:-1]]) if len(v) else seen
    bad = np.isinf(v) | (np.isnan(v) & seen)
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return None, []
    i = rows[0]
    return int(df.index[i]), [c for c, b in zip(df.columns, bad[i]) if b]


def _first_positive(df):
    v = df.to_numpy(dtype=float)
    rows = np.flatnonzero((np.nan_to_num(v) > 0).any(axis=1))
    if rows.size == 0:
        return None, []
    i = rows[0]
    return int(df.index[i]), [c for c, x in zip(df.columns, v[i]) if np.nan_to_num(x) > 0]


def check(ctx: Context, growth_orders: float = 1.0) -> list[Finding]:
    """Flag the first NaN/Inf and say what came before it (see :func:`_what_came_before`)."""
    places = []
    loss_step = ctx.first_nonfinite_step
    g_step, g_params = _first_bad_row(ctx.run.series("grad_norm"))
    a_step, a_mods = _first_positive(ctx.run.series("act_nonfinite"))
    # the first place is the earliest leaf module (registration ≈ forward order), not its containers
    kinds = dict(zip(ctx.run.modules["name"], ctx.run.modules["kind"]))
    leaves = [m for m in a_mods if m and kinds.get(m) not in ("container", None)]
    a_mods = leaves or a_mods
    if a_step is not None:
        order = ctx.run.series("order")
        if a_step in order.index:
            pos = order.loc[a_step]
            a_mods.sort(key=lambda m: pos.get(m, np.inf) if np.isfinite(pos.get(m, np.nan)) else np.inf)
    w_step, w_params = _first_bad_row(ctx.run.series("weight_norm"))
    ev = ctx.run.events
    crash = ev[ev["kind"] == "crash"] if len(ev) else ev
    for _, row in crash.iterrows():
        d = row["detail"]
        if d.get("nonfinite_locals") or d.get("mentions_nonfinite"):
            places.append((int(row["step"]), "values the script checked before it crashed",
                           [f"{k} = {v}" for k, v in d.get("nonfinite_locals", {}).items()]))
    for step, what, names in ((loss_step, "loss", []), (g_step, "gradient", g_params),
                              (a_step, "activation", a_mods), (w_step, "weight", w_params)):
        if step is not None:
            places.append((step, what, names))
    if not places:
        return []
    first = min(p[0] for p in places)
    at_first = [p for p in places if p[0] == first]
    where = ", ".join(p[1] for p in at_first)
    layers = [n for p in at_first if p[1] in ("gradient", "activation", "weight") for n in p[2]]
    checked = [n for p in at_first if p[1].startswith("values") for n in p[2]]
    flags = ctx.steps["nonfinite"].get(first, "") if "nonfinite" in ctx.steps else ""
    evidence = {"first_step": first, "where": where, "flags": flags, "params": g_params[:10] if g_step == first else [],
                "modules": a_mods[:10] if a_step == first else []}
    story, causes, remedies, why = _what_came_before(ctx, first, growth_orders)
    evidence.update(why)
    shown = layers or checked
    name_part = f" ({', '.join(shown[:3])}" + (" …)" if len(shown) > 3 else ")") if shown else ""
    origin = ""
    if a_step is not None and a_mods and a_step != first:
        origin = f"; the first module whose output was NaN/Inf (step {a_step}) is {a_mods[0]}"
        evidence["first_nonfinite_module"] = {"step": a_step, "module": a_mods[0]}
        layers = [a_mods[0]] + [n for n in layers if n != a_mods[0]]
    return [Finding(
        kind="nonfinite", severity="critical", first_step=first, layers=layers,
        summary=f"NaN/Inf first appeared at step {first} in the {where}{name_part}, {story}{origin}",
        evidence=evidence, causes=causes, remedies=prescribe_all(remedies, ctx))]


def _what_came_before(ctx: Context, first: int, growth_orders: float = 1.0, high: float = 0.05):
    """What led to the first NaN/Inf, read in the order the mechanisms act: a network whose
    scale was already far out of range at its first step (the init), steps that rewrote a large
    part of the weights (the learning rate), gradients or a loss that grew ≥ ``growth_orders``
    decades before it; "suddenly" only when enough finite steps came before to see nothing grow.

    Returns:
        (story, causes, remedy ids, evidence dict).
    """
    g = ctx.steps["grad_norm"].astype(float)
    before = g[(g.index < first) & np.isfinite(g) & (g > 0)]
    why: dict = {}
    scale = initial_scale(ctx)
    if scale is not None and scale.step < first and scale.too_large():
        why["initial_scale"] = scale.describe()
        causes = C.init_scale(ctx, "large") or [Cause("init_scale_too_large",
                                                      f"measured at step {scale.step}: {scale.describe()}")]
        return (f"after a start far out of scale (at step {scale.step} {scale.describe()}): the initial weights "
                "are too large", causes + C.learning_rate(ctx), ["use_he_init", "clip_grad_norm", "guard",
                                                                 "reduce_lr"], why)
    hot = hot_steps(ctx, high, before=first)
    if hot is not None:
        why["update_ratio_before"] = hot.ratio
        return (f"after steps that rewrote {hot.ratio:.0%} of the weights in {hot.layers} of {hot.of} layers "
                "(healthy ≈ 0.1%): the step is too large", C.learning_rate(ctx) + C.post_ln_without_warmup(ctx),
                ["reduce_lr", "clip_grad_norm", "guard"], why)
    grew = None
    if len(before) >= 4:
        head = float(np.median(before.iloc[: max(2, len(before) // 4)]))
        grew = float(np.log10(before.iloc[-3:].max() / head)) if head > 0 else None
    lo = ctx.loss_finite()
    lo = lo[(lo.index < first) & (lo > 0)]
    rose = float(np.log10(lo.iloc[-3:].max() / lo.iloc[0])) if len(lo) >= 2 else None
    if grew is not None:
        why["grad_norm_growth_before"] = 10 ** grew
    if rose is not None and rose >= growth_orders:
        why["loss_growth_before"] = 10 ** rose
    if (grew is not None and grew >= growth_orders) or (rose is not None and rose >= growth_orders):
        what = (f"the gradient norm grew {10 ** grew:.0f}×" if grew is not None and grew >= growth_orders
                else f"the loss grew {10 ** rose:.0f}×")
        return (f"after {what} over the preceding steps", C.learning_rate(ctx) + C.init_scale(ctx, "large"),
                ["reduce_lr", "clip_grad_norm", "guard"], why)
    if len(before) < 4:
        return (f"within {first} step(s) of the start, too early to see anything grow before it",
                C.learning_rate(ctx), ["check_loss_inputs", "guard", "clip_grad_norm", "reduce_lr"], why)
    return ("suddenly, without growing gradients before (an invalid operation such as log(0) or 0/0 is likely)",
            C.learning_rate(ctx), ["check_loss_inputs", "guard", "clip_grad_norm", "reduce_lr"], why)
