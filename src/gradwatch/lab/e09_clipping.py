"""e09 — Gradient-norm clipping (Pascanu, Mikolov & Bengio 2013): the cliff, and recurrent training.

Part 1, the one-unit RNN x_t = w·σ(x_{t−1}) + b, x_0 = 0.5, loss (x_T − 0.7)². For w > 4 the map
has two stable fixed points; where (w, b) crosses the boundary between their basins x_T jumps,
so the loss surface has a wall on which the gradient grows like λ^T (λ > 1 the slope at the
unstable fixed point). Measured: the gradient on a slice across the wall at distances 10⁻¹…10⁻⁹
from it, against the median gradient of the surface; gradient-descent trajectories from the far
side of the wall with and without norm clipping (the unclipped step on the wall jumps).

Part 2, the temporal-order task (Hochreiter & Schmidhuber 1997, task 6a): sequences of T random
distractor symbols with X/Y placed at t₁ ∈ [0.1T, 0.2T] and t₂ ∈ [0.5T, 0.6T]; the class is the
order (XX, XY, YX, YY). A tanh RNN (orthogonal recurrent init) trained by SGD with momentum,
identical init and batches, with and without clipping the global norm; solved = test accuracy
≥ 99% on 1000 held-out sequences.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradwatch.lab.core import Context, Result, check

NAME = "clipping"
CLAIM = ("Recurrent loss surfaces have walls where the gradient explodes; clipping the gradient norm "
         "keeps steps bounded there and lets SGD solve the temporal-order task where it fails unclipped.")
SOURCE = "Pascanu, Mikolov & Bengio 2013, Fig. 6 (one-unit RNN surface) and Fig. 7 (temporal order)"


@dataclass(frozen=True)
class Config:
    unit_T: int = 50                                # one-unit RNN: time steps
    wall_w: float = 10.0                            # one-unit RNN: w of the slice across the wall
    wall_T: tuple[int, ...] = (10, 20, 30, 40)      # one-unit RNN: T values for the growth of the wall gradient
    starts: tuple[float, ...] = (10.0, -7.0, 9.0, -6.5, 11.0, -8.0, 8.0, -5.5)  # (w, b) start pairs, flattened
    unit_lr: float = 0.03                           # one-unit RNN: gradient-descent step
    unit_clip: float = 5.0                          # one-unit RNN: norm threshold
    unit_steps: int = 500                           # one-unit RNN: steps per trajectory
    lengths: tuple[int, ...] = (20, 50)             # temporal order: sequence lengths T
    hidden: int = 50                                # temporal order: tanh RNN units
    lr: float = 0.01                                # temporal order: SGD learning rate (momentum 0.9)
    clip: float = 1.0                               # temporal order: global-norm threshold
    max_steps: int = 2000                           # temporal order: step budget per run
    batch: int = 32                                 # temporal order: sequences per step
    eval_every: int = 100                           # temporal order: steps between test evaluations
    solved_acc: float = 0.99                        # temporal order: test accuracy that counts as solved
    every: int = 100                                # watcher: steps between slow statistics


FULL = {"lengths": (20, 50, 100), "max_steps": 20000}


# ------------------------------------------------------------------ part 1: the one-unit RNN
def unit_rnn_final(w, b, T: int = 50, x0: float = 0.5):
    """x_T of x_t = w·σ(x_{t−1}) + b from x_0 (works on tensors of any shape, differentiable).

    Example:
        >>> round(float(unit_rnn_final(torch.tensor(1.0), torch.tensor(0.0), T=1)), 4)
        0.6225
    """
    x = torch.full_like(torch.as_tensor(b), x0) + 0 * torch.as_tensor(w)
    for _ in range(T):
        x = w * torch.sigmoid(x) + b
    return x


def _unit_loss(w, b, T):
    return (unit_rnn_final(w, b, T) - 0.7) ** 2


def wall_position(w: float, T: int, lo: float = -20.0, hi: float = 0.0) -> float:
    """The b at which x_T jumps from the low to the high basin for this w (bisection)."""
    if w <= 4:  # σ′ ≤ 1/4: the map's slope stays below 1, one fixed point, x_T moves continuously
        raise ValueError(f"no wall for w={w}: with w ≤ 4 there is a single fixed point; use w > 4")
    high = lambda b: float(unit_rnn_final(torch.tensor(w, dtype=torch.float64),  # noqa: E731
                                          torch.tensor(b, dtype=torch.float64), T)) > b + w / 2
    if high(lo) or not high(hi):
        raise ValueError(f"no wall for w={w} between b={lo} and b={hi}; use w > 4")
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if high(mid) else (mid, hi)
    return (lo + hi) / 2


def wall_peak_gradient(w: float, T: int) -> float:
    """The largest |∂L/∂b| found on ever finer grids (±10⁻¹ … ±10⁻¹⁵) around the wall at this w."""
    b_wall = wall_position(w, T)
    peak = 0.0
    for k in range(1, 16):
        b = (b_wall + torch.linspace(-10.0 ** -k, 10.0 ** -k, 2001, dtype=torch.float64)).requires_grad_(True)
        g, = torch.autograd.grad(_unit_loss(torch.tensor(w, dtype=torch.float64), b, T).sum(), b)
        peak = max(peak, float(g.abs().max()))
    return peak


def _trajectory(w0: float, b0: float, config: Config, clip: float | None) -> dict:
    p = torch.tensor([w0, b0], dtype=torch.float64, requires_grad=True)
    path, losses, steps = [p.detach().clone()], [], []
    for _ in range(config.unit_steps):
        loss = _unit_loss(p[0], p[1], config.unit_T)
        g, = torch.autograd.grad(loss, p)
        if clip is not None:
            g = g * min(1.0, clip / (float(g.norm()) + 1e-12))
        with torch.no_grad():
            p -= config.unit_lr * g
        path.append(p.detach().clone())
        losses.append(loss.item())
        steps.append(config.unit_lr * float(g.norm()))
    return {"path": torch.stack(path), "final_loss": losses[-1], "max_step": max(steps),
            "median_step": statistics.median(steps)}


# ------------------------------------------------------------------ part 2: temporal order
def temporal_order(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` one-hot sequences (n, T, 6) of the temporal-order task and their classes 0..3.

    Example:
        >>> x, y = temporal_order(4, 20, torch.Generator().manual_seed(0))
        >>> x.shape, int(x[..., 4:].sum())
        (torch.Size([4, 20, 6]), 8)
    """
    seq = torch.randint(0, 4, (n, T), generator=generator)
    t1 = torch.randint(int(0.1 * T), int(0.2 * T) + 1, (n,), generator=generator)
    t2 = torch.randint(int(0.5 * T), int(0.6 * T) + 1, (n,), generator=generator)
    s1, s2 = (torch.randint(0, 2, (n,), generator=generator) for _ in range(2))
    rows = torch.arange(n)
    seq[rows, t1], seq[rows, t2] = 4 + s1, 4 + s2
    return F.one_hot(seq, 6).float(), 2 * s1 + s2


