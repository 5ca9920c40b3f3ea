"""The report's sections beyond the findings: the root cause that leads it, the before/after
comparison and the run itself (command line, versions, model, per-layer table, events, all
metadata). Every value is escaped.

Example:
    >>> when(0.0)[:4], when("2024-05-01T10:00:00")
    ('1970', '2024-05-01T10:00:00')
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shlex
from typing import Any

from .figures import fig_gradient_flow
from .format import fmt, layer_label, remedy_code, root_lines, run_metrics, short
from .htmlkit import code, details, esc, table
from .layers import layer_rows
from .plotting import data_uri, share_ylim, to_png

_HIGHER = ("acc", "f1", "auc", "precision", "recall", "score", "r2")
_LOWER = ("loss", "error", "err", "perplexity", "ppl", "mse", "mae")


def when(value: Any) -> str:
    """A timestamp (epoch seconds or text) as ``YYYY-MM-DD HH:MM:SS`` UTC, or the text itself."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        t = _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def root_cause_section(diagnosis) -> str:
    """The report's lead: the root cause, its first fix with the code that applies it, what
    follows from it and any independent problem (empty for a healthy run).

    Example:
        >>> from gradwatch.findings import Diagnosis, Finding, Remedy
        >>> root = Finding("learning_rate_too_high", "critical", 0, [], "steps rewrite 40% of the weights",
        ...                remedies=[Remedy("reduce_lr", "Lower the learning rate 10×", "lr *= 0.1")])
        >>> html = root_cause_section(Diagnosis(steps=9, findings=[root]))
        >>> html.startswith('<section id="root-cause"'), "reduce_lr" in html, "lr *= 0.1" in html
        (True, True, True)
        >>> root_cause_section(Diagnosis(steps=9))
        ''
    """
    lines = root_lines(diagnosis)
    if not lines:
        return ""
    root = diagnosis.root
    dl = "".join(f"<dt>{esc(label)}</dt><dd>{esc(text)}</dd>" for label, text in lines)
    snippet = remedy_code(root.remedies[0]) if root.remedies else ""
    snippet = f"<pre><code>{esc(snippet)}</code></pre>" if snippet else ""
    return f'<section id="root-cause"><h2>Root cause</h2><dl class="info">{dl}</dl>{snippet}</section>'


def consequence_note(finding) -> str:
    """A line under a finding that follows from another: which root it follows from.

    Example:
        >>> from gradwatch.findings import Finding
        >>> consequence_note(Finding("nonfinite", "critical", 7, [], "NaN", consequence_of="learning_rate_too_high"))
        '<p class="follows">follows from <a href="#root-cause"><code>learning_rate_too_high</code></a>: fix that first</p>'
        >>> consequence_note(Finding("nonfinite", "critical", 7, [], "NaN"))
        ''
    """
    root = getattr(finding, "consequence_of", None)
    if not root:
        return ""
    return f'<p class="follows">follows from <a href="#root-cause">{code(root)}</a>: fix that first</p>'


def compare_section(run, diagnosis, compare) -> str:
    """Before/after: verdicts, metrics, final loss and gradient flow of both runs side by side."""
    after_run, after_diag, label = compare
    label = str(label or "after")
    mb, ma = run_metrics(run), run_metrics(after_run)
    rows = [("verdict", diagnosis.verdict, after_diag.verdict, "verdict")]
    keys = list(dict.fromkeys([*mb, *ma]))
    for k in keys:
        rows.append((k, mb.get(k, math.nan), ma.get(k, math.nan), _direction(k)))
    if not any(k.replace("_", " ").lower() == "final loss" for k in keys):
        rows.append(("final loss", _last_loss(run), _last_loss(after_run), "lower"))
    rows.append(("problems", _kinds(diagnosis), _kinds(after_diag), ""))
    rows.append(("steps", diagnosis.steps, after_diag.steps, ""))
    body = "".join(_cmp_row(*r) for r in rows)
    tbl = (f'<table class="cmp"><thead><tr><th></th><th>before</th><th>{esc(label)}</th></tr></thead>'
           f"<tbody>{body}</tbody></table>")
    return (f'<section id="compare"><h2>Before and after</h2><p class="sub">{esc(label)}</p>{tbl}'
            + _flow_pair(run, after_run, label) + "</section>")


