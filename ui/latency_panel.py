"""The run page's latency: the program timed in ExecuTorch's runtime here (ETDump), float and quantized totals with
their spread, the machine, threads and repetitions, the ten places where most time goes, and the patterns slower
quantized than float; and the latency overlay of the lowered stage's graph. The work is quantviz's
``timing.outputs.measure_for_summary`` (the records summary.json's ``latency`` holds); this module lays them out
and caches them per run.

    latency_panel(pipe, "sample:conv_add")                # on the run page
    latency_overlay_for(pipe, "sample:conv_add", "fuse")  # ((node id, ms), ...) once timed, else ()
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.process_run import RemotePipeline, on_worker
from quantviz.timing.measure import DEFAULT_REPEAT, PipelineTiming
from quantviz.timing.outputs import measure_for_summary
from quantviz.timing.overlay import latency_overlay
from ui.runner import holding_torch
from ui.state import LATENCY_DONE, for_run, run_key, set_for_run


@st.cache_resource(show_spinner=False, max_entries=16)
def run_latency(key: str, repeat: int, _pipe: Pipeline) -> tuple[PipelineTiming | None, dict[str, Any]]:
    """``measure_for_summary`` cached per (model, config) key and repetitions; ``_pipe`` is the pipeline ``key``
    names. Lowering the float model runs torch.export: it waits for the worker's turn at torch (a worker process's
    pipeline: timed by that worker)."""
    if isinstance(_pipe, RemotePipeline):
        with st.spinner(f"Timing the program in this run's worker: {repeat} warm runs, quantized and float…"):
            return on_worker(_pipe, measure_for_summary, repeat)
    with holding_torch("Waiting for the running stage to end: timing lowers the float model (torch.export)…"):
        with st.spinner(f"Timing the program: {repeat} warm runs, quantized and float, in ExecuTorch's runtime…"):
            return measure_for_summary(_pipe, repeat)


def current_timing(pipe: Pipeline, model_ref: str) -> PipelineTiming | None:
    """The timing this session measured for this run, if any (for the graph overlay)."""
    key = run_key(model_ref, pipe.config)
    repeat = for_run(LATENCY_DONE, key)
    return None if repeat is None else run_latency(key, repeat, pipe)[0]


def latency_overlay_for(pipe: Pipeline, model_ref: str, stage: str) -> tuple[tuple[str, float], ...]:
    """(node id, median ms) on the lowered stage's graph once the run page timed it; () elsewhere or before."""
    if stage != pipe.role("lowered"):
        return ()
    timing = current_timing(pipe, model_ref)
    return tuple(sorted(latency_overlay(timing).items())) if timing is not None else ()


def latency_panel(pipe: Pipeline, model_ref: str) -> None:
    st.markdown("#### Latency (ExecuTorch runtime on this machine, ETDump)")
    key = run_key(model_ref, pipe.config)
    c = st.columns([1, 1, 2])
    repeat = c[0].number_input("Warm runs", 2, 200, DEFAULT_REPEAT, key="latency_repeat",
                               help="each timed after 2 dropped warm-up runs; float and quantized alike")
    if c[1].button("Measure latency", type="primary", key="latency_button"):
        set_for_run(LATENCY_DONE, key, int(repeat))
    if for_run(LATENCY_DONE, key) is None:
        c[2].caption("The .pte and the float model lowered to the same backend, each run with an ETDump: where the "
                     "time goes per pattern, delegate call and kernel, and which patterns got slower quantized.")
        return
    _, data = run_latency(key, for_run(LATENCY_DONE, key), pipe)
    show_latency(data)


def show_latency(data: dict[str, Any]) -> None:
    """summary.json's ``latency`` record drawn: totals, how it was measured, the top places, the slower patterns."""
    if not data.get("available"):
        st.info(f"Not timed: {data.get('reason', 'no reason given')}")
        return
    total, fl = data["total"], data.get("float_total")
    c = st.columns(3)
    c[0].metric("quantized ms (median)", f"{total['median_ms']:.3f}",
                help=f"min {total['min_ms']:.3f}, max {total['max_ms']:.3f} over {total['runs']} runs")
    if fl:
        c[1].metric("float ms (median)", f"{fl['median_ms']:.3f}",
                    help=f"min {fl['min_ms']:.3f}, max {fl['max_ms']:.3f} over {fl['runs']} runs")
        c[2].metric("speed-up vs float", f"{data['speedup_vs_float']:.2f}x")
    elif data.get("float_error"):
        c[1].caption(data["float_error"])
    st.caption(f"Quantized {_spread(total)}" + (f"; float {_spread(fl)}" if fl else "") + f". {_measured(data)}")
    for d in data.get("delegates", []):
        share = f" ({d['events_share']:.0%})" if d.get("events_share") is not None else ""
        st.caption(f"Delegate {d['index']} ({d['backend']}): call {d['call']['median_ms']:.3f} ms, its {d['events']} "
                   f"events sum to {d['events_sum']['median_ms']:.3f} ms{share}; {d['unaccounted']['median_ms']:.3f} "
                   f"ms no event accounts for; {d['converts']} q/dq Convert events.")
    st.markdown("**Where the time goes** (the ten places with the most time)")
    st.dataframe(pd.DataFrame([{"place": p["label"], "where": p["where"], "median ms": p["median_ms"],
                                "min ms": p["min_ms"], "max ms": p["max_ms"], "share": p["share"]}
                               for p in data["top"]]),
                 hide_index=True, width="stretch",
                 column_config={"share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0,
                                                                         max_value=1.0)},
                 key="latency_top")
    rows = data.get("float_vs_quantized", [])
    slower = [r for r in rows if r["slower"]]
    if not fl:
        return
    if not slower:
        st.caption(f"No pattern is slower quantized than float ({len(rows)} compared).")
        return
    st.markdown(f"**Slower quantized than float**: {len(slower)} of {len(rows)} patterns and ops")
    st.dataframe(pd.DataFrame([{"place": r["label"], "quantized ms": r["quantized"]["median_ms"],
                                "float ms": r["float"]["median_ms"], "speed-up": r["speedup"],
                                "slower in every run": r["slower_beyond_spread"]} for r in slower]),
                 hide_index=True, width="stretch", key="latency_slower")


def _spread(stat: dict[str, Any]) -> str:
    return f"{stat['median_ms']:.3f} ms ({stat['min_ms']:.3f}–{stat['max_ms']:.3f})"


def _measured(data: dict[str, Any]) -> str:
    m = data["measured"]
    machine = m.get("machine") or {}
    load = machine.get("load_1_5_15") or []
    where = f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores" + (f", load {load[0]:.2f}" if load else "")
    threads = f"{m['threads']} threads" if m.get("threads") else "threads not known"
    return f"{m['runs']} warm runs ({m['warmup']} dropped), {threads}, {where}; by {m['by']}."
