"""Overhead benchmark: what watching costs a training step, against peers, on five CPU models.

Every configuration trains its own copy of the same model (same initial weights, same batch) with
full training steps (zero_grad, forward, loss, backward, Adam step). Configurations:

    unwatched      plain training
    control        plain training again, on its own copy: an A/A control, whose ratio to unwatched
                   shows how far two identical configurations drift apart on this machine
    default        gw.watch(model, opt, out=tmp) in its steady state: one watcher per model for the
                   whole benchmark, attached with an untimed lead-in of 100 steps (the dense start:
                   statistics every 10 steps), after which the statistics steps are spaced by
                   their measured cost within the default 0.5 % budget (gradwatch.schedule)
    start          a fresh gw.watch(model, opt, out=tmp) per round, its first 100 steps timed (the
                   dense start: 10 statistics steps, one every 10 steps)
    all            gw.watch(model, opt, out=tmp, stats="all")  (every statistic, every step), in its
                   steady state like default
    guard          gw.watch(model, opt, out=tmp, guard=True) in its steady state, like default
                   (the guard's snapshots every 100 good steps)
    anomaly        torch.autograd.detect_anomaly() around the step (PyTorch's own NaN hunter)
    tensorboard    SummaryWriter.add_histogram of every parameter every step (a common logging habit)

Measurement: configurations are interleaved in rounds (round r runs every configuration once,
in a shuffled order) so drift on a shared machine hits all alike; rounds are short (10 steps) and
many (40), so a burst of load from another process lands on every configuration about equally. A
round times ``--steps`` steps of each configuration (``start``: 100 steps, in one round of 8). A
fresh watcher's block ends with the wait for the run store to finish writing; a persistent one
flushes on its own schedule (every 500 steps or 10 s), its writer thread running alongside, and
its final flush is timed into its last round. Attach/detach are not timed, and no block gets
untimed warm-up steps (``--warmup``): a persistent watcher's steps are all timed, so every
configuration starts its block as cold, right after another model's block. The ratio is
total time over total steps, summed over all rounds, divided by the same for unwatched: the
sparse statistics steps are amortised exactly, never hidden by a median. Per-round ratios (which
scatter: a round holds a statistics step or not) are in the JSON.

    python benchmarks/overhead.py                       # all five models, ~20 min on a shared 2-core box
    python benchmarks/overhead.py --quick               # a fast smoke run
    python benchmarks/overhead.py --models mlp1000 --rounds 60 --configs unwatched,default,guard
    python benchmarks/overhead.py --configs unwatched,default,guard
    python benchmarks/overhead.py --split 200 --models mlp,cnn,transformer,lstm   # where the default cost goes
    python benchmarks/overhead.py --floor --models mlp,cnn,transformer,lstm --json benchmarks/overhead-floor.json
                                                        # what every-step statistics cost in bare torch ops
    python benchmarks/overhead.py --models mlp,cnn,lstm --configs unwatched,default,tensorboard

Writes ``benchmarks/overhead-results.json`` (``--json`` to change).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import gradwatch as gw  # noqa: E402
from gradwatch.guard import Guard  # noqa: E402
from gradwatch.probes.activations import activation_name  # noqa: E402

TARGETS = {"default": 1.03, "all": 1.15, "guard": 1.05}
#: configurations whose watcher lives for the whole benchmark (the steady state of a long run)
PERSISTENT = ("default", "guard", "all")
#: untimed steps after attaching a persistent watcher: the dense start (10 statistics steps)
LEAD_IN = 100
#: timed steps of the ``start`` configuration per round it runs in (one round in START_EVERY)
START_STEPS = 100
START_EVERY = 8


# ---------------------------------------------------------------- reference models


def make_mlp():
    layers, width = [nn.Linear(64, 256), nn.ReLU()], 256
    for _ in range(18):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers += [nn.Linear(width, 10)]
    m = nn.Sequential(*layers)
    for lin in m:  # He init: a healthy deep ReLU net (PyTorch's default init makes it vanish)
        if isinstance(lin, nn.Linear):
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            nn.init.zeros_(lin.bias)
    return m, torch.randn(64, 64), torch.randint(0, 10, (64,)), "20 Linear(256)+ReLU, batch 64"


def make_cnn():
    m = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    return m, torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)), "2×conv/BN/ReLU/pool on 1×28×28, batch 32"


class Encoder(nn.Module):
    def __init__(self, vocab=1000, d=128, layers=2, heads=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        return self.head(self.enc(self.emb(x)).mean(1))


def make_transformer():
    return Encoder(), torch.randint(0, 1000, (16, 32)), torch.randint(0, 10, (16,)), \
        "TransformerEncoder 2 layers, d_model 128, 4 heads, seq 32, batch 16"


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 128, batch_first=True)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def make_lstm():
    return LSTMNet(), torch.randn(16, 50, 32), torch.randint(0, 10, (16,)), "LSTM(32→128), seq 50, batch 16 + Linear"


def make_mlp1000():
    layers = []
    for _ in range(999):
        layers += [nn.Linear(32, 32), nn.Tanh()]
    layers += [nn.Linear(32, 10)]
    m = nn.Sequential(*layers)
    with torch.no_grad():  # orthogonal tanh: the signal stays finite and non-denormal over 1000 layers
        for lin in m:
            if isinstance(lin, nn.Linear):
                nn.init.orthogonal_(lin.weight, gain=1.0)
                lin.bias.zero_()
    return m, torch.randn(16, 32), torch.randint(0, 10, (16,)), "1000 Linear(32)+Tanh, batch 16, orthogonal init"


MODELS = {"mlp": make_mlp, "cnn": make_cnn, "transformer": make_transformer, "lstm": make_lstm,
          "mlp1000": make_mlp1000}


# ---------------------------------------------------------------- configurations


class Runner:
    """One configuration: its own model copy, optimizer and instrumentation."""

    def __init__(self, name, base, x, y, tmp):
        self.name = name
        self.model = copy.deepcopy(base)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.x, self.y = x, y
        self.loss_fn = nn.CrossEntropyLoss()
        self.tmp = Path(tmp) / name
        self.guard = Guard() if name == "guard" else None
        self.tb = None
        self.rounds = 0
        if name == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.tmp / "tb"))
        self.tb_step = 0
        self.watcher = None

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        if self.tb is not None:
            for n, p in self.model.named_parameters():
                self.tb.add_histogram(n, p, self.tb_step)
            self.tb_step += 1

    def block(self, warmup, steps):
        """Untimed setup + warmup, then the timed block; returns (seconds, steps timed)."""
        if self.name in PERSISTENT:
            if self.watcher is None:
                self.watcher = gw.watch(self.model, self.opt, out=self.tmp / "run", guard=self.guard or False,
                                        stats="all" if self.name == "all" else "default")
                for _ in range(LEAD_IN):
                    self.step()
                self.watcher.flush(wait=True)
            return self._timed(self.watcher, 0, steps, keep=True)
        watcher = None
        out = self.tmp / f"r{self.rounds}"
        self.rounds += 1
        if self.name == "start":
            watcher, warmup, steps = gw.watch(self.model, self.opt, out=out), 0, START_STEPS
        return self._timed(watcher, warmup, steps, keep=False, out=out)

    def _timed(self, watcher, warmup, steps, keep, out=None):
        ctx = torch.autograd.detect_anomaly(check_nan=True) if self.name == "anomaly" else _Null()
        try:
            with ctx:
                for _ in range(warmup):
                    self.step()
                if watcher is not None and not keep:
                    watcher.flush(wait=True)
                if self.tb is not None:
                    self.tb.flush()
                t0 = time.perf_counter()
                for _ in range(steps):
                    self.step()
                # the store's writing is part of the cost: a fresh watcher's is waited for here; a
                # persistent one flushes on its own schedule (every 50 steps or 2 s, its writer
                # thread running alongside whatever runs next) and its last flush is timed in finish()
                if watcher is not None and not keep:
                    watcher.flush(wait=True)
                if self.tb is not None:
                    self.tb.flush()
                dt = time.perf_counter() - t0
        finally:
            if watcher is not None and not keep:
                watcher.detach()
                shutil.rmtree(out, ignore_errors=True)
        return dt, steps

    def finish(self):
        """Seconds to write what a persistent watcher still holds (added to its last round)."""
        if self.watcher is None:
            return 0.0
        t0 = time.perf_counter()
        self.watcher.flush(wait=True)
        return time.perf_counter() - t0

    def close(self):
        if self.watcher is not None:
            self.watcher.detach()
        if self.tb is not None:
            self.tb.close()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ---------------------------------------------------------------- where the default cost goes


def split(models, steps, console):
    """Per-step timing, watched (defaults) and unwatched interleaved step by step: the median
    ordinary step and the median statistics step (every 10th), each relative to unwatched."""
    from rich.table import Table

    table = Table(title=f"Default watcher: ordinary vs statistics steps (medians of {steps} interleaved steps)")
    for col in ("model", "unwatched", "ordinary step", "statistics step", "amortised (every=10)"):
        table.add_column(col, justify="right")
    rows = {}
    for name in models:
        torch.manual_seed(0)
        base, x, y, _ = MODELS[name]()
        tmp = tempfile.mkdtemp(prefix="gw-split-")
        plain, watched = Runner("unwatched", base, x, y, tmp), Runner("default", base, x, y, tmp)
        w = gw.watch(watched.model, watched.opt, out=Path(tmp) / "run", stats_budget=None)  # every 10th
        tu, ts, tn = [], [], []
        try:
            for i in range(steps):
                for r in (plain, watched):
                    t0 = time.perf_counter()
                    r.step()
                    dt = time.perf_counter() - t0
                    (tu if r is plain else ts if i % 10 == 0 else tn).append(dt)
        finally:
            w.detach()
            shutil.rmtree(tmp, ignore_errors=True)
        u, n, st = statistics.median(tu), statistics.median(tn), statistics.median(ts)
        rows[name] = {"unwatched_ms": 1e3 * u, "ordinary": n / u, "stats_step": st / u,
                      "stats_step_extra_ms": 1e3 * (st - u), "amortised": (9 * n + st) / 10 / u}
        table.add_row(name, f"{1e3 * u:.1f} ms", f"{n / u:.3f}×", f"{st / u:.2f}× (+{1e3 * (st - u):.1f} ms)",
                      f"{rows[name]['amortised']:.3f}×")
    console.print(table)
    return rows


# ---------------------------------------------------------------- the floor under stats="all"

class FloorRunner:
    """Plain training with a subset of the "all" statistics done by bare torch ops, no gradwatch:
    what those numbers cost at the least on this machine.

    parts: ``norms`` (per-parameter L2 norm of the gradients and their global norm: what the
    default watcher computes at every step), ``gradients`` (per-parameter L2 norm and max |g|:
    ``_foreach_norm``, amax/amin),
    ``update`` (per-parameter weight norm; a copy of the weights before the step into buffers
    made once, then ``_foreach_sub_`` and ``_foreach_norm``: ‖w_after − w_before‖),
    ``delta`` (a forward hook on every module registering a tensor hook that takes ‖∂L/∂h‖),
    ``activations`` (per activation module: mean, std, fraction exactly zero, per-unit max over
    the batch for "fired"). Left out, so the true floor is higher: identical units, saturated
    tails, per-module non-finite counts, per-time-step norms, moving anything to the host.
    ``fused``: the same numbers from ``torch.compile``d functions, so that each is one pass that
    computes several statistics at once: the gradients' norm and max |g|; the copy of the weights
    with their norm; ‖w_after − w_before‖ without writing the difference; an activation's sum,
    sum of squares, zero count and per-unit max. (Compiling takes minutes on the CPU, once.)
    """

    def __init__(self, parts, base, x, y):
        self.parts = parts
        self.model = copy.deepcopy(base)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.x, self.y, self.loss_fn = x, y, nn.CrossEntropyLoss()
        self.params = list(self.model.parameters())
        self.bufs = [torch.empty_like(p) for p in self.params] if "update" in parts else None
        self.fused = _fused_functions() if "fused" in parts else None
        self.kept = []
        self.handles = []
        if "delta" in parts:
            for m in self.model.modules():
                if m is not self.model:
                    self.handles.append(m.register_forward_hook(self._delta))
        if "activations" in parts:
            for m in self.model.modules():
                if activation_name(m):  # the modules the watcher takes for activations
                    self.handles.append(m.register_forward_hook(self._activation))

    def _delta(self, module, args, out):
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: self.kept.append(torch.linalg.vector_norm(g)))

    def _activation(self, module, args, out):
        o = out.detach()
        o = o.reshape(-1, o.shape[-1]) if o.dim() > 1 else o[None]
        if self.fused is not None:
            self.kept += self.fused["activation"](o)
            return
        self.kept += [o.mean(), o.std(), (o == 0).sum(), o.amax(0) > 0]

    @torch.no_grad()
    def _before(self):
        grads = [p.grad for p in self.params]
        if self.fused is not None:
            self.kept += self.fused["gradients"](grads)
            self.kept.append(self.fused["snapshot"]([p.detach() for p in self.params], self.bufs))
            return
        if "norms" in self.parts:
            norms = torch.stack(torch._foreach_norm(grads, 2))
            self.kept += [norms, torch.linalg.vector_norm(norms)]
        if "gradients" in self.parts:
            self.kept += torch._foreach_norm(grads, 2)
            self.kept += [torch.maximum(g.amax(), g.amin().neg()) for g in grads]
        if "update" in self.parts:
            w = [p.detach() for p in self.params]
            self.kept += torch._foreach_norm(w, 2)
            torch._foreach_copy_(self.bufs, w)

    @torch.no_grad()
    def _after(self):
        if self.fused is not None:
            self.kept.append(self.fused["update"]([p.detach() for p in self.params], self.bufs))
        elif "update" in self.parts:
            torch._foreach_sub_(self.bufs, [p.detach() for p in self.params])
            self.kept += torch._foreach_norm(self.bufs, 2)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self._before()
        self.opt.step()
        self._after()
        self.kept.clear()

    def close(self):
        for h in self.handles:
            h.remove()


FLOOR_PARTS = {"unwatched": (), "norms": ("norms",), "gradients": ("gradients",), "update": ("update",),
               "delta": ("delta",), "activations": ("activations",),
               "together": ("gradients", "update", "delta", "activations")}
#: with --fused: the same statistics as "together", each group of them one compiled pass
FUSED_PARTS = {"fused": ("gradients", "update", "delta", "activations", "fused")}


def _fused_functions():
    """The statistics of FloorRunner as ``torch.compile``d functions (one pass each where the
    compiler fuses the reductions); compiled on first call, per shape."""
    def gradients(gs):
        return [torch.stack([torch.linalg.vector_norm(g) for g in gs]), torch.stack([g.abs().amax() for g in gs])]

    def snapshot(ws, bufs):
        for w, b in zip(ws, bufs):
            b.copy_(w)
        return torch.stack([torch.linalg.vector_norm(w) for w in ws])

    def update(ws, bufs):
        return torch.stack([torch.linalg.vector_norm(w - b) for w, b in zip(ws, bufs)])

    def activation(o):
        return [o.sum(), (o * o).sum(), (o == 0).sum(), o.amax(0) > 0]

    return {k: torch.compile(f, dynamic=False) for k, f in
            {"gradients": gradients, "snapshot": snapshot, "update": update, "activation": activation}.items()}


def floor(models, rounds, steps, console, fused=False):
    """The least the every-step statistics cost with bare torch ops (FloorRunner), per part and
    all together, interleaved in rounds like the main table; prints a table, returns the rows.
    ``fused``: also all together from compiled, fused statistics."""
    from rich.table import Table

    parts_of = {**FLOOR_PARTS, **(FUSED_PARTS if fused else {})}
    table = Table(title=f"The floor under stats=\"all\": a subset of its statistics in bare torch ops, every step "
                        f"({rounds} rounds × {steps} steps, interleaved)")
    table.add_column("model")
    table.add_column("unwatched", justify="right")
    for name in list(parts_of)[1:]:
        table.add_column(name, justify="right")
    rows = {}
    for name in models:
        torch.manual_seed(0)
        base, x, y, _ = MODELS[name]()
        runners = {k: FloorRunner(parts, base, x, y) for k, parts in parts_of.items()}
        for r in runners.values():
            for _ in range(3):
                r.step()
        times = {k: [] for k in runners}
        shuffle = random.Random(0)
        for rnd in range(rounds):
            for k in shuffle.sample(list(runners), len(runners)):
                t0 = time.perf_counter()
                for _ in range(steps):
                    runners[k].step()
                times[k].append((rnd, time.perf_counter() - t0, steps))
        for r in runners.values():
            r.close()
        base_t = sum(t for _, t, _ in times["unwatched"])
        rows[name] = {k: sum(t for _, t, _ in v) / base_t for k, v in times.items()}
        rows[name]["unwatched_ms"] = 1e3 * base_t / (rounds * steps)
        cells = []
        for k in list(parts_of)[1:]:
            lo, hi = _bootstrap_interval(times[k], times["unwatched"])
            cells.append(f"{rows[name][k]:.3f}× ({lo:.2f}–{hi:.2f})")
        table.add_row(name, f"{rows[name]['unwatched_ms']:.1f} ms", *cells)
    console.print(table)
    console.print("A lower bound for stats=\"all\": the statistics left out (identical units, saturation, "
                  "non-finite counts per module, per-time-step norms, the transfer to the host) cost more on top.")
    return rows


# ---------------------------------------------------------------- driver


def _schedule_info(watcher):
    """Where a persistent watcher's statistics schedule stands: steps, statistics steps, spacing."""
    sch = watcher.schedule
    return {"steps": watcher.step, "stats_steps": sch.done, "next_stats_step": sch.next_stats,
            "gap_now": sch._gap()}


