"""Charts of a numerics report, where people look rather than read: SQNR per node along execution order (one
line per level pair, the first divergence marked), LSB histograms per kernel op, sensitivity bars, accuracy.

One chart is plain data (`Chart`: tidy rows, the fields to plot, marks), built once from the report's tables and
drawn by two renderers:

- `vega_lite(chart)`: a Vega-Lite spec dict for the app (`st.vega_lite_chart`; Streamlit ships Vega, so it is
  offline too, and it adds tooltips and zoom).
- `to_svg(chart)`: inline SVG written here, for `quantviz report`'s single HTML file. Why SVG and not Vega's
  JavaScript inlined: the report must open offline with no CDN, and no installed package ships standalone
  vega/vega-lite bundles (Streamlit's copy is split into its own webpack chunks); inline SVG needs no script,
  shows in ``chromium --dump-dom``, prints, and stays readable in any viewer. Hovering a point shows its
  ``<title>``.

Nothing here imports Streamlit or Altair: the specs are dicts.

Example::

    for chart in report_charts(report, order=execution_order(pipe.results["convert"].graph)):
        spec = vega_lite(chart)        # the app
        svg = to_svg(chart)            # the HTML report
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:  # the report's records, read by attribute (no import at run time: charts need no torch)
    from quantviz.numerics.blame import BlameRow
    from quantviz.numerics.compare import NumericsReport
    from quantviz.numerics.kernel_instances import KernelInstance
    from quantviz.numerics.per_node import PerNodeRow
    from quantviz.numerics.sensitivity import SensitivityRow
    from quantviz.stages.base import OverlayPair

# the blame table's SQNR columns, earliest level pair first, with the label each line carries
PAIRS: tuple[tuple[str, str], ...] = (
    ("float_vs_reference_sqnr_db", "float → reference"),
    ("reference_vs_fused_sqnr_db", "reference → fused"),
    ("fused_vs_runtime_sqnr_db", "fused → runtime"),
)
PAIR_COLOURS = {"float → reference": "#2563eb", "reference → fused": "#d97706", "fused → runtime": "#7c3aed"}
LEVELS = ("float", "reference", "fused", "runtime")
LEVEL_COLOURS = {"float": "#64748b", "reference": "#2563eb", "fused": "#d97706", "runtime": "#7c3aed"}
DIVERGENCE_COLOUR = "#dc2626"
MAX_NAMED_NODES = 30  # up to this many nodes, the SVG line chart names each on its x axis
IDENTICAL_HEADROOM_DB = 10.0  # identical outputs (infinite SQNR) are drawn this far above the best finite point
ALL_IDENTICAL_DB = 100.0  # ... or here when every value is identical


@dataclass(frozen=True)
class Mark:
    """A vertical rule on a line chart: the first divergence."""

    x: int        # where on the x axis (execution order)
    node: str     # the node it marks
    label: str    # the text beside the rule ("first divergence: conv2")


@dataclass(frozen=True)
class Chart:
    """One chart as data: ``rows`` are tidy (one dict a point or bar); ``x``/``y``/``series`` name their fields.

    ``kind`` is "line" (x, y, one line per series), "histograms" (one small multiple per series, bars x → y),
    "bars" (horizontal bars: category x, value y, coloured by series), or "scatter" (points x → y coloured by
    series, a ``label`` each, the rows with ``front`` true joined as a step line: a Pareto front; ``threshold`` a
    horizontal rule, e.g. a recovery's target).
    """

    name: str
    title: str
    kind: str
    rows: list[dict[str, Any]]
    x: str
    y: str
    series: str = ""
    x_title: str = ""
    y_title: str = ""
    marks: list[Mark] = field(default_factory=list)  # line: vertical rules
    note: str = ""
    value_format: str = ".1f"  # how bar values and tooltips print ("%" for shares)
    identical_at: float | None = None  # line: the y where identical outputs (infinite SQNR) are drawn
    threshold: float | None = None  # scatter: a horizontal rule at this y
    threshold_label: str = ""
    colours: dict[str, str] = field(default_factory=dict)  # series -> colour, where the chart names its own

    def series_names(self) -> list[str]:
        """Series in first-seen order: ``Chart(...).series_names() -> ["float → reference", ...]``."""
        return list(dict.fromkeys(r[self.series] for r in self.rows)) if self.series else [""]

    def points(self, series: str) -> list[dict[str, Any]]:
        """The rows of one series, in x order: ``chart.points("fused → runtime")``."""
        return [r for r in self.rows if not self.series or r[self.series] == series]


# ---------------------------------------------------------------------------------------------------- values


def db_value(v: Any) -> float | None:
    """A table's SQNR as a float: ``db_value("inf") -> inf``, ``db_value(None) -> None``, NaN → None."""
    if isinstance(v, str):
        v = {"inf": math.inf, "-inf": -math.inf}.get(v)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
        return None
    return float(v)


def identical_at(values: Iterable[float]) -> float:
    """Where identical outputs (infinite SQNR) are drawn: the best finite value plus `IDENTICAL_HEADROOM_DB`, or
    `ALL_IDENTICAL_DB` when none is finite: ``identical_at([30.0, math.inf]) -> 40.0``."""
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) + IDENTICAL_HEADROOM_DB if finite else ALL_IDENTICAL_DB