def _direction(name: str) -> str:
    n = name.lower()
    if any(w in n for w in _LOWER):
        return "lower"
    return "higher" if any(w in n for w in _HIGHER) else ""


def _cmp_row(name: str, before: Any, after: Any, better: str) -> str:
    cls = "num"
    if better == "verdict":
        before, after = str(before), str(after)
        if before != after:
            cls += " better" if after == "healthy" else " worse"
    elif better and _finite(before) and _finite(after) and before != after:
        improved = (after > before) if better == "higher" else (after < before)
        cls += " better" if improved else " worse"
    return (f'<tr><th>{esc(name)}</th><td class="num">{esc(_show(before))}</td>'
            f'<td class="{cls}">{esc(_show(after))}</td></tr>')


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _show(x: Any) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "—"
    return fmt(x) if isinstance(x, (int, float)) else str(x)


def _last_loss(run) -> float:
    loss = run.steps["loss"] if len(run.steps) else []
    finite = [float(v) for v in loss if math.isfinite(v)]
    return finite[-1] if finite else math.nan


def _kinds(diagnosis) -> str:
    kinds = [f.kind for f in diagnosis.findings if f.serious]
    return ", ".join(dict.fromkeys(kinds)) or "none"


def _flow_pair(before, after, label: str) -> str:
    """Gradient flow of both runs side by side, one row per panel, y axes shared in a row."""
    out = []
    for panel in ("delta", "weight"):
        figs = [fig_gradient_flow(r, panels=(panel,)) for r in (before, after)]
        if all(f is None for f in figs):
            continue
        share_ylim(figs)
        cells = []
        for fig, name in zip(figs, ("before", label)):
            img = (f'<img alt="gradient flow, {esc(name)}" src="{data_uri(to_png(fig))}">'
                   if fig is not None else '<p class="none">not recorded</p>')
            cells.append(f"<figure><figcaption>{esc(name)}</figcaption>{img}</figure>")
        out.append(f'<div class="pair">{"".join(cells)}</div>')
    if not out:
        return ""
    return "<h4>Gradient flow, output → input</h4>" + "".join(out)


def run_section(run) -> str:
    """The run: command line, status, versions, watch settings, model, layers, events, meta."""
    m = run.meta
    info: list[tuple[str, str]] = [("directory", code(run.dir))]
    if m.get("argv"):
        argv = m["argv"] if isinstance(m["argv"], list) else [str(m["argv"])]
        info.append(("command", code(shlex.join(str(a) for a in argv))))
    for key in ("status", "started", "ended"):
        if m.get(key) is not None:
            info.append((key, esc(when(m[key]) if key != "status" else m[key])))
    info.append(("steps", esc(len(run.steps))))
    versions = ", ".join(f"{k} {m[k]}" for k in ("gradwatch", "torch") if m.get(k))
    if versions:
        info.append(("versions", esc(versions)))
    if m.get("loss_fn"):
        info.append(("loss", code(m["loss_fn"])))
    if isinstance(m.get("config"), dict) and m["config"]:
        info.append(("watch settings", esc(", ".join(f"{k}={v}" for k, v in m["config"].items()))))
    info += _model_info(m.get("model") or {})
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in info)
    parts = [f'<section id="run"><h2>Run</h2><dl class="info">{dl}</dl>', _layer_table(run),
             _model_layers(m.get("model") or {}), _events(run),
             details("All metadata", f"<pre><code>{esc(_json(m))}</code></pre>"), "</section>"]
    return "".join(p for p in parts if p)


