"""The report's stylesheet, inlined into every HTML file (nothing is fetched).

The severity colours match :data:`gradwatch.report.plotting.COLORS`.
"""

CSS = """
:root {
  --ink: #1d2330; --muted: #5d6677; --line: #e3e6ec; --bg: #f5f6f8; --card: #ffffff;
  --critical: #c0392b; --critical-bg: #fdecea; --warning: #b9770e; --warning-bg: #fef5e7;
  --info: #2e6da4; --info-bg: #eaf2fa; --healthy: #1e8449; --healthy-bg: #e9f7ef;
  --code-bg: #1f2430; --code-ink: #e6e9ef;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 56px; }
h1 { font-size: 26px; line-height: 1.25; margin: 2px 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 0; }
h4 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 16px 0 6px; }
code, pre { font-family: var(--mono); font-size: 13px; }
code { background: #eef0f4; padding: 1px 5px; border-radius: 4px; overflow-wrap: anywhere; }
pre { background: var(--code-bg); color: var(--code-ink); padding: 12px 14px; border-radius: 8px;
  overflow-x: auto; margin: 8px 0 4px; white-space: pre; }
pre code { background: none; padding: 0; color: inherit; }
a { color: var(--info); }
.brand { font-weight: 700; letter-spacing: .08em; text-transform: uppercase; font-size: 12px; color: var(--muted); }
.sub { color: var(--muted); margin: 0; overflow-wrap: anywhere; }
.verdict { margin-top: 20px; border-radius: 12px; padding: 18px 22px; border: 1px solid transparent;
  display: flex; flex-wrap: wrap; align-items: center; gap: 8px 22px; }
.verdict .word { font-size: 24px; font-weight: 750; }
.verdict .what { font-size: 15px; }
.verdict.healthy { background: var(--healthy-bg); border-color: #b7e1c7; color: var(--healthy); }
.verdict.unhealthy { background: var(--critical-bg); border-color: #f3c1bb; color: var(--critical); }
.verdict .what { color: var(--ink); }
.chips { list-style: none; display: flex; flex-wrap: wrap; gap: 6px; margin: 0; padding: 0; }
.chip { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600;
  text-decoration: none; border: 1px solid currentColor; background: #fff; }
.sev-critical { --sev: var(--critical); --sev-bg: var(--critical-bg); }
.sev-warning { --sev: var(--warning); --sev-bg: var(--warning-bg); }
.sev-info { --sev: var(--info); --sev-bg: var(--info-bg); }
.chip { color: var(--sev); }
.finding { background: var(--card); border: 1px solid var(--line); border-left: 5px solid var(--sev);
  border-radius: 10px; padding: 16px 20px 14px; margin: 14px 0; box-shadow: 0 1px 2px rgba(20, 30, 50, .05); }
.finding > header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 12px; }
.badge { background: var(--sev); color: #fff; font-size: 11px; font-weight: 700; letter-spacing: .06em;
  text-transform: uppercase; padding: 2px 8px; border-radius: 5px; }
.kind { color: var(--muted); font-family: var(--mono); font-size: 12.5px; }
.when { margin-left: auto; color: var(--muted); font-size: 13.5px; }
.summary { font-size: 16px; margin: 10px 0 4px; overflow-wrap: anywhere; }
.follows { color: var(--muted); font-size: 14px; margin: 2px 0 8px; }
.layers { margin: 6px 0 0; font-size: 13.5px; color: var(--muted); }
.layers code { color: var(--ink); }
.layers details { display: inline; }
.layers summary { display: inline; cursor: pointer; color: var(--info); }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 0 28px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; padding: 5px 10px 5px 0; border-bottom: 1px solid var(--line); vertical-align: top;
  overflow-wrap: anywhere; }
th { font-weight: 600; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; font-family: var(--mono); font-size: 12.5px; }
.kv { width: auto; min-width: 60%; }
.kv th { white-space: nowrap; padding-right: 24px; font-family: var(--mono); font-weight: 500; font-size: 12.5px; }
.kv td { font-family: var(--mono); font-size: 12.5px; }
ul.causes { margin: 0; padding-left: 18px; }
ul.causes li { margin: 3px 0; }
ol.remedies { margin: 0; padding-left: 22px; }
ol.remedies > li { margin: 8px 0 12px; }
.rhead { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 10px; }
.trial { font-size: 12.5px; font-weight: 600; padding: 1px 8px; border-radius: 999px; white-space: nowrap; }
.trial.ok { background: var(--healthy-bg); color: var(--healthy); }
.trial.no { background: var(--critical-bg); color: var(--critical); }
.first { font-size: 11px; font-weight: 700; color: var(--healthy); text-transform: uppercase; letter-spacing: .05em; }
.none { color: var(--muted); font-style: italic; }
figure { margin: 0 0 18px; background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px 12px; }
figure h3 { font-size: 15.5px; margin-bottom: 2px; }
figure img { display: block; max-width: 100%; height: auto; margin: 8px auto 0; }
figcaption { color: var(--muted); font-size: 13.5px; }
.skipped { list-style: none; padding: 0; margin: 6px 0 0; color: var(--muted); font-size: 13.5px; }
.skipped li::before { content: "— "; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.pair figure { margin: 0; }
.cmp { width: auto; min-width: 560px; }
.cmp thead th { text-align: right; }
.cmp tbody th { padding-right: 40px; }
.cmp td { padding-left: 32px; }
.cmp td.better { color: var(--healthy); font-weight: 600; }
.cmp td.worse { color: var(--critical); font-weight: 600; }
dl.info { display: grid; grid-template-columns: max-content 1fr; gap: 6px 20px; margin: 0; font-size: 14px; }
dl.info dt { color: var(--muted); }
dl.info dd { margin: 0; overflow-wrap: anywhere; }
details.more { margin: 12px 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; }
details.more > summary { cursor: pointer; font-weight: 600; }
details.more[open] > summary { margin-bottom: 8px; }
.scroll { max-height: 520px; overflow: auto; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; text-align: center; }
@media (max-width: 760px) { .pair { grid-template-columns: 1fr; } .when { margin-left: 0; } }
@media print { body { background: #fff; } .finding, figure { break-inside: avoid; box-shadow: none; } }
"""