def execution_order(graph: Any) -> dict[str, int]:
    """Node id → position in a GraphView (nodes are in topological order): ``execution_order(result.graph)``."""
    return {n.id: i for i, n in enumerate(graph.nodes)} if graph is not None else {}


def _bin_key(label: str) -> tuple[float, str]:
    """Histogram bins in LSB order: "0" < "1" < … < "7" < ">=8" (an open-ended bin right after its bound)."""
    digits = "".join(ch for ch in label if ch.isdigit())
    if not digits:
        return (math.inf, label)
    return (int(digits) + (0.0 if label.isdigit() else 0.5), label)


# ---------------------------------------------------------------------------------------------------- charts


def sqnr_by_node(blame: Iterable[BlameRow], per_node: Iterable[PerNodeRow] = (),
                 order: Mapping[str, int] | None = None) -> Chart | None:
    """SQNR per node along execution order, one line per level pair, the first divergence marked.

    From the blame table (``order``, one SQNR field per pair); with no blame rows, from ``per_node`` (float vs
    reference only), placed by ``order`` (node id → execution position; rows not in it are dropped).

        sqnr_by_node([BlameRow("conv1", "p0", "conv1", "conv2d", 3, float_vs_reference_sqnr_db=31.2,
                               reference_vs_fused_sqnr_db=math.inf)])
    """
    blame = sorted(blame, key=lambda r: r.order)
    # (x, node, module, op, pair label, dB)
    raw: list[tuple[int, str, str, str, str, float | None]]
    if blame:
        raw = [(r.order, r.node, r.module or "", r.op, label, db_value(getattr(r, col)))
               for r in blame for col, label in PAIRS]
        marks = [Mark(r.order, r.node, f"first divergence: {r.node}") for r in blame if r.first_divergence]
        note = "each quantized node's output compared between consecutive levels (blame table)"
    else:
        order = order or {}
        nodes = sorted((r for r in per_node if r.node in order), key=lambda r: order[r.node])
        raw = [(order[r.node], r.node, "", r.target, PAIRS[0][1], db_value(r.sqnr_db)) for r in nodes]
        marks = []
        note = "float vs reference per quantized node (no blame table: the later levels are not compared per node)"
    points = [(x, node, module, op, label, v) for x, node, module, op, label, v in raw
              if v is not None and v != -math.inf]
    if not points:
        return None
    cap = identical_at([v for *_, v in points])
    has_identical = any(math.isinf(v) for *_, v in points)
    rows = [{"order": x, "node": node, "module": module, "op": op, "pair": label,
             "sqnr_db": round(cap if math.isinf(v) else v, 3), "identical": math.isinf(v),
             "value": "identical (∞ dB)" if math.isinf(v) else f"{v:.1f} dB"}
            for x, node, module, op, label, v in points]
    return Chart("sqnr_by_node", "SQNR per node along execution order", "line", rows, "order", "sqnr_db", "pair",
                 "execution order (node position in the graph)", "SQNR dB (higher is closer)", marks, note,
                 identical_at=round(cap, 3) if has_identical else None)


