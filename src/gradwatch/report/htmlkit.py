"""Small HTML building blocks for the report. Every value passes through :func:`esc`: module
names, argv and summaries come from the model and the run, and a model can name a module
``<script>alert(1)</script>``.

Example:
    >>> esc("<script>alert(1)</script>")
    '&lt;script&gt;alert(1)&lt;/script&gt;'
    >>> kv_table({"a<b": 1e-12})
    '<table class="kv"><tbody><tr><th>a&lt;b</th><td>1e-12</td></tr></tbody></table>'
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable

from .format import fmt, fmt_value, layer_label


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too, so it is safe inside attributes).

    Example:
        >>> esc('say "hi" & <b>')
        'say &quot;hi&quot; &amp; &lt;b&gt;'
    """
    return html.escape(str(value), quote=True)


def code(value: Any) -> str:
    """An inline ``<code>`` element holding escaped text.

    Example:
        >>> code("x<y")
        '<code>x&lt;y</code>'
    """
    return f"<code>{esc(value)}</code>"


def kv_table(items: dict[str, Any] | Iterable[tuple[str, Any]], cls: str = "kv") -> str:
    """A two-column table of names and formatted values (numbers to 3 significant digits).

    Example:
        >>> kv_table([("lr", 0.000123456), ("steps", 100)])
        '<table class="kv"><tbody><tr><th>lr</th><td>0.000123</td></tr><tr><th>steps</th><td>100</td></tr></tbody></table>'
    """
    pairs = items.items() if isinstance(items, dict) else items
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt_value(v))}</td></tr>" for k, v in pairs)
    return f'<table class="{esc(cls)}"><tbody>{rows}</tbody></table>'


def layer_list(layers: list[str], keep: int = 8) -> str:
    """Layer names as code chips; past ``keep``, the rest fold into a ``<details>``.

    Example:
        >>> layer_list(["", "0.weight"])
        '<code>(model)</code>, <code>0.weight</code>'
        >>> layer_list([str(i) for i in range(12)], keep=2)
        '<code>0</code>, <code>1</code> <details><summary>… (10 more)</summary> <code>2</code>, ...</details>'
    """
    chips = [code(layer_label(x)) for x in layers]
    if len(chips) <= keep + 1:
        return ", ".join(chips)
    rest = ", ".join(chips[keep:])
    return (", ".join(chips[:keep]) + f' <details><summary>… ({len(chips) - keep} more)</summary> '
            f"{rest}</details>")


def table(headers: list[str], rows: Iterable[list[Any]], numeric: set[int] = frozenset(),
          cls: str = "") -> str:
    """A plain table; cells are escaped, columns in ``numeric`` right-aligned and formatted.

    Example:
        >>> table(["layer", "norm"], [["0", 1e-9], ["2", float("nan")]], numeric={1})
        '<table><thead><tr><th>layer</th><th class="num">norm</th></tr></thead><tbody><tr><td>0</td><td class="num">1e-09</td></tr><tr><td>2</td><td class="num">—</td></tr></tbody></table>'
    """
    def cell(i: int, v: Any, tag: str) -> str:
        c = ' class="num"' if i in numeric else ""
        text = num(v) if (i in numeric and tag == "td") else esc(v)
        return f"<{tag}{c}>{text}</{tag}>"

    head = "".join(cell(i, h, "th") for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(i, v, "td") for i, v in enumerate(r)) + "</tr>" for r in rows)
    klass = f' class="{esc(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def num(v: Any) -> str:
    """A number for a table cell: a dash when not recorded (NaN), escaped text otherwise.

    Example:
        >>> num(0.000123456), num(float("nan")), num(float("inf"))
        ('0.000123', '—', 'NaN/inf')
    """
    if isinstance(v, float) and math.isnan(v):
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "NaN/inf"
    return esc(fmt(v))


def details(summary: str, body_html: str, open_: bool = False) -> str:
    """A collapsible block (no script needed); ``summary`` is escaped, ``body_html`` is not.

    Example:
        >>> details("a < b", "<p>more</p>")
        '<details class="more"><summary>a &lt; b</summary><p>more</p></details>'
    """
    o = " open" if open_ else ""
    return f'<details class="more"{o}><summary>{esc(summary)}</summary>{body_html}</details>'