class OrderRNN(nn.Module):
    """tanh RNN over the sequence, a linear read-out of the last state (orthogonal W_hh)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.rnn = nn.RNN(6, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 4)
        nn.init.orthogonal_(self.rnn.weight_hh_l0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.out(h[:, -1])


def _train_order(T: int, clipped: bool, init: dict, test, config: Config, ctx: Context) -> dict:
    from gradwatch.remedies.clip import clip_by_global_norm

    model = OrderRNN(config.hidden)
    model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    clip = clip_by_global_norm(config.clip) if clipped else None
    gen = ctx.generator(T)  # the same batches for the clipped and the unclipped run
    name = f"T{T}-{'clipped' if clipped else 'unclipped'}"
    norms, curve, solved = [], [], None
    with ctx.watch(model, opt, name, every=config.every):
        for step in range(1, config.max_steps + 1):
            x, y = temporal_order(config.batch, T, gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            norms.append(clip(model)["norm"] if clip else torch.nn.utils.get_total_norm(
                [p.grad for p in model.parameters()]))
            opt.step()
            if step % config.eval_every == 0:
                with torch.no_grad():
                    acc = (model(test[0]).argmax(1) == test[1]).float().mean().item()
                curve.append((step, acc))
                if acc >= config.solved_acc:
                    solved = step
                    break
    norms = torch.stack(norms).double()
    return {"name": name, "solved_at": solved, "acc": curve[-1][1] if curve else 0.0, "curve": curve,
            "norm_median": float(norms.nanmedian()), "norm_max": float(norms.nan_to_num(math.inf).max()),
            "norms": norms}


def run(config: Config, ctx: Context) -> Result:
    """The cliff and trajectories of the one-unit RNN, then temporal order with and without clipping."""
    if len(config.starts) % 2:
        raise ValueError("starts must hold (w, b) pairs: an even number of values, e.g. 10,-7,9,-6.5")
    T = config.unit_T
    b_wall = wall_position(config.wall_w, T)
    wall_grads = {t: wall_peak_gradient(config.wall_w, t) for t in config.wall_T}
    # at the wall the orbit sits on the unstable fixed point x_u = x_0, so each step multiplies by w·σ'(x_0)
    slope = torch.tensor(0.5).sigmoid().item()
    predicted_growth = config.wall_w * slope * (1 - slope)
    ts = torch.tensor(list(config.wall_T), dtype=torch.float64)
    logs = torch.tensor([math.log(v) for v in wall_grads.values()], dtype=torch.float64)
    fitted_growth = math.exp(float(((ts - ts.mean()) * (logs - logs.mean())).sum() / ((ts - ts.mean()) ** 2).sum()))
    ws, bs = torch.linspace(-2, 12, 141, dtype=torch.float64), torch.linspace(-8, 2, 101, dtype=torch.float64)
    W, B = torch.meshgrid(ws, bs, indexing="ij")
    W.requires_grad_(True)
    B.requires_grad_(True)
    surface = _unit_loss(W, B, T)
    gw, gb = torch.autograd.grad(surface.sum(), (W, B))
    median_grad = float(torch.sqrt(gw ** 2 + gb ** 2).median())
    starts = list(zip(config.starts[::2], config.starts[1::2]))
    traj = {clip: [_trajectory(w, b, config, None if clip == "unclipped" else config.unit_clip) for w, b in starts]
            for clip in ("unclipped", "clipped")}
    jump = max(t["max_step"] / t["median_step"] for t in traj["unclipped"])
    clipped_final = max(t["final_loss"] for t in traj["clipped"])

    order = {}
    with ctx.progress(2 * len(config.lengths), "temporal order: T × clipping") as advance:
        for length in config.lengths:
            init = {k: v.clone() for k, v in OrderRNN(config.hidden).state_dict().items()}
            test = temporal_order(1000, length, ctx.generator(10_000 + length))
            for clipped in (False, True):
                order[(length, clipped)] = _train_order(length, clipped, init, test, config, ctx)
                advance()
    longest = max(config.lengths)
    acc = {f"T{L} {'clipped' if c else 'unclipped'}": r["acc"] for (L, c), r in order.items()}
    spikes = {f"T{L}": ctx.load(order[(L, False)]["name"]).steps["grad_norm"].agg(["median", "max"]).tolist()
              for L in config.lengths}

    checks = [
        check(f"one-unit RNN: the peak gradient on the wall grows exponentially with T, by w·σ′(x₀) per step "
              f"(fit within 10%), reaching ≥ 1e6× the surface's median gradient at T={max(config.wall_T)}",
              abs(fitted_growth / predicted_growth - 1) < 0.1 and wall_grads[max(config.wall_T)] >= 1e6 * median_grad,
              fitted=fitted_growth, predicted=predicted_growth, peak=wall_grads[max(config.wall_T)], median=median_grad),
        check("unclipped descent jumps on the wall (a step ≥ 10× its median step); clipped descent still "
              "reaches loss < 0.01 from every start", jump >= 10 and clipped_final < 0.01,
              jump_ratio=jump, clipped_worst_final_loss=clipped_final),
        check(f"temporal order: clipped SGD solves (test acc ≥ {config.solved_acc:g}) at every T in {config.lengths}",
              all(order[(L, True)]["solved_at"] is not None for L in config.lengths),
              **{f"T{L}": order[(L, True)]["acc"] for L in config.lengths}),
        check(f"temporal order: unclipped SGD, same init, batches and lr, does not solve at T={longest}",
              order[(longest, False)]["solved_at"] is None, acc=order[(longest, False)]["acc"]),
    ]
    figures = [_figure(config, ctx, surface.detach(), ws, bs, traj, wall_grads, predicted_growth, median_grad, order)]
    return Result(
        measurements={"wall_b": b_wall, "wall_peak_grad_by_T": wall_grads,
                      "wall_growth_fitted": fitted_growth, "wall_growth_predicted": predicted_growth, "surface_median_grad": median_grad,
                      "unclipped_jump_ratio": jump, "clipped_worst_final_loss": clipped_final,
                      "trajectories": {k: [{"final_loss": t["final_loss"], "max_step": t["max_step"]} for t in v]
                                       for k, v in traj.items()},
                      "temporal_order_acc": acc,
                      "temporal_order_solved_at": {f"T{L} {'clipped' if c else 'unclipped'}": r["solved_at"]
                                                   for (L, c), r in order.items()},
                      "grad_norm_median_max_unclipped_watcher": spikes},
        checks=checks, figures=figures,
        notes=f"x_0 = 0.5 and target 0.7 are our choices for the one-unit RNN; temporal order uses 4 distractor "
              f"symbols, an orthogonal W_hh, SGD + momentum 0.9 at lr {config.lr:g}; clipping by "
              f"gradwatch.remedies.clip.clip_by_global_norm({config.clip:g}). Quick mode omits T=100 (--full).",
    )


def _figure(config, ctx, surface, ws, bs, traj, wall_grads, growth, median_grad, order) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(21, 4.6), layout="constrained")
    im = ax[0].pcolormesh(bs, ws, torch.log10(surface + 1e-8), shading="auto", cmap="viridis")
    fig.colorbar(im, ax=ax[0], label="log₁₀ loss")
    for kind, style in (("unclipped", "-"), ("clipped", "--")):
        for i, t in enumerate(traj[kind]):
            ax[0].plot(t["path"][:, 1], t["path"][:, 0], style, color="w" if kind == "unclipped" else "r", lw=1.2,
                       label=kind if i == 0 else None)
    ax[0].set(xlim=(bs[0], bs[-1]), ylim=(ws[0], ws[-1]), xlabel="b", ylabel="w",
              title=f"one-unit RNN, T={config.unit_T}: loss surface and descent")
    ax[0].legend(loc="lower left")
    ts = list(wall_grads)
    ax[1].semilogy(ts, list(wall_grads.values()), "o-", label=f"peak |∂L/∂b| on the wall, w={config.wall_w:g}")
    p0 = wall_grads[ts[0]]
    ax[1].semilogy(ts, [p0 * growth ** (t - ts[0]) for t in ts], "--", label=f"∝ (w·σ′(x₀))^T = {growth:.3f}^T")
    ax[1].axhline(median_grad, color="grey", ls=":", label="median over the surface")
    ax[1].set(xlabel="T", ylabel="gradient", title="the gradient on the cliff explodes with T")
    ax[1].legend()
    for (L, clipped), r in order.items():
        colour = f"C{sorted(config.lengths).index(L)}"
        xs, ys = zip(*r["curve"]) if r["curve"] else ((), ())
        ax[2].plot(xs, ys, "-" if clipped else ":", color=colour, label=f"T={L} {'clipped' if clipped else 'unclipped'}")
        ax[3].plot(r["norms"].numpy(), "-" if clipped else ":", color=colour, lw=0.6,
                   label=f"T={L} {'clipped' if clipped else 'unclipped'}")
    ax[2].axhline(config.solved_acc, color="grey", ls=":")
    ax[2].set(xlabel="step", ylabel="test accuracy", title="temporal order (chance 0.25)")
    ax[2].legend(fontsize=8)
    ax[3].axhline(config.clip, color="k", lw=0.8, label="clip threshold")
    ax[3].set(yscale="log", xlabel="step", ylabel="global ‖g‖ before clipping", title="gradient norm per step")
    ax[3].legend(fontsize=8)
    return ctx.savefig(fig, "clipping")