def lsb_histograms(kernels: Iterable[KernelInstance]) -> Chart | None:
    """Per kernel op (instances summed), how many output elements are off the reference by 0, 1, 2, … LSB.

        lsb_histograms([KernelInstance("c1", "conv2d", histogram={"0": 90, "1": 10})])
    """
    by_op: dict[str, dict[str, int]] = {}
    instances: dict[str, int] = {}
    for k in kernels:
        op = k.op or "?"
        instances[op] = instances.get(op, 0) + 1
        bins = by_op.setdefault(op, {})
        for label, count in k.histogram.items():
            bins[str(label)] = bins.get(str(label), 0) + int(count)
    rows = []
    for op, bins in by_op.items():
        total = sum(bins.values()) or 1
        for i, label in enumerate(sorted(bins, key=_bin_key)):
            rows.append({"op": op, "lsb": label, "bin": i, "count": bins[label], "share": bins[label] / total,
                         "instances": instances[op]})
    if not rows:
        return None
    return Chart("lsb_histograms", "LSB error per kernel op (quantviz kernels vs reference)", "histograms", rows,
                 "lsb", "count", "op", "|kernel − reference| in LSB", "output elements (symlog scale)",
                 note="every instance of an op summed; a bar's label is its element count", value_format="d")


def sensitivity_bars(sensitivity: Iterable[SensitivityRow]) -> Chart | None:
    """SQNR gain when each layer stays float (the rest quantized), largest first.

        sensitivity_bars([SensitivityRow("fc", sqnr_db=30.0, gain_db=4.2)])
    """
    rows = [{"layer": r.layer, "gain_db": round(float(g), 3), "sqnr_db": db_value(r.sqnr_db),
             "accuracy_change": r.accuracy_change, "series": "gain"}
            for r in sensitivity if not r.error and (g := db_value(r.gain_db)) is not None and math.isfinite(g)]
    if not rows:
        return None
    rows.sort(key=lambda r: -r["gain_db"])
    return Chart("sensitivity_bars", "Sensitivity: SQNR gain with the layer kept float", "bars", rows, "layer",
                 "gain_db", "series", "layer", "gain dB (float vs reference)",
                 note="the most sensitive layer is on top", value_format="+.1f")


def accuracy_bars(accuracy: Mapping[str, Mapping[str, float | None]]) -> Chart | None:
    """Accuracy of each level on each data set with labels.

        accuracy_bars({"evaluation": {"float": 0.97, "runtime": 0.96}})
    """
    rows = [{"data": data, "level": level, "accuracy": float(a), "label": f"{data} · {level}"}
            for data, by_level in accuracy.items()
            for level in sorted(by_level, key=lambda lv: LEVELS.index(lv) if lv in LEVELS else len(LEVELS))
            if (a := by_level[level]) is not None and db_value(a) is not None]
    if not rows:
        return None
    return Chart("accuracy_bars", "Accuracy per level", "bars", rows, "label", "accuracy", "level", "data · level",
                 "accuracy", note="each bar's label is its exact accuracy (bars start at 0)", value_format=".2%")


def report_charts(report: NumericsReport, order: Mapping[str, int] | None = None) -> list[Chart]:
    """Every chart a NumericsReport has data for, in reading order.

        report_charts(compare(pipe), execution_order(pipe.results["convert"].graph))
    """
    made = [sqnr_by_node(report.blame, report.per_node, order),
            lsb_histograms(report.kernels), sensitivity_bars(report.sensitivity), accuracy_bars(report.accuracy)]
    return [c for c in made if c is not None]


def blame_overlay(rows_by_node: Mapping[str, BlameRow], pair: OverlayPair) -> tuple[tuple[str, float], ...]:
    """(node id, SQNR dB) for one stage's graph, from that stage's blame rows (``blame_by_stage``): the level pair
    the stage's program computes (its record's ``Stage.overlay``); identical outputs are drawn as the best value
    plus headroom.

        blame_overlay({"conv1": BlameRow(..., float_vs_reference_sqnr_db=30.5)}, pipe.stage("convert").overlay)
        # (("conv1", 30.5),)
    """
    col = pair
    values = {node: db_value(getattr(r, col)) for node, r in rows_by_node.items()}
    values = {k: v for k, v in values.items() if v is not None and v != -math.inf}
    cap = identical_at(list(values.values()))
    return tuple((k, cap if math.isinf(v) else v) for k, v in values.items())


def pair_label(pair: OverlayPair) -> str:
    """A level pair's words: ``pair_label("reference_vs_fused_sqnr_db") -> "reference → fused"``."""
    return dict(PAIRS)[pair]


# ---------------------------------------------------------------------------------------------------- Vega-Lite


