"""Fuzzing the public API with hypothesis: malformed models, hostile tensors and names, odd
configs. The only errors allowed are the documented ones (WatchError, StoreError, ValueError);
names from the model never reach the HTML unescaped; no SQL is built from strings."""

import ast
import math
import re
import sqlite3
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import gradwatch as gw
from gradwatch.report.html import render_html
from gradwatch.store import StoreError
from gradwatch.watcher import WatchError

DOCUMENTED = (WatchError, StoreError, ValueError)
SRC = Path(gw.__file__).parent
FUZZ = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE = ["<script>alert(1)</script>", "'; DROP TABLE steps; --", 'a"b', "x' OR '1'='1", "&amp;", "ünï😀",
           "--", "/*", "%s", "{0}", "\\", "a\nb", "\t", " ", "NULL", "sqlite_master", "<img src=x onerror=1>"]
names = st.one_of(st.sampled_from(HOSTILE),
                  st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12))


def build(layer_names):
    """Linear layers named by the fuzzer, with activations between them."""
    torch.manual_seed(0)
    m = nn.Sequential()
    for i, name in enumerate(layer_names):
        try:
            m.add_module(name, nn.Linear(4, 4))
        except (KeyError, TypeError):  # torch's own rules for names ('.' or an existing attribute)
            assume(False)
        m.add_module(f"act{i}", nn.Tanh() if i % 2 else nn.ReLU())
    m.add_module("head", nn.Linear(4, 2))
    return m


