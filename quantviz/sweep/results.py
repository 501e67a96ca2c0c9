"""A sweep's outputs: ``sweep.json`` (engine facts and every cell), ``sweep.csv`` (one row per cell),
``sensitivity.csv`` (with ``--sensitivity``), ``sweep.html`` (a standalone heatmap), and the baseline gate.

Example::

    write_results(sweep, Path("out/sweep"))
    regressions = gate(load_sweep(Path("old/sweep.json")), sweep, max_drop_db=1.0)
"""
from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from quantviz.config import PipelineConfig
from quantviz.sweep.cell import SQNR_FIELDS, CellResult
from quantviz.sweep.ray_runner import Sweep

CONFIG_FIELDS = [f.name for f in fields(PipelineConfig)]
CSV_COLUMNS = ["cell", "model", *CONFIG_FIELDS, "ok", "failed_stage", "cause", *SQNR_FIELDS, "float_accuracy",
               "runtime_accuracy", "delegated_ops", "ops", "share_delegated", "fused_ops", "latency_ms", "seconds",
               "peak_rss_mb",
               "crashed", "most_sensitive_layer", "most_sensitive_gain_db", "worker"]


def csv_row(c: CellResult) -> dict[str, Any]:
    row: dict[str, Any] = {"cell": c.cell, "model": c.model}
    for name in CONFIG_FIELDS:
        v = c.config.get(name)
        row[name] = ";".join(v) if isinstance(v, list) else v
    for name in ("ok", "failed_stage", "cause", *SQNR_FIELDS, "float_accuracy", "runtime_accuracy", "delegated_ops",
                 "ops", "share_delegated", "fused_ops", "latency_ms", "peak_rss_mb", "crashed", "worker"):
        row[name] = getattr(c, name)
    row["seconds"] = round(c.seconds, 3)
    if c.share_delegated is not None:
        row["share_delegated"] = round(c.share_delegated, 4)
    top = c.sensitivity[0] if c.sensitivity else None
    row["most_sensitive_layer"] = top["layer"] if top else None
    row["most_sensitive_gain_db"] = top["gain_db"] if top else None
    return row