def vega_lite(chart: Chart) -> dict[str, Any]:
    """A Vega-Lite spec (data inline) for ``st.vega_lite_chart(spec=...)``: ``vega_lite(accuracy_bars(acc))``."""
    spec = {"line": _vl_line, "histograms": _vl_histograms, "bars": _vl_bars, "scatter": _vl_scatter}[chart.kind](
        chart)
    return {"title": chart.title, **spec}


def _vl_line(c: Chart) -> dict[str, Any]:
    names = c.series_names()
    tooltip = [{"field": f} for f in ("node", "module", "op", "pair", "value", "order")]
    layers: list[dict[str, Any]] = [{
        "mark": {"type": "line", "point": True, "strokeWidth": 2},
        "encoding": {"x": {"field": c.x, "type": "quantitative", "title": c.x_title, "axis": _vl_node_axis(c)},
                     "y": {"field": c.y, "type": "quantitative", "title": c.y_title},
                     "color": {"field": c.series, "type": "nominal", "title": "level pair",
                               "scale": {"domain": names, "range": [PAIR_COLOURS.get(n, "#475569") for n in names]},
                               "legend": {"orient": "top"}},
                     "tooltip": tooltip}}]
    if c.identical_at is not None:
        layers.append({"data": {"values": [{"y": c.identical_at, "label": "identical (∞ dB)"}]},
                       "layer": [{"mark": {"type": "rule", "strokeDash": [2, 4], "color": "#94a3b8"},
                                  "encoding": {"y": {"field": "y", "type": "quantitative"}}},
                                 {"mark": {"type": "text", "align": "left", "dy": -6, "color": "#64748b"},
                                  "encoding": {"y": {"field": "y", "type": "quantitative"},
                                               "x": {"value": 4}, "text": {"field": "label"}}}]})
    if c.marks:
        layers.append({"data": {"values": [asdict(m) for m in c.marks]},
                       "layer": [{"mark": {"type": "rule", "color": DIVERGENCE_COLOUR, "strokeWidth": 2,
                                           "strokeDash": [6, 3]},
                                  "encoding": {"x": {"field": "x", "type": "quantitative"},
                                               "tooltip": [{"field": "label"}]}},
                                 {"mark": {"type": "text", "align": "left", "baseline": "bottom", "dx": 4, "y": -4,
                                           "color": DIVERGENCE_COLOUR, "fontWeight": "bold"},
                                  "encoding": {"x": {"field": "x", "type": "quantitative"},
                                               "text": {"field": "label"}}}]})
    return {"data": {"values": c.rows}, "height": 400, "layer": layers}


def _vl_node_axis(c: Chart) -> dict[str, Any]:
    """Integer ticks; up to `MAX_NAMED_NODES` nodes, one tick per node labelled with its name."""
    names = {r[c.x]: r["node"] for r in c.rows}
    if len(names) > MAX_NAMED_NODES:
        return {"tickMinStep": 1, "format": "d"}
    lookup = json.dumps({str(k): v for k, v in names.items()})
    return {"values": sorted(names), "labelExpr": f"{lookup}[datum.value] || datum.value", "labelAngle": -35,
            "labelOverlap": "greedy"}


def _vl_histograms(c: Chart) -> dict[str, Any]:
    bar = {"field": c.x, "type": "ordinal", "title": c.x_title, "sort": {"field": "bin"}, "axis": {"labelAngle": 0}}
    y = {"field": c.y, "type": "quantitative", "title": c.y_title, "scale": {"type": "symlog"}}
    return {"data": {"values": c.rows},
            "facet": {"field": c.series, "type": "nominal", "title": None},
            "columns": 3,
            "spec": {"width": 220, "height": 160, "layer": [
                {"mark": {"type": "bar", "color": "#0d9488"},
                 "encoding": {"x": bar, "y": y, "tooltip": [{"field": "op"}, {"field": "lsb", "title": "LSB"},
                                                            {"field": "count"}, {"field": "share", "format": ".2%"}]}},
                {"mark": {"type": "text", "dy": -6, "fontSize": 10},
                 "encoding": {"x": bar, "y": y, "text": {"field": "count", "format": ","}}}]},
            "resolve": {"scale": {"x": "independent"}}}