def bench_model(name, configs, rounds, steps, warmup, tmp, log):
    torch.manual_seed(0)
    base, x, y, desc = MODELS[name]()
    n_tensors = sum(1 for _ in base.parameters())
    n_modules = sum(1 for _ in base.modules())
    n_params = sum(p.numel() for p in base.parameters())
    runners = [Runner(c, base, x, y, Path(tmp) / name) for c in configs]  # a run directory per model and config
    for r in runners:  # warm the allocator, the kernels and the optimizer state
        for _ in range(3):
            r.step()
    times = {c: [] for c in configs}  # per round it ran: (round, seconds, steps)
    t_start = time.perf_counter()
    shuffle = random.Random(0)
    for rnd in range(rounds):
        # a fresh order every round: a rotation would keep each configuration behind the same
        # neighbour all the time, and which one it follows (whose writer thread may still run,
        # whose model just left the caches) moves a ratio by 2-3 % on this machine
        order = shuffle.sample(runners, len(runners))
        for r in order:
            if r.name == "start" and rnd % START_EVERY:
                continue
            times[r.name].append((rnd, *r.block(warmup, steps)))
        if (rnd + 1) % max(1, rounds // 8) == 0 or rnd + 1 == rounds:
            log(f"  {name} round {rnd + 1}/{rounds}: " + "  ".join(
                f"{c}={1e3 * times[c][-1][1] / times[c][-1][2]:.1f}ms" for c in configs if times[c]))
    for r in runners:
        if r.watcher is not None:
            rnd, t, n = times[r.name][-1]
            times[r.name][-1] = (rnd, t + r.finish(), n)
    guard_skips = {r.name: (r.guard.skips, r.guard.rollbacks) for r in runners if r.guard is not None}
    schedules = {r.name: _schedule_info(r.watcher) for r in runners if r.watcher is not None}
    for r in runners:
        r.close()

    def per_step(c):
        return sum(t for _, t, _ in times[c]) / sum(n for _, _, n in times[c])

    base = per_step("unwatched")
    res = {"model": name, "description": desc, "param_tensors": n_tensors, "modules": n_modules,
           "parameters": n_params, "seconds": time.perf_counter() - t_start,
           "unwatched_ms": 1e3 * base, "configs": {}, "schedules": schedules,
           "guard_skips_rollbacks": guard_skips.get("guard")}
    for c in configs:
        plain = {rnd: t / n for rnd, t, n in times["unwatched"]}
        ratios = sorted((t / n) / plain[rnd] for rnd, t, n in times[c])
        lo, hi = _bootstrap_interval(times[c], times["unwatched"])
        res["configs"][c] = {"step_ms": 1e3 * per_step(c), "ratio": per_step(c) / base,
                             "ratio_95": [lo, hi],
                             "round_ratio_min": ratios[0], "round_ratio_max": ratios[-1],
                             "round_ms": [1e3 * t / n for _, t, n in times[c]]}
    return res


def _bootstrap_interval(rows, plain_rows, draws=2000, seed=0):
    """A 95 % interval of the ratio (total time per step ÷ unwatched's), resampling rounds: each
    draw picks rounds with replacement and recomputes both totals over the rounds picked."""
    plain = {rnd: (t, n) for rnd, t, n in plain_rows}
    pairs = [(t, n, *plain[rnd]) for rnd, t, n in rows if rnd in plain]
    if len(pairs) < 2:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    out = []
    for _ in range(draws):
        pick = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        t = sum(p[0] for p in pick) / sum(p[1] for p in pick)
        u = sum(p[2] for p in pick) / sum(p[3] for p in pick)
        out.append(t / u)
    out.sort()
    return out[int(0.025 * draws)], out[int(0.975 * draws) - 1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {','.join(MODELS)}")
    ap.add_argument("--configs", default="unwatched,control,default,start,all,guard,anomaly",
                    help="add ,tensorboard for the TensorBoard peer (slow: seconds per step on mlp1000)")
    ap.add_argument("--steps", type=int, default=10,
                    help="timed steps per configuration per round (short rounds: load bursts hit all alike)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed steps before each timed block of the configurations without a persistent "
                         "watcher (default 0: every block starts as cold as a watched one, whose steps are all timed)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 20 steps (a smoke run)")
    ap.add_argument("--json", default=str(HERE / "overhead-results.json"))
    ap.add_argument("--floor", action="store_true",
                    help="instead: what a subset of the every-step statistics costs in bare torch ops (no gradwatch)")
    ap.add_argument("--fused", action="store_true",
                    help="with --floor: also the same statistics from torch.compile'd, fused passes "
                         "(compiles for minutes)")
    ap.add_argument("--split", type=int, default=0, metavar="STEPS",
                    help="instead: time ordinary vs statistics steps of the default watcher over STEPS steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 2, 20
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if "unwatched" not in configs:
        configs.insert(0, "unwatched")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    torch.set_num_threads(args.threads)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    if args.split:
        return split(models, args.split, console)
    if args.floor:
        rows = floor(models, args.rounds, args.steps, console, fused=args.fused)
        Path(args.json).write_text(json.dumps({"floor": rows, "rounds": args.rounds, "steps": args.steps,
                                               "threads": args.threads}, indent=1))
        return rows
    results = []
    tmp = tempfile.mkdtemp(prefix="gw-overhead-")
    try:
        for m in models:
            console.print(f"[bold]{m}[/bold]")
            results.append(bench_model(m, configs, args.rounds, args.steps, args.warmup, tmp,
                                       lambda s: console.print(s, highlight=False)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"Step time relative to unwatched (total of {args.rounds} rounds × {args.steps} steps; start: "
                        f"{START_STEPS} steps in every {START_EVERY}th round; {args.threads} thread(s), CPU)")
    table.add_column("model")
    table.add_column("tensors", justify="right")
    table.add_column("modules", justify="right")
    table.add_column("unwatched", justify="right")
    for c in configs[1:]:
        head = c + (f" (≤{TARGETS[c]:.2f})" if c in TARGETS else "")
        table.add_column(head, justify="right")
    both = "guard" in configs and "default" in configs
    if both:
        table.add_column("guard ÷ default", justify="right")
    for r in results:
        cells = []
        for c in configs[1:]:
            ratio = r["configs"][c]["ratio"]
            lo, hi = r["configs"][c]["ratio_95"]
            ok = c not in TARGETS or ratio <= TARGETS[c]
            cell = f"{ratio:.3f}× ({lo:.3f}–{hi:.3f})" if c in ("control", "default", "guard") else f"{ratio:.3f}×"
            cells.append(cell if ok else f"[red]{cell}[/red]")
        if both:  # the guard's own cost on top of the watching it implies
            g = r["configs"]["guard"]["step_ms"] / r["configs"]["default"]["step_ms"]
            r["guard_over_default"] = g
            cells.append(f"{g:.3f}×")
        table.add_row(r["model"], str(r["param_tensors"]), str(r["modules"]), f"{r['unwatched_ms']:.1f} ms", *cells)
    console.print(table)
    console.print("ratio = time per step over all rounds ÷ the same unwatched (in brackets: a 95 % interval, "
                  "resampling rounds); control: unwatched again on its own copy (the A/A noise floor); red: over the target. "
                  "default/guard: the steady state after a 100-step lead-in; start: the first 100 steps. "
                  "Per-round ratios and the statistics schedule reached are in the JSON.")
    payload = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
                    "python": platform.python_version()},
        "settings": {"rounds": args.rounds, "steps": args.steps, "warmup": args.warmup, "configs": configs,
                     "optimizer": "Adam(lr=1e-4)", "targets": TARGETS},
        "results": results,
    }
    Path(args.json).write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
