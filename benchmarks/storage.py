"""Storage benchmark: how big the run store of a long, deep watched run gets, and whether the
watcher's memory stays flat.

A real watched run (``gw.watch(model, opt, out=DIR, stats_budget=None)``: statistics every 10
steps for the whole run, the most the store holds (the default schedule spaces them out after
the first ten and stores less); bfloat16 vectors) of a ``--depth``-layer MLP (Linear + Tanh per
layer) for ``--steps`` steps. The store's size depends on the number of parameter tensors, modules and steps, not on
the width of the layers, so the layers are narrow (``--width``, default 8) and the batch tiny to
keep the run fast. Target (issue 2): 1 000 layers × 10 000 steps under 200 MB.

Memory: the process's resident set size (RSS) is sampled as the run goes; after a warm-up it
must not grow with the number of steps (the watcher keeps O(parameter tensors × window) state:
the pending records between flushes, the guard-free default keeps no history).

    python benchmarks/storage.py                         # 1000 layers, 10 000 steps (~10 min on 2 CPUs)
    python benchmarks/storage.py --steps 500 --depth 200 # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import gradwatch as gw  # noqa: E402

LIMIT_MB = 200.0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_model(depth: int, width: int) -> nn.Sequential:
    layers = []
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Tanh()]
    layers += [nn.Linear(width, 1)]
    m = nn.Sequential(*layers)
    with torch.no_grad():
        for lin in m:
            if isinstance(lin, nn.Linear) and lin.weight.shape[0] == lin.weight.shape[1]:
                nn.init.orthogonal_(lin.weight)
    return m


def table_sizes(db: Path) -> dict[str, dict[str, float]]:
    con = sqlite3.connect(db)
    out: dict[str, dict[str, float]] = {}
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        try:
            pages = dict(con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
            exact = True
        except sqlite3.OperationalError:  # dbstat not compiled in
            pages, exact = {}, False
        for t in tables:
            rows = con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({t})")]
            blob = 0
            if "data" in cols:
                blob = con.execute(f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM {t}").fetchone()[0]
            size = pages.get(t)
            if size is not None:  # add the table's indexes (sqlite_autoindex_<table>_N)
                size += sum(v for k, v in pages.items() if k.startswith(f"sqlite_autoindex_{t}_"))
            out[t] = {"rows": rows, "blob_bytes": blob, "bytes": size if exact else None}
    finally:
        con.close()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=1000, help="Linear layers")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="keep the run here (default: a temporary directory)")
    ap.add_argument("--json", default=str(HERE / "storage-results.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    model = make_model(args.depth, args.width)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, foreach=True)
    x, y = torch.randn(args.batch, args.width), torch.randn(args.batch, 1)
    n_tensors = sum(1 for _ in model.parameters())
    n_modules = sum(1 for _ in model.modules())
    tmp = None
    if args.out:
        out = Path(args.out)
        shutil.rmtree(out, ignore_errors=True)
    else:
        tmp = tempfile.mkdtemp(prefix="gw-storage-")
        out = Path(tmp) / "run"
    samples: list[tuple[int, float]] = []
    checkpoints = sorted({min(args.steps, s) for s in (100, 1000, 2000, 5000, 7500, 10_000)} | {args.steps})
    t0 = time.perf_counter()
    try:
        with gw.watch(model, opt, out=out, stats_budget=None) as w:  # the worst case: every 10 steps
            for step in range(1, args.steps + 1):
                opt.zero_grad(set_to_none=True)
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                opt.step()
                if step in checkpoints:
                    samples.append((step, rss_mb()))
                    console.print(f"  step {step:6d}  {time.perf_counter() - t0:7.1f} s  RSS {samples[-1][1]:7.1f} MB  "
                                  f"pending {len(w._pending)}", highlight=False)
        seconds = time.perf_counter() - t0
        db = out / "run.db"
        files = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
        size = db.stat().st_size
        tables = table_sizes(db)
        steps_stored = tables["steps"]["rows"]
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    mb = size / 2**20
    table = Table(title=f"Run store of a watched {args.depth}-layer MLP (width {args.width}, batch {args.batch}; "
                        "default settings)")
    projected = size / max(1, steps_stored) * 10_000 / 2**20
    for col in ("steps", "param tensors", "modules", "run.db (MB)", "bytes / step", "at 10 000 steps (MB)",
                f"≤ {LIMIT_MB:.0f} MB"):
        table.add_column(col, justify="right")
    at10k = f"{mb:.1f} (measured)" if steps_stored >= 10_000 else f"{projected:.1f} (bytes/step × 10 000)"
    table.add_row(str(steps_stored), str(n_tensors), str(n_modules), f"{mb:.1f}", f"{size / max(1, steps_stored):,.0f}",
                  at10k, "[green]yes[/green]" if max(mb, projected) <= LIMIT_MB else "[red]no[/red]")
    console.print(table)
    per = Table(title="Per table" + ("" if any(t["bytes"] for t in tables.values()) else
                                     " (dbstat not compiled in: payload = sum of blob lengths)"))
    for col in ("table", "rows", "blob payload (MB)", "on disk (MB)"):
        per.add_column(col, justify="right")
    for name, t in tables.items():
        per.add_row(name, f"{t['rows']:,}", f"{t['blob_bytes'] / 2**20:.1f}",
                    "-" if t["bytes"] is None else f"{t['bytes'] / 2**20:.1f}")
    console.print(per)
    mem = Table(title="Process memory (RSS) during the run")
    mem.add_column("step", justify="right")
    mem.add_column("RSS (MB)", justify="right")
    for s, r in samples:
        mem.add_row(str(s), f"{r:.1f}")
    console.print(mem)
    growth = samples[-1][1] - samples[0][1] if len(samples) > 1 else 0.0
    console.print(f"RSS growth from step {samples[0][0]} to {samples[-1][0]}: {growth:+.1f} MB; "
                  f"run took {seconds:.0f} s ({1e3 * seconds / args.steps:.1f} ms/step). "
                  "Size scales with tensors × modules × steps, not width.", highlight=False)
    payload = {"depth": args.depth, "width": args.width, "batch": args.batch, "steps": steps_stored,
               "param_tensors": n_tensors, "modules": n_modules, "run_db_bytes": size, "files": files,
               "bytes_per_step": size / max(1, steps_stored), "projected_10k_mb": projected, "limit_mb": LIMIT_MB, "tables": tables,
               "rss_mb": samples, "rss_growth_mb": growth, "seconds": seconds}
    Path(args.json).write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