def _vl_bars(c: Chart) -> dict[str, Any]:
    names = c.series_names()
    colours = [LEVEL_COLOURS.get(n, "#0d9488") for n in names]
    y = {"field": c.x, "type": "nominal", "title": c.x_title, "sort": None, "axis": {"labelLimit": 260}}
    x = {"field": c.y, "type": "quantitative", "title": c.y_title}
    if c.value_format.endswith("%"):
        x["axis"] = {"format": "%"}
    tooltip = [{"field": k} for k in c.rows[0] if k not in (c.series,)]
    # Streamlit fits the whole chart (title, legend, axis) into the height: room for them plus a row per bar
    return {"data": {"values": c.rows}, "height": 30 * len(c.rows) + (130 if len(names) > 1 else 100), "layer": [
        {"mark": {"type": "bar"},
         "encoding": {"y": y, "x": x, "tooltip": tooltip,
                      "color": {"field": c.series, "type": "nominal", "scale": {"domain": names, "range": colours},
                                "legend": None if len(names) < 2 else {"orient": "top", "title": None}}}},
        {"mark": {"type": "text", "align": "left", "dx": 4},
         "encoding": {"y": y, "x": x, "text": {"field": c.y, "format": c.value_format.lstrip("+")}}}]}


def _vl_scatter(c: Chart) -> dict[str, Any]:
    names = c.series_names()
    x = {"field": c.x, "type": "quantitative", "title": c.x_title, "scale": {"zero": False, "nice": True}}
    y = {"field": c.y, "type": "quantitative", "title": c.y_title, "scale": {"zero": False}}
    tooltip = [{"field": k} for k in c.rows[0] if k not in ("front",)] if c.rows else []
    layers: list[dict[str, Any]] = [
        {"transform": [{"filter": "datum.front"}],
         "mark": {"type": "line", "interpolate": "step-after", "color": "#0f172a", "strokeDash": [4, 3]},
         "encoding": {"x": x, "y": y, "order": {"field": c.x}}},
        {"mark": {"type": "point", "filled": True, "size": 90},
         "encoding": {"x": x, "y": y, "tooltip": tooltip,
                      "color": {"field": c.series, "type": "nominal", "title": None,
                                "scale": {"domain": names, "range": [c.colours.get(n, "#475569") for n in names]},
                                "legend": {"orient": "top"}}}}]
    if c.threshold is not None:
        layers.append({"data": {"values": [{"y": c.threshold, "label": c.threshold_label}]},
                       "layer": [{"mark": {"type": "rule", "strokeDash": [6, 3], "color": DIVERGENCE_COLOUR},
                                  "encoding": {"y": {"field": "y", "type": "quantitative"}}},
                                 {"mark": {"type": "text", "align": "left", "dy": -6, "color": DIVERGENCE_COLOUR},
                                  "encoding": {"y": {"field": "y", "type": "quantitative"}, "x": {"value": 4},
                                               "text": {"field": "label"}}}]})
    return {"data": {"values": c.rows}, "height": 340, "layer": layers}


# ---------------------------------------------------------------------------------------------------- SVG

FONT = "font-family='system-ui,Segoe UI,Helvetica,sans-serif'"


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(value: float, fmt: str) -> str:
    return format(value, ",d") if fmt == "d" else format(value, fmt)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: ``nice_ticks(0, 47) -> [0, 10, 20, 30, 40, 50]``."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < hi - step * 1e-9 or len(ticks) < 2:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def to_svg(chart: Chart) -> str:
    """The chart as one inline ``<svg>`` element (no script, no external reference): ``to_svg(chart)``."""
    return {"line": _svg_line, "histograms": _svg_histograms, "bars": _svg_bars, "scatter": _svg_scatter}[
        chart.kind](chart)


def _svg_open(width: int, height: int, name: str, title: str) -> list[str]:
    return [f"<svg xmlns='http://www.w3.org/2000/svg' class='qv-chart' data-chart='{_e(name)}' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' {FONT} font-size='12' role='img'>",
            f"<title>{_e(title)}</title>",
            f"<text x='8' y='20' font-size='15' font-weight='600' fill='#0f172a'>{_e(title)}</text>"]