def write_results(sweep: Sweep, out: Path) -> list[Path]:
    """Write sweep.json, sweep.csv, sweep.html (and sensitivity.csv when any cell has sensitivity rows)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sweep.json", out / "sweep.csv", out / "sweep.html"]
    # SQNR of identical outputs is +inf: Python's json writes and reads it as Infinity, as summary.json does
    written[0].write_text(json.dumps(sweep.to_dict(), indent=1))
    with written[1].open("w", newline="") as fh:
        w = csv.DictWriter(fh, CSV_COLUMNS)
        w.writeheader()
        for c in sweep.cells:
            w.writerow(csv_row(c))
    written[2].write_text(heatmap_page(sweep))
    if any(c.sensitivity for c in sweep.cells):
        path = out / "sensitivity.csv"
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, ["cell", "model", "label", "layer", "sqnr_db", "gain_db", "accuracy",
                                    "accuracy_change", "error"])
            w.writeheader()
            for c in sweep.cells:
                for r in c.sensitivity:
                    w.writerow({"cell": c.cell, "model": c.model, "label": c.label, **r})
        written.append(path)
    return written


def load_sweep(path: Path) -> Sweep:
    """A sweep.json (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "sweep.json"
    return Sweep.from_dict(json.loads(path.read_text()))


# -- the heatmap -------------------------------------------------------------------------------------------------
def sqnr_colour(db: float | None) -> str:
    """Red (≤ 10 dB) through amber (25 dB) to green (≥ 40 dB); grey without a number."""
    if db is None or (isinstance(db, float) and math.isnan(db)):
        return "#d9d9d9"
    t = 1.0 if db == math.inf else max(0.0, min(1.0, (db - 10.0) / 30.0))
    hue = 120 * t  # 0 red, 60 amber, 120 green
    return f"hsl({hue:.0f}, 70%, {78 - 18 * abs(t - 0.5):.0f}%)"


def _fmt_db(db: float | None) -> str:
    if db is None or (isinstance(db, float) and math.isnan(db)):
        return "–"
    return "inf" if db == math.inf else f"{db:.1f}"


def heatmap_html(sweep: Sweep) -> str:
    """The heatmap as an HTML fragment (a table with inline styles): models × configurations, each cell coloured
    by its SQNR (float vs runtime, else float vs reference); failures crossed, with their stage and cause."""
    models = list(dict.fromkeys(c.model for c in sweep.cells))
    labels = list(dict.fromkeys(c.label for c in sweep.cells))
    by = {(c.model, c.label): c for c in sweep.cells}
    head = "".join(f"<th class='qv-col'>{html.escape(lbl)}</th>" for lbl in labels)
    rows = []
    for m in models:
        tds = []
        for lbl in labels:
            c = by.get((m, lbl))
            if c is None:
                tds.append("<td class='qv-none'></td>")
                continue
            title = [f"{c.model} · {c.label}", f"SQNR float vs reference {_fmt_db(c.sqnr_float_vs_reference_db)} dB",
                     f"reference vs runtime {_fmt_db(c.sqnr_reference_vs_runtime_db)} dB",
                     f"float vs runtime {_fmt_db(c.sqnr_float_vs_runtime_db)} dB", f"{c.seconds:.1f} s"]
            if c.ok:
                body = f"<b>{_fmt_db(c.sqnr_db)}</b> dB"
                extra = []
                if c.share_delegated:
                    extra.append(f"{c.share_delegated:.0%} delegated")
                if c.fused_ops:
                    extra.append(f"{c.fused_ops} fused")
                if c.runtime_accuracy is not None:
                    extra.append(f"acc {c.runtime_accuracy:.1%}")
                if c.latency_ms is not None:
                    extra.append(f"{c.latency_ms:.3f} ms")
                    title.append(f"latency {c.latency_spread}")
                if extra:
                    body += f"<br><small>{html.escape(', '.join(extra))}</small>"
                style, cls = f"background:{sqnr_colour(c.sqnr_db)}", "qv-ok"
            else:
                what = "crashed" if c.crashed else "failed"
                title.append(f"{what} at {c.failed_stage or '?'}: {c.cause}")
                body = (f"<b>✗ {what}</b> at {html.escape(c.failed_stage or '?')}"
                        f"<br><small>{html.escape(_truncate(c.cause))}</small>")
                if c.sqnr_db is not None:
                    body += f"<br><small>{_fmt_db(c.sqnr_db)} dB before it</small>"
                style, cls = "", "qv-fail"
            tds.append(f"<td class='{cls}' style='{style}' title='{html.escape(chr(10).join(title), quote=True)}'>"
                       f"{body}</td>")
        rows.append(f"<tr><th class='qv-row'>{html.escape(m)}</th>{''.join(tds)}</tr>")
    stops = "".join(f"<span style='background:{sqnr_colour(db)}'>{db} dB</span>" for db in (10, 20, 30, 40))
    return (
        "<style>.qv-heat{border-collapse:collapse;font:13px system-ui,sans-serif}"
        ".qv-heat th,.qv-heat td{border:1px solid #fff;padding:6px 8px;text-align:center;vertical-align:middle}"
        ".qv-heat .qv-col{font-weight:600;background:#f3f3f3;max-width:11em}"
        ".qv-heat .qv-row{text-align:right;background:#f3f3f3;white-space:nowrap}"
        ".qv-heat .qv-fail{background:repeating-linear-gradient(45deg,#f6d5d5,#f6d5d5 6px,#fbeaea 6px,#fbeaea 12px);"
        "color:#7a1010;max-width:16em}"
        ".qv-legend span{display:inline-block;padding:2px 8px;margin-right:2px;font:12px system-ui,sans-serif}"
        "</style>"
        f"<table class='qv-heat'><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        f"<p class='qv-legend'>SQNR (float vs runtime; float vs reference when the runtime did not run): {stops}"
        "<span class='qv-fail' style='background:#f6d5d5'>✗ failed</span>; ms: the .pte's median run time on its "
        "worker (ETDump), timed while other cells may run beside it</p>")


def _truncate(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def heatmap_page(sweep: Sweep) -> str:
    """sweep.html: one standalone page (no scripts, no network): the heatmap and the engine facts."""
    e = sweep.engine
    ok = sum(c.ok for c in sweep.cells)
    facts = (f"{len(sweep.cells)} cells, {ok} ok, {len(sweep.cells) - ok} failed · engine {e.get('engine', '?')} "
             f"{e.get('ray_version', '')} · {e.get('cluster_cpus', '?')} CPUs · {e.get('wall_seconds', 0):.1f} s")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>quantviz sweep</title></head>"
            "<body style='font-family:system-ui,sans-serif;margin:24px'>"
            f"<h1 style='font-size:20px'>quantviz sweep</h1><p>{html.escape(facts)}</p>{heatmap_html(sweep)}"
            "<p style='color:#666;font-size:12px'>Hover a cell for its three SQNRs and time; sweep.csv has every "
            "column.</p></body></html>")


# -- the baseline gate -------------------------------------------------------------------------------------------
@dataclass
class Regression:
    model: str
    label: str
    reason: str

    def line(self) -> str:
        return f"{self.model} [{self.label}]: {self.reason}"


def _key(c: CellResult) -> tuple:
    return (c.model, json.dumps(c.config, sort_keys=True))


def gate(baseline: Sweep, current: Sweep, max_drop_db: float) -> list[Regression]:
    """Every cell of ``current`` whose SQNR dropped more than ``max_drop_db`` against the same (model, config) in
    ``baseline``, or that fails where the baseline's passed. Cells only one sweep has are not judged."""
    old = {_key(c): c for c in baseline.cells}
    out = []
    for c in current.cells:
        b = old.get(_key(c))
        if b is None or not b.ok:
            continue
        if not c.ok:
            what = "crashed" if c.crashed else "fails"
            out.append(Regression(c.model, c.label, f"newly {what} at {c.failed_stage or '?'}: {_truncate(c.cause)}"))
            continue
        was, now = b.sqnr_db, c.sqnr_db
        if was is None:
            continue
        if now is None:
            out.append(Regression(c.model, c.label, f"no SQNR any more (was {_fmt_db(was)} dB)"))
            continue
        drop = math.inf if was == math.inf and now != math.inf else (0.0 if was == now else was - now)
        if drop > max_drop_db:
            out.append(Regression(c.model, c.label, f"SQNR {_fmt_db(was)} → {_fmt_db(now)} dB "
                                                    f"(dropped {_fmt_db(drop)} dB > {max_drop_db:g})"))
    return out
