"""Downloads: the .pte, each stage's DOT/SVG/JSON/Model Explorer JSON, CSV tables, the HTML report and a reproduction script."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.interop import model_explorer as explorer
from quantviz.outputs import stage_file_stem, summary
from quantviz.process_run import on_worker, reproduce_for
from quantviz.report import build_report
from ui.numerics_panel import report_for
from ui.state import REPORT_HTML, for_run, run_key, set_for_run


def stage_downloads(pipe: Pipeline, stage: str, dot: str | None, svg: str | None) -> None:
    result = pipe.results.get(stage)
    if result is None or result.graph is None:
        return
    stem = stage_file_stem(pipe, stage)
    cols = st.columns(5)
    cols[0].download_button("graph JSON", json.dumps(result.graph.to_dict(), indent=1), f"{stem}.json",
                            "application/json", key=f"dl_json_{stage}")
    if dot:
        cols[1].download_button("DOT", dot, f"{stem}.dot", "text/vnd.graphviz", key=f"dl_dot_{stage}")
    if svg:
        cols[2].download_button("SVG", svg, f"{stem}.svg", "image/svg+xml", key=f"dl_svg_{stage}")
    if explorer.available():
        cols[4].download_button("Model Explorer JSON", lambda: on_worker(pipe, explorer.stage_json, stage),
                                f"{stem}.model_explorer.json", "application/json", key=f"dl_me_{stage}",
                                help="open it in Google's Model Explorer (pip install ai-edge-model-explorer; "
                                     "model-explorer FILE): layers collapse by module, nodes carry the pattern "
                                     "fates once the fuse stage ran")
    if result.graph.patterns:
        table = pd.DataFrame([{"id": p.id, "pattern": p.label(), "dtype": p.dtype, "module": p.module_path,
                               "source": p.source} for p in result.graph.patterns])
        cols[3].download_button("patterns CSV", table.to_csv(index=False), f"{stem}_patterns.csv", "text/csv",
                                key=f"dl_pat_{stage}")


def run_downloads(pipe: Pipeline, model_ref: str) -> None:
    cols = st.columns(5)
    pte = pipe.pte_bytes()
    if pte is not None:
        cols[0].download_button("model.pte", pte, "model.pte", "application/octet-stream", key="dl_pte")
    data = on_worker(pipe, summary)  # reads the run's artifact: where the pipeline lives
    cols[1].download_button("summary.json", json.dumps(data, indent=2), "summary.json", "application/json",
                            key="dl_summary")
    stages = pd.DataFrame([{k: v for k, v in s.items() if k != "kinds"} | s["kinds"] for s in data["stages"]])
    cols[2].download_button("stages CSV", stages.to_csv(index=False), "stages.csv", "text/csv", key="dl_stages")
    cols[3].download_button("reproduce.py", on_worker(pipe, reproduce_for, model_ref), "reproduce.py", "text/x-python",
                            key="dl_script")
    key = run_key(model_ref, pipe.config)
    if cols[4].button("Build HTML report", key="build_report"):
        try:  # the page's numerics when it computed them, else computed once for both
            numerics = report_for(pipe, model_ref)
        except Exception:  # noqa: BLE001 - the report's Charts section says why the numerics failed
            numerics = None
        with st.spinner("laying out every stage…"):
            set_for_run(REPORT_HTML, key, on_worker(pipe, build_report, numerics))
    html = for_run(REPORT_HTML, key)  # this run's report only: another configuration's is never offered
    if html:
        st.download_button("report.html", html, "report.html", "text/html", key="dl_report")
