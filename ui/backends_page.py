"""The Backends page: a model, the backends to try, a Run button; a row per backend as it finishes (delegated share,
ops left out and why, .pte size, SQNR where this machine gives numbers), a chart, and the CSV/HTML downloads."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from quantviz import PipelineConfig
from quantviz.backend_table import BackendRow, backend_html, compare_backends, installed_backends
from quantviz.backends import BACKENDS
from quantviz.catalog import catalog
from ui.state import BACKEND_ROWS


def backends_page() -> None:
    st.title("One model on every backend")
    st.caption("Each backend's own quantizer and partitioner (pt2e), lowered and run wherever this machine can: "
               "the ExecuTorch runtime, Arm's TOSA reference model, Vela's report; Vulkan and Core ML lower here "
               "but have no runtime.")
    names = list(catalog())
    model = st.selectbox("Model", names, index=names.index("conv_add") if "conv_add" in names else 0)
    installed = installed_backends()
    chosen = st.multiselect("Backends", list(BACKENDS), default=[b for b in installed if BACKENDS[b].on_backends_page],
                            help="Core ML's quantizer takes minutes on a zoo model; not installed ones are greyed "
                                 "by the pip command below")
    for b in chosen:
        if BACKENDS[b].missing():
            st.warning(f"{b} is not installed: `{BACKENDS[b].missing()[0].pip}`")
    per_channel = st.toggle("Per-channel weights", value=True)
    key = (f"sample:{model}", tuple(chosen), per_channel)
    if st.button("Run", type="primary", disabled=not chosen):
        _run(key)
    rows: list[BackendRow] | None = st.session_state[BACKEND_ROWS].get(key)
    if rows:
        _show(rows)


def _run(key: tuple) -> None:
    model_ref, backends, per_channel = key
    backends = [b for b in backends if not BACKENDS[b].missing()]
    bar = st.progress(0.0, text=f"{model_ref} on {len(backends)} backend(s)…")
    rows: list[BackendRow] = []

    def progress(row: BackendRow, done: int, total: int) -> None:
        rows.append(row)
        bar.progress(done / total, text=f"{row.backend}: {'ok' if row.ok else 'failed at ' + row.failed_stage} "
                                        f"({done}/{total})")

    compare_backends(model_ref, backends, PipelineConfig(flow="pt2e", per_channel=per_channel), progress=progress,
                     in_workers=True)  # a worker process per backend: the app runs no torch, no session waits
    bar.empty()
    st.session_state[BACKEND_ROWS][key] = rows


def _db(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else round(x, 1)


def _show(rows: list[BackendRow]) -> None:
    frame = pd.DataFrame([{
        "backend": r.backend, "ok": "ok" if r.ok else f"{r.failed_stage}: {r.cause}", "quantizer": r.quantizer,
        "delegates": r.delegates, "delegated": f"{r.delegated_share:.0%}", "patterns": r.patterns,
        ".pte bytes": r.pte_bytes, "lowering s": r.lowering_seconds,
        "SQNR vs float": "∞" if r.float_vs_backend_sqnr_db == math.inf else _db(r.float_vs_backend_sqnr_db),
        "vs own reference": "∞" if r.reference_vs_backend_sqnr_db == math.inf else _db(r.reference_vs_backend_sqnr_db),
        "numbers from": r.numbers, "data": r.data} for r in rows])
    st.dataframe(frame, hide_index=True, width="stretch")
    chart = [{"backend": r.backend, "SQNR vs float (dB)": _db(r.float_vs_backend_sqnr_db)} for r in rows
             if _db(r.float_vs_backend_sqnr_db) is not None]
    if chart:
        st.vega_lite_chart(pd.DataFrame(chart), {
            "mark": "bar", "encoding": {"y": {"field": "backend", "type": "nominal", "sort": None},
                                        "x": {"field": "SQNR vs float (dB)", "type": "quantitative"}}},
            width="stretch")
    with st.expander("Ops each backend left out, and why"):
        for r in rows:
            if r.left_out:
                st.markdown(f"**{r.backend}**\n" + "\n".join(f"- `{op}`: {why}" for op, why in r.left_out.items()))
    c = st.columns(2)
    c[0].download_button("backends.csv", frame.to_csv(index=False), "backends.csv", "text/csv", key="dl_backends_csv")
    c[1].download_button("backends.html", backend_html(rows), "backends.html", "text/html", key="dl_backends_html")