def _svg_line(c: Chart) -> str:
    names_at = {r[c.x]: r["node"] for r in c.rows}  # few nodes: name them on the x axis
    named = len(names_at) <= MAX_NAMED_NODES
    width, height = 900, 380 + (40 if named else 0)
    left, right, top, bottom = 64, 24, 84, 48 + (40 if named else 0)
    xs = [r[c.x] for r in c.rows] + [m.x for m in c.marks]
    ys = [r[c.y] for r in c.rows]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_ticks = nice_ticks(min(0.0, min(ys)), max(ys))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y_lo) / (y_hi - y_lo) * (height - top - bottom)

    out = _svg_open(width, height, c.name, c.title)
    for t in y_ticks:
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{py(t):.1f}' y2='{py(t):.1f}' stroke='#e2e8f0'/>"
                   f"<text x='{left - 6}' y='{py(t) + 4:.1f}' text-anchor='end' fill='#475569'>{t:g}</text>")
    x_ticks = sorted(names_at) if named else [t for t in nice_ticks(x_lo, x_hi, 8) if x_lo <= t <= x_hi]
    for t in x_ticks:
        label = (f"<text transform='translate({px(t) + 3:.1f} {height - bottom + 12}) rotate(-35)' "
                 f"text-anchor='end' fill='#475569' font-size='11'>{_e(names_at[t])}</text>") if named else \
            f"<text x='{px(t):.1f}' y='{height - bottom + 16}' text-anchor='middle' fill='#475569'>{t:g}</text>"
        out.append(f"<line x1='{px(t):.1f}' x2='{px(t):.1f}' y1='{height - bottom}' y2='{height - bottom + 4}' "
                   f"stroke='#475569'/>{label}")
    out.append(f"<line x1='{left}' x2='{width - right}' y1='{height - bottom}' y2='{height - bottom}' "
               "stroke='#475569'/>"
               f"<text x='{(left + width - right) / 2}' y='{height - 8}' text-anchor='middle' fill='#334155'>"
               f"{_e(c.x_title)}</text><text transform='translate(16 {(top + height - bottom) / 2}) rotate(-90)' "
               f"text-anchor='middle' fill='#334155'>{_e(c.y_title)}</text>")
    if c.identical_at is not None:
        y = py(c.identical_at)
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#94a3b8' "
                   f"stroke-dasharray='2 4'/><text x='{left + 4}' y='{y - 5:.1f}' fill='#64748b'>"
                   "identical (∞ dB)</text>")
    for m in c.marks:
        x = px(m.x)
        anchor = "end" if x > width * 0.7 else "start"
        dx = -5 if anchor == "end" else 5
        out.append(f"<g class='qv-divergence' data-x='{m.x}'><line x1='{x:.1f}' x2='{x:.1f}' y1='{top - 18}' "
                   f"y2='{height - bottom}' stroke='{DIVERGENCE_COLOUR}' stroke-width='2' stroke-dasharray='6 3'/>"
                   f"<text x='{x + dx:.1f}' y='{top - 8}' text-anchor='{anchor}' fill='{DIVERGENCE_COLOUR}' "
                   f"font-weight='700'>{_e(m.label)}</text></g>")
    legend_x = left
    for name in c.series_names():
        colour = PAIR_COLOURS.get(name, "#475569")
        pts = c.points(name)
        path = " ".join(f"{px(r[c.x]):.1f},{py(r[c.y]):.1f}" for r in pts)
        out.append(f"<g class='qv-series' data-series='{_e(name)}'><polyline points='{path}' fill='none' "
                   f"stroke='{colour}' stroke-width='2'/>" + "".join(
                       f"<circle cx='{px(r[c.x]):.1f}' cy='{py(r[c.y]):.1f}' r='3.5' fill='{colour}'>"
                       f"<title>{_e(r['node'])} ({_e(r['op'])}): {_e(name)} {_e(r['value'])}</title></circle>"
                       for r in pts) + "</g>")
        worst = min(pts, key=lambda r: r[c.y])
        if not worst["identical"]:
            wx = px(worst[c.x])
            anchor = "start" if wx < left + 80 else ("end" if wx > width - right - 80 else "middle")
            out.append(f"<text class='qv-worst' x='{wx:.1f}' y='{py(worst[c.y]) + 16:.1f}' "
                       f"text-anchor='{anchor}' font-size='11' fill='{colour}'>worst {_e(worst['node'])} "
                       f"{_e(worst['value'])}</text>")
        out.append(f"<rect x='{legend_x}' y='38' width='16' height='4' fill='{colour}'/>"
                   f"<text x='{legend_x + 20}' y='44' fill='#334155'>{_e(name)}</text>")
        legend_x += 40 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def _symlog(v: float) -> float:
    return math.copysign(math.log1p(abs(v)), v)