def _model_info(model: dict) -> list[tuple[str, str]]:
    if not isinstance(model, dict) or not model:
        return []
    out = []
    what = [str(model.get("class", "model"))]
    if model.get("n_params") is not None:
        tensors = f" in {model['n_tensors']} tensors" if model.get("n_tensors") is not None else ""
        what.append(f"{model['n_params']:,} parameters{tensors}" if isinstance(model["n_params"], int)
                    else f"{model['n_params']} parameters{tensors}")
    if model.get("depth") is not None:
        what.append(f"{model['depth']} weight layers")
    out.append(("model", esc(" · ".join(what))))
    if model.get("activations"):
        out.append(("activations", esc(", ".join(f"{k} × {v}" for k, v in model["activations"].items()))))
    norms = model.get("norm_layers") or []
    out.append(("normalisation", esc(f"{len(norms)} layers" if norms else "none")))
    for r in model.get("recurrent") or []:
        out.append(("recurrent", esc(f"{layer_label(r.get('name', ''))}: {r.get('type')} "
                                     f"({r.get('nonlinearity')}), spectral radius {fmt(r.get('spectral_radius'))}")))
    for t in model.get("transformer_layers") or []:
        out.append(("transformer", esc(f"{layer_label(t.get('name', ''))}: "
                                       f"{'pre-LN' if t.get('norm_first') else 'post-LN'}")))
    opt = model.get("optimizer")
    if isinstance(opt, dict):
        groups = "; ".join(", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in g.items())
                           for g in opt.get("param_groups", []))
        out.append(("optimizer", esc(f"{opt.get('class')} ({groups})" if groups else opt.get("class"))))
    return out


def _layer_table(run) -> str:
    step, rows = layer_rows(run)
    if not rows:
        return ""
    body = [[("  ↳ " + r["name"].rsplit(".", 1)[-1]) if r["param"] else layer_label(r["name"]), r["type"],
             r["grad_norm"], r["delta"], r["update_ratio"], r["act_mean"], r["act_sat"], r["act_dead"]]
            for r in rows]
    t = table(["layer", "type", "‖∂L/∂W‖", "δ", "update/weight", "act mean", "saturated", "dead"],
              body, numeric={2, 3, 4, 5, 6, 7})
    return details(f"Per-layer gradients at step {step}", f'<div class="scroll">{t}</div>')


def _model_layers(model: dict) -> str:
    layers = model.get("layers") if isinstance(model, dict) else None
    if not layers:
        return ""
    body = [[layer_label(x.get("name", "")), x.get("type", ""), x.get("fan_in", ""), x.get("fan_out", ""),
             x.get("weight_std", math.nan), x.get("gain", math.nan), x.get("following_activation") or "—"]
            for x in layers]
    t = table(["layer", "type", "fan in", "fan out", "weight std", "gain std·√fan_in", "activation after"],
              body, numeric={2, 3, 4, 5})
    return details(f"Model layers at the start ({len(layers)})", f'<div class="scroll">{t}</div>')


def _events(run, limit: int = 300) -> str:
    ev = run.events
    if ev is None or ev.empty:
        return ""
    rows = [["—" if s is None or (isinstance(s, float) and math.isnan(s)) else int(s), k,
             short(_json(d, None), 240)] for s, k, d in ev[["step", "kind", "detail"]].head(limit).itertuples(index=False)]
    more = f" (first {limit})" if len(ev) > limit else ""
    return details(f"Events: {len(ev)}{more}", f'<div class="scroll">{table(["step", "kind", "detail"], rows)}</div>')


def _json(value: Any, indent: int | None = 2) -> str:
    text = json.dumps(value, indent=indent, default=str, ensure_ascii=False)
    return text if len(text) < 40_000 else text[:40_000] + "\n… (truncated)"


__all__ = ["root_cause_section", "consequence_note", "compare_section", "run_section", "when"]
