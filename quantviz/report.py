"""A standalone HTML report of a pipeline: one file, inline SVG, no server, no network.

    html = build_report(pipe)                       # computes the numerics for its Charts section
    html = build_report(pipe, compare(pipe, 3))     # or with a report you have (here with sensitivity)
    Path("report.html").write_text(html)
"""
from __future__ import annotations

import html
import json
from typing import Callable

from quantviz.numerics.compare import NumericsReport, compare
from quantviz.pipeline import Pipeline
from quantviz.render.charts import charts_html, execution_order, report_charts
from quantviz.render.dot import to_dot
from quantviz.render.svg import dot_to_svg
from quantviz.stage_views import stage_diff, stage_view

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,sans-serif;margin:0;color:#1e293b}
header{background:#0f172a;color:#f8fafc;padding:16px 24px}header h1{margin:0;font-size:22px}
main{padding:16px 24px}nav a{margin-right:10px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #cbd5e1;padding:3px 8px;font-size:13px;text-align:left}th{background:#f1f5f9}
section{border-top:1px solid #e2e8f0;margin-top:18px;padding-top:6px}.err{background:#fef2f2;border:1px solid #fca5a5;
padding:8px;border-radius:6px}.ok{color:#15803d}.fail{color:#b91c1c}.graph{overflow:auto;border:1px solid #e2e8f0;
max-height:900px}pre{background:#f8fafc;padding:8px;overflow:auto;font-size:12px}
figure.chart{margin:12px 0 20px;width:fit-content;max-width:100%}figure.chart svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#64748b}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def charts_section(pipe: Pipeline, numerics: NumericsReport | None = None) -> str:
    """The Charts section (inline SVG): ``charts_section(pipe)`` computes ``compare(pipe)`` when not given."""
    head = "<section id='charts' class='charts'><h2>Charts</h2>"
    if numerics is None:
        try:
            numerics = compare(pipe)
        # the report is written for failed runs too (the CLI writes it in a finally): keep the rest of it
        except Exception as exc:
            return f"{head}<p>The numerics could not be computed: {_e(exc)}</p></section>"
    reference = pipe.result_of("reference")
    order = execution_order(reference.graph) if reference is not None and reference.ok else {}
    charts = report_charts(numerics, order)
    if not charts:
        levels = {k: v.text for k, v in numerics.levels.items()}
        return f"{head}<p>No numerics to chart (levels: {_e(levels)}).</p></section>"
    return head + charts_html(charts) + "</section>"


def build_report(pipe: Pipeline, numerics_report: NumericsReport | None = None,
                 progress: Callable[[str], None] = lambda stage: None) -> str:
    """The whole report as one HTML string; ``numerics_report`` feeds the Charts section (computed when None)."""
    cfg = pipe.config
    rows = []
    for r in pipe.results.values():
        c = r.graph.kind_counts() if r.graph else {}
        status = '<span class="ok">ok</span>' if r.ok else '<span class="fail">failed</span>'
        rows.append(f"<tr><td><a href='#stage-{r.name}'>{r.name}</a></td><td>{status}</td><td>{r.seconds:.2f}</td>"
                    f"<td>{len(r.graph.nodes) if r.graph else ''}</td><td>{c.get('quantize', '')}</td>"
                    f"<td>{c.get('dequantize', '')}</td><td>{len(r.graph.patterns) if r.graph else ''}</td>"
                    f"<td>{c.get('delegate', '')}</td><td>{c.get('quantized_op', '')}</td></tr>")
    numerics = pipe.numerics().to_dict()
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>quantviz report: {_e(pipe.spec.name)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>quantviz: {_e(pipe.spec.name)}</h1><div>flow {_e(cfg.flow)} · mode {_e(cfg.mode)} · "
        f"{'per-channel' if cfg.per_channel else 'per-tensor'} · partitioner {_e(cfg.partitioner)} · "
        f"fusion {_e(cfg.fusion)}</div></header><main>",
        "<h2>Stages</h2><table id='stage-summary'><tr><th>stage</th><th>status</th><th>seconds</th><th>nodes</th>"
        "<th>q</th><th>dq</th><th>patterns</th><th>delegate calls</th><th>fused ops</th></tr>",
        *rows, "</table>",
    ]
    if numerics:
        parts.append("<h2>Numerics</h2><table id='numerics'>" + "".join(
            f"<tr><th>{_e(k)}</th><td>{v:.4g}</td></tr>" for k, v in numerics.items()) + "</table>")
    parts.append(charts_section(pipe, numerics_report))
    for r in pipe.results.values():
        progress(r.name)
        parts.append(f"<section id='stage-{r.name}' class='stage'><h2>{_e(r.name)}</h2>")
        if not r.ok and r.error is not None:
            parts.append(f"<div class='err'><b>{_e(r.error.message)}</b><br>Hint: {_e(r.error.hint)}</div>")
        for note in r.notes:
            parts.append(f"<p>{_e(note)}</p>")
        d = stage_diff(pipe, r.name)
        if d is not None:
            parts.append(f"<p class='diff'><b>Changed since {_e(d.before)}:</b> {_e(d.summary())}</p>")
        if r.calls:
            parts.append(f"<pre>{_e(chr(10).join(r.calls))}</pre>")
        if r.graph is not None:
            dot = to_dot(r.graph, stage_view(pipe, r.name))
            svg = dot_to_svg(dot)
            body = svg[svg.index("<svg"):] if svg else f"<pre class='dot'>{_e(dot)}</pre>"
            parts.append(f"<div class='graph'>{body}</div>")
            if r.graph.patterns:
                parts.append("<table class='patterns'><tr><th>id</th><th>pattern</th><th>dtype</th><th>module</th>"
                             "<th>source</th></tr>" + "".join(
                                 f"<tr><td>{p.id}</td><td>{_e(p.label())}</td><td>{_e(p.dtype or '')}</td>"
                                 f"<td>{_e(p.module_path or '')}</td><td>{_e(p.source or '')}</td></tr>"
                                 for p in r.graph.patterns) + "</table>")
        parts.append("</section>")
    parts.append(f"<script type='application/json' id='config'>{_e(json.dumps(cfg.to_dict()))}</script>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