def _svg_histograms(c: Chart) -> str:
    ops = c.series_names()
    cell_w, cell_h, cols = 220, 190, min(4, len(ops))
    rows_n = math.ceil(len(ops) / cols)
    width, height = cols * cell_w + 16, 40 + rows_n * cell_h
    out = _svg_open(width, height, c.name, c.title)
    y_max = _symlog(max(r[c.y] for r in c.rows))
    for i, op in enumerate(ops):
        ox, oy = 8 + (i % cols) * cell_w, 40 + (i // cols) * cell_h
        pts = sorted(c.points(op), key=lambda r: r["bin"])
        plot_l, plot_b, plot_w, plot_h = ox + 40, oy + cell_h - 36, cell_w - 56, cell_h - 76
        n = len(pts)
        out.append(f"<g class='qv-small-multiple' data-op='{_e(op)}'>"
                   f"<text x='{ox + cell_w / 2}' y='{oy + 14}' text-anchor='middle' font-weight='600' "
                   f"fill='#0f172a'>{_e(op)} ({pts[0]['instances']} instance{'s' if pts[0]['instances'] != 1 else ''})"
                   f"</text><line x1='{plot_l}' x2='{plot_l + plot_w}' y1='{plot_b}' y2='{plot_b}' stroke='#475569'/>")
        slot = plot_w / max(n, 1)
        for j, r in enumerate(pts):
            h = _symlog(r[c.y]) / y_max * plot_h if y_max else 0
            x = plot_l + j * slot + slot * 0.15
            out.append(f"<rect class='qv-bin' data-lsb='{_e(r['lsb'])}' data-count='{r[c.y]}' x='{x:.1f}' "
                       f"y='{plot_b - h:.1f}' width='{slot * 0.7:.1f}' height='{h:.1f}' fill='#0d9488'>"
                       f"<title>{_e(op)}: {_e(r['lsb'])} LSB, {r[c.y]:,} elements ({r['share']:.2%})</title></rect>"
                       f"<text x='{x + slot * 0.35:.1f}' y='{plot_b - h - 4:.1f}' text-anchor='middle' "
                       f"font-size='10' fill='#334155'>{r[c.y]:,}</text>"
                       f"<text x='{x + slot * 0.35:.1f}' y='{plot_b + 14}' text-anchor='middle' fill='#475569'>"
                       f"{_e(r['lsb'])}</text>")
        out.append(f"<text x='{plot_l + plot_w / 2}' y='{plot_b + 30}' text-anchor='middle' font-size='11' "
                   f"fill='#334155'>{_e(c.x_title)}</text></g>")
    out.append("</svg>")
    return "".join(out)


def _svg_bars(c: Chart) -> str:
    label_w, bar_w, row_h = 260, 520, 26
    width, height = label_w + bar_w + 90, 72 + row_h * len(c.rows) + 30
    values = [r[c.y] for r in c.rows]
    ticks = nice_ticks(min(0.0, min(values)), max(0.0, max(values)))
    lo, hi = ticks[0], ticks[-1]

    def px(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * bar_w

    names = c.series_names()
    out = _svg_open(width, height, c.name, c.title)
    top = 56
    pct = c.value_format.endswith("%")
    for t in ticks:
        out.append(f"<line x1='{px(t):.1f}' x2='{px(t):.1f}' y1='{top - 4}' y2='{top + row_h * len(c.rows)}' "
                   f"stroke='#e2e8f0'/><text x='{px(t):.1f}' y='{top + row_h * len(c.rows) + 16}' "
                   f"text-anchor='middle' fill='#475569'>{format(t, '.0%') if pct else format(t, 'g')}</text>")
    out.append(f"<text x='{label_w + bar_w / 2}' y='{height - 4}' text-anchor='middle' fill='#334155'>"
               f"{_e(c.y_title)}</text>")
    for i, r in enumerate(c.rows):
        y = top + i * row_h
        v = r[c.y]
        x0, x1 = sorted((px(0.0), px(v)))
        colour = LEVEL_COLOURS.get(r.get(c.series, ""), "#0d9488") if len(names) > 1 else "#0d9488"
        out.append(f"<g class='qv-bar' data-label='{_e(r[c.x])}' data-value='{v}'>"
                   f"<text x='{label_w - 8}' y='{y + row_h * 0.65:.1f}' text-anchor='end' fill='#1e293b'>"
                   f"{_e(r[c.x])}</text><rect x='{x0:.1f}' y='{y + 4}' width='{max(x1 - x0, 1):.1f}' "
                   f"height='{row_h - 8}' fill='{colour}'><title>{_e(r[c.x])}: {_fmt(v, c.value_format)}</title>"
                   f"</rect><text x='{max(x1, px(0.0)) + 4:.1f}' y='{y + row_h * 0.65:.1f}' fill='#334155'>"
                   f"{_fmt(v, c.value_format)}</text></g>")
    out.append(f"<line x1='{px(0.0):.1f}' x2='{px(0.0):.1f}' y1='{top - 4}' y2='{top + row_h * len(c.rows)}' "
               "stroke='#475569'/></svg>")
    return "".join(out)


def _svg_scatter(c: Chart) -> str:
    width, height = 720, 400
    left, right, top, bottom = 64, 24, 72, 52
    xs = [float(r[c.x]) for r in c.rows]
    ys = [float(r[c.y]) for r in c.rows] + ([c.threshold] if c.threshold is not None else [])
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1), (y_hi if y_hi > y_lo else y_lo + 1)

    def px(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(v: float) -> float:
        return height - bottom - (v - y_lo) / (y_hi - y_lo) * (height - top - bottom)

    out = _svg_open(width, height, c.name, c.title)
    for t in y_ticks:
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{py(t):.1f}' y2='{py(t):.1f}' stroke='#e2e8f0'/>"
                   f"<text x='{left - 6}' y='{py(t) + 4:.1f}' text-anchor='end' fill='#475569'>{t:g}</text>")
    for t in x_ticks:
        out.append(f"<line x1='{px(t):.1f}' x2='{px(t):.1f}' y1='{height - bottom}' y2='{height - bottom + 4}' "
                   f"stroke='#475569'/><text x='{px(t):.1f}' y='{height - bottom + 16}' text-anchor='middle' "
                   f"fill='#475569'>{t:g}</text>")
    out.append(f"<line x1='{left}' x2='{width - right}' y1='{height - bottom}' y2='{height - bottom}' "
               f"stroke='#475569'/><text x='{(left + width - right) / 2}' y='{height - 10}' text-anchor='middle' "
               f"fill='#334155'>{_e(c.x_title)}</text><text transform='translate(16 {(top + height - bottom) / 2}) "
               f"rotate(-90)' text-anchor='middle' fill='#334155'>{_e(c.y_title)}</text>")
    if c.threshold is not None:
        y = py(c.threshold)
        out.append(f"<g class='qv-threshold'><line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' "
                   f"stroke='{DIVERGENCE_COLOUR}' stroke-dasharray='6 3'/><text x='{left + 4}' y='{y - 5:.1f}' "
                   f"fill='{DIVERGENCE_COLOUR}'>{_e(c.threshold_label)}</text></g>")
    front = sorted((r for r in c.rows if r.get("front")), key=lambda r: (r[c.x], -r[c.y]))
    if len(front) > 1:
        pts: list[str] = []
        for a, b in zip(front, front[1:]):
            pts += [f"{px(a[c.x]):.1f},{py(a[c.y]):.1f}", f"{px(b[c.x]):.1f},{py(a[c.y]):.1f}"]
        pts.append(f"{px(front[-1][c.x]):.1f},{py(front[-1][c.y]):.1f}")
        out.append(f"<polyline class='qv-front' points='{' '.join(pts)}' fill='none' stroke='#0f172a' "
                   "stroke-dasharray='4 3'/>")
    legend_x = left
    for name in c.series_names():
        colour = c.colours.get(name, "#475569")
        out.append(f"<g class='qv-series' data-series='{_e(name)}'>" + "".join(
            f"<circle cx='{px(r[c.x]):.1f}' cy='{py(r[c.y]):.1f}' r='5' fill='{colour}' fill-opacity='0.85'>"
            f"<title>{_e(r.get('label', ''))}: {_fmt(r[c.y], c.value_format)} at {_e(c.x_title)} {r[c.x]:g}"
            f"</title></circle>" for r in c.points(name)) + "</g>")
        out.append(f"<circle cx='{legend_x + 6}' cy='40' r='5' fill='{colour}'/>"
                   f"<text x='{legend_x + 16}' y='44' fill='#334155'>{_e(name)}</text>")
        legend_x += 36 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def charts_html(charts: Iterable[Chart]) -> str:
    """Every chart as a ``<figure>`` with its note, for the HTML report: ``charts_html(report_charts(r))``."""
    return "".join(f"<figure class='chart' id='chart-{_e(c.name)}'>{to_svg(c)}"
                   f"<figcaption>{_e(c.note)}</figcaption></figure>" for c in charts)
