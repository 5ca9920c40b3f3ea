"""Rule: unsynced gradients — ranks of a data-parallel job whose gradients differ after the
all-reduce.

Mechanism: DistributedDataParallel averages every parameter's gradient over the ranks during
``backward()``, so each replica takes the same step and the copies stay identical (Li et al.
2020, "PyTorch Distributed"). A parameter outside the DDP module, or a last backward run under
``no_sync()``, is never averaged: each rank steps with its own gradient and the replicas drift
apart, silently — rank 0's checkpoint is then not the model the others trained. The
distributed watcher compares the ranks' per-parameter gradient norms at every step and records
``unsynced_gradients`` events; this rule reads them.

Example:
    >>> # check(ctx) -> [Finding(kind="unsynced_gradients", layers=["head.weight"], ...)]
"""

from __future__ import annotations

import math

from ..findings import Cause, Finding, Remedy
from .context import Context

_REMEDIES = {
    "wrap_in_ddp": (
        "Wrap the module that owns every trained parameter in DistributedDataParallel and call the wrapper",
        "model = torch.nn.parallel.DistributedDataParallel(model)\n"
        "out = model(x)  # the wrapper: not model.module(x), not a part kept outside it"),
    "sync_last_backward": (
        "Use no_sync() only for the accumulation backward passes; the one before optimizer.step() must sync",
        "import contextlib\n"
        "last = (i + 1) % accum == 0\n"
        "with (contextlib.nullcontext() if last else model.no_sync()):\n"
        "    loss_fn(model(x), y).backward()\n"
        "if last:\n    opt.step(); opt.zero_grad()"),
    "resync_parameters": (
        "Bring the drifted replicas back to rank 0's weights once the cause is fixed",
        "import torch.distributed as dist\n"
        "for p in model.parameters():\n    dist.broadcast(p.data, src=0)"),
}


def _remedy(rid: str) -> Remedy:
    desc, code = _REMEDIES[rid]
    return Remedy(rid, desc, code)


def check(ctx: Context, critical_steps: int = 2) -> list[Finding]:
    """One finding when any rank's gradients differed from rank 0's after the all-reduce;
    critical once it happened on ≥ ``critical_steps`` steps or the weights already differ."""
    ev = ctx.run.events
    ev = ev[ev["kind"] == "unsynced_gradients"] if len(ev) else ev
    if not len(ev):
        return []
    order = {n: i for i, n in enumerate(ctx.run.params["name"])}
    params, weights, ranks = set(), set(), set()
    steps, first, worst = 0, None, 0.0
    for d in ev["detail"]:
        params.update(d.get("params", []))
        weights.update(d.get("weights_differ", []))
        ranks.update(d.get("ranks", []))
        steps += int(d.get("steps", 1))
        first = d.get("first_step") if first is None else min(first, d.get("first_step", first))
        rel = float(d.get("max_rel_diff", 0.0))
        worst = max(worst, rel if not math.isnan(rel) else math.inf)
    names = sorted(params | weights, key=lambda n: order.get(n, len(order)))
    dist_meta = ctx.run.meta.get("distributed") or {}
    in_ddp = dist_meta.get("params_in_ddp")
    causes, remedies = [], []
    if in_ddp is not None:
        outside = [n for n in names if n not in set(in_ddp)]
        inside = [n for n in names if n in set(in_ddp)]
    else:
        outside, inside = [], names
    if outside:
        causes.append(Cause("param_outside_ddp", (
            f"{len(outside)} parameter(s) ({', '.join(outside[:6])}{', …' if len(outside) > 6 else ''}) are not "
            "inside the DistributedDataParallel module: their gradients are never averaged, each rank "
            "trains its own copy")))
        remedies.append(_remedy("wrap_in_ddp"))
    if inside:
        causes.append(Cause("no_sync_before_step", (
            f"{len(inside)} parameter(s) inside DDP differ too: the backward before optimizer.step() ran under "
            "no_sync() (or the gradients were changed per rank after the all-reduce)")))
        remedies.append(_remedy("sync_last_backward"))
    remedies.append(_remedy("resync_parameters"))
    severe = steps >= critical_steps or bool(weights)
    drift = f"; the weights of {len(weights)} already differ" if weights else ""
    return [Finding(
        kind="unsynced_gradients", severity="critical" if severe else "warning",
        first_step=int(first or 0), layers=names,
        summary=(f"{len(params)} parameter(s) had different gradients on rank(s) "
                 f"{', '.join(map(str, sorted(ranks)))} than on rank 0 after the all-reduce, at {steps} "
                 f"step(s) from step {first}{drift}: the replicas are training different models"),
        evidence={"params": sorted(params, key=lambda n: order.get(n, 0)), "ranks": sorted(ranks),
                  "steps_unsynced": steps, "max_relative_difference": worst,
                  "weights_differ": sorted(weights, key=lambda n: order.get(n, 0)),
                  "world_size": dist_meta.get("world_size"),
                  "healthy_band": "identical on every rank (the all-reduce hands every rank the same bits)"},
        causes=causes, remedies=remedies)]