def train(model, out, steps=4, x_fn=None, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    with gw.watch(model, opt, out=out, **kw):
        for i in range(steps):
            x = x_fn(i) if x_fn else torch.randn(8, 4, generator=g)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


@FUZZ
@given(st.lists(names, min_size=1, max_size=3, unique=True))
def test_any_module_name_round_trips_through_the_store(layer_names):
    model = build(layer_names)
    with tempfile.TemporaryDirectory() as out:
        train(model, out, every=1)
        run = gw.load(out)
        assert set(layer_names) <= set(run.modules.name)  # stored and read back exactly (no SQL mangling)
        assert {f"{n}.weight" for n in layer_names} <= set(run.params.name)
        d = gw.diagnose(run)
        assert set(sum((f.layers for f in d.findings), [])) <= set(run.modules.name) | set(run.params.name)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs |= {(tag, a) for a, _ in attrs}
        for a, v in attrs:
            assert not (a == "src" and v and not v.startswith("data:")), (tag, a, v)

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_names_stay_text_in_the_report(tmp_path):
    """Every hostile name at once: the page's elements and attributes are the report's own, and
    the names come back as text when the page is parsed."""
    model = build(HOSTILE)
    train(model, tmp_path, every=1)
    run = gw.load(tmp_path)
    page = _Page()
    page.feed(render_html(run, gw.diagnose(run)))
    assert not page.tags & {"script", "iframe", "object", "embed", "form", "input", "svg", "math"}
    assert not {a for _, a in page.attrs if a.startswith("on")}
    assert page.tags <= {"html", "head", "meta", "title", "style", "body", "main", "header", "div", "h1", "h2", "h3",
                         "h4", "p", "section", "ul", "ol", "li", "a", "span", "code", "pre", "table", "thead", "tbody",
                         "tr", "th", "td", "details", "summary", "figure", "figcaption", "img", "footer", "article",
                         "strong", "em", "br", "small", "b", "i", "dl", "dt", "dd", "caption", "col", "colgroup",
                         "abbr", "sup", "sub", "nav", "aside", "hr", "mark", "time", "kbd", "samp", "var", "q"}
    text = "".join(page.text)
    shown = [n for n in HOSTILE if n.strip() and n in text]
    assert len(shown) >= len(HOSTILE) // 2  # the names are there, as text (the layer table lists them)


special = st.sampled_from([math.nan, math.inf, -math.inf, 1e38, -1e38, 0.0, 1e-45, 1.0])


@FUZZ
@given(batch=st.sampled_from([0, 1, 3]), value=special, where=st.sampled_from(["input", "weight", "none"]),
       step=st.integers(0, 3), stats=st.sampled_from(["default", "all"]))
def test_hostile_tensors_are_recorded_not_fatal(batch, value, where, step, stats):
    model = build(["fc"])
    if where == "weight":
        with torch.no_grad():
            model.fc.weight[0, 0] = value

    def x_fn(i):
        x = torch.randn(batch, 4)
        if where == "input" and i == step and batch:
            x[0, 0] = value
        return x

    with tempfile.TemporaryDirectory() as out:
        train(model, out, x_fn=x_fn, stats=stats, every=2)
        run = gw.load(out)
        assert list(run.steps.index) == [0, 1, 2, 3]
        d = gw.diagnose(run)
        assert d.verdict in ("healthy", "unhealthy")
        steps = run.steps
        bad = ~(steps.loss.map(math.isfinite) & steps.grad_norm.map(math.isfinite))
        assert (steps.nonfinite != "").tolist() == bad.tolist()  # every NaN/Inf is flagged, nothing else
        assert render_html(run, d).startswith("<!DOCTYPE html>")


configs = st.fixed_dictionaries({}, optional={
    "every": st.one_of(st.integers(-3, 50), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    "stats": st.one_of(st.sampled_from(["default", "all"]), st.text(max_size=5)),
    "flush_every": st.integers(-5, 100),
    "precision": st.one_of(st.sampled_from(["bfloat16", "float32"]), st.text(max_size=5)),
    "dead_window": st.one_of(st.integers(-2, 10), st.floats(allow_nan=True)),
    "first_stats_step": st.integers(-5, 10),
    "meta": st.dictionaries(st.one_of(st.text(max_size=5), st.sampled_from(["config", "argv", "schema", "model"])),
                            st.one_of(st.integers(), st.text(max_size=5), st.floats()), max_size=3),
})


@settings(FUZZ, max_examples=40)
@given(configs)
def test_configs_work_or_raise_a_documented_error(cfg):
    with tempfile.TemporaryDirectory() as out:
        try:
            train(build(["fc"]), out, **cfg)
        except DOCUMENTED as e:
            assert str(e) and "\n" not in str(e)  # one line saying what was wrong and what to do
            return
        assert len(gw.load(out).steps) == 4
        gw.diagnose(out)


@pytest.mark.parametrize("bad", [None, 3, "model", nn.ReLU(), nn.Linear(2, 2).requires_grad_(False),
                                 nn.Linear(2, 2, device="meta")])
def test_malformed_models_are_watch_errors(tmp_path, bad):
    with pytest.raises(WatchError):
        gw.watch(bad, out=tmp_path)


def test_unwritable_out_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError):
        gw.watch(nn.Linear(2, 2), out=tmp_path / "file" / "run")


def test_a_name_utf8_cannot_hold_is_a_store_error(tmp_path):
    # a lone surrogate (possible in a Python str, impossible in UTF-8): the record cannot be written
    m = nn.Sequential()
    m.add_module("a\ud800", nn.Linear(2, 2))
    with pytest.raises(StoreError, match="surrogates"):
        train(m, tmp_path, steps=1, x_fn=lambda i: torch.randn(3, 2))


@pytest.mark.parametrize("content", [b"", b"not a database" * 50])
def test_a_garbage_run_db_is_a_store_error(tmp_path, content):
    (tmp_path / "run.db").write_bytes(content)
    with pytest.raises(StoreError):
        gw.diagnose(tmp_path)


# ---------------------------------------------------------------- no SQL from strings

_SQL_CALLS = {"execute", "executemany", "executescript", "read_sql_query", "read_sql"}


def _constant_strings(tree: ast.Module) -> set[str]:
    """Module-level names bound to a plain string literal (e.g. a schema script)."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return out


def test_no_sql_is_built_by_string_concatenation():
    offenders, calls = [], 0
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        consts = _constant_strings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if name not in _SQL_CALLS or not node.args:
                    continue
                calls += 1
                sql = node.args[0]
                literal = isinstance(sql, ast.Constant) and isinstance(sql.value, str)
                if not (literal or (isinstance(sql, ast.Name) and sql.id in consts)):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(sql)[:80]}")
        # and the grep: no f-string, %-format, .format or + next to an SQL keyword
        for i, line in enumerate(text.splitlines(), 1):
            if re.search(r"""(f["'](SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|PRAGMA)\b)|"""
                         r"""(["'](SELECT|INSERT|UPDATE|DELETE)\b[^"']*["']\s*(\+|%|\.format))""", line, re.I):
                offenders.append(f"{path.relative_to(SRC)}:{i}: {line.strip()[:80]}")
    assert calls >= 10  # the check saw the store's queries
    assert offenders == [], "SQL built from strings:\n" + "\n".join(offenders)
