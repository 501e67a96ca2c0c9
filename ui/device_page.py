"""The Device page: a device's own ETDump (and its debug buffer) placed on the stages of the sidebar's run: the
device's ms beside this machine's per pattern, and its intermediate values against this machine's runtime with the
first node that diverges. The work is quantviz's ``timing.device.read_device_run`` (what ``quantviz device`` calls) on
the run's files as ``quantviz run --out`` writes them (``timing.outputs.write_device_dir``); a file that cannot be
placed gets its cause in one line.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.process_run import on_worker
from quantviz.timing.device import DIVERGES_DB, DeviceInputError, DeviceRun, read_device_run
from quantviz.timing.measure import DEFAULT_REPEAT
from quantviz.timing.outputs import write_device_dir
from quantviz.workers import WorkerError, call_in_worker
from ui.latency_panel import run_latency
from ui.runner import holding_torch_here, wait_for_stage
from ui.sidebar import sidebar_run
from ui.state import LATENCY_DONE, for_run, run_key, set_for_run


@st.cache_resource(show_spinner=False, max_entries=8)
def run_dir(key: str, repeat: int, _pipe: Pipeline) -> str:
    """The run's files (summary.json, stage graphs, model.pte, etrecord.bin, inputs.pt, latency.json) in a folder
    kept for the app's life, per (model, config) key: what ``quantviz device`` reads."""
    timing, latency = run_latency(key, repeat, _pipe)  # the run page's timing, or measured now for both
    out = Path(tempfile.mkdtemp(prefix="quantviz-device-"))
    with holding_torch_here(_pipe, "Waiting for the running stage to end: the ETRecord copies the lowered program…"):
        with st.spinner("Writing the run's ETRecord and files…"):
            on_worker(_pipe, write_device_dir, out, timing, latency)  # where the pipeline lives
    return str(out)


@st.cache_resource(show_spinner=False, max_entries=8)
def device_run(folder: str, etdump: bytes, debug_buffer: bytes | None, names: tuple[str, str]) -> DeviceRun:
    """``read_device_run`` on uploaded bytes (cached per run folder and files); raises ``DeviceInputError`` naming
    the uploaded files (``names``: the ETDump's and the debug buffer's), not the temporary ones."""
    with tempfile.TemporaryDirectory() as d:
        e = Path(d) / Path(names[0]).name
        e.write_bytes(etdump)
        b = None
        if debug_buffer is not None:
            b = Path(d) / f"debug-{Path(names[1]).name}"
            b.write_bytes(debug_buffer)
        with st.spinner("Placing the ETDump on the run's stages and comparing its values (in a worker process)…"):
            try:
                return call_in_worker(read_device_run, Path(folder), e, b, what="reading the ETDump")
            except WorkerError as exc:  # raised in the worker: it travels as text
                if exc.kind != "DeviceInputError":
                    raise
                raise DeviceInputError(exc.message.replace(f"{d}/debug-", "").replace(f"{d}/", "")) from None


def device_page() -> None:
    st.title("Device")
    st.caption("Run the .pte on the device with an ETDump (`executor_runner --etdump_path run.etdp`, or your app) and "
               "upload the .etdp, and the debug buffer if it logged values: `quantviz device DIR --etdump FILE`.")
    found = sidebar_run()
    if found is None:
        return
    choice, run = found.choice, found.run
    if not wait_for_stage(run, "run") or not run.pipe.results["run"].ok:
        st.info("The run did not reach its **run** stage: the main page says why.")
        return
    pipe = run.view()
    pte = pipe.pte_bytes()
    c = st.columns(3)
    if pte is not None:
        c[0].download_button("model.pte (run this on the device)", pte, "model.pte", "application/octet-stream",
                             key="device_pte")
    etdump = c[1].file_uploader("ETDump (.etdp)", key="device_etdump")
    debug = c[2].file_uploader("debug buffer (optional)", key="device_debug")
    if etdump is None:
        st.caption("The device's times and values appear here once an ETDump is uploaded.")
        return
    key = run_key(choice.ref, pipe.config)
    set_for_run(LATENCY_DONE, key, for_run(LATENCY_DONE, key) or DEFAULT_REPEAT)  # the run page shows it too
    folder = run_dir(key, for_run(LATENCY_DONE, key), pipe)
    try:
        found = device_run(folder, etdump.getvalue(), debug.getvalue() if debug is not None else None,
                           (etdump.name, debug.name if debug is not None else ""))
    except DeviceInputError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    except Exception as exc:  # noqa: BLE001 - a file nothing foresaw: its cause in one line, never a traceback
        st.error(f"{etdump.name} could not be placed: {type(exc).__name__}: "
                 f"{(str(exc).splitlines() or [''])[0][:200]}", icon=":material/error:")
        return
    show_device_run(found)


def show_device_run(found: DeviceRun) -> None:
    r = found.report
    st.metric("device ms per run (median)", f"{r.total.median_ms:.3f}",
              help=f"{r.total.text()} over the {r.profile.runs} run(s) in its ETDump")
    st.caption(f"Device: {r.total.text()} over {r.profile.runs} run(s) in its ETDump; here: this machine's runtime "
               "on the same .pte (the run page's latency).")
    st.dataframe(pd.DataFrame([{"place": p.label, "device ms": p.device.median_ms, "device min": p.device.min_ms,
                                "device max": p.device.max_ms, "here ms": p.here_ms,
                                "device / here": None if math.isnan(p.ratio) else round(p.ratio, 3)}
                               for p in found.patterns]),
                 hide_index=True, width="stretch", key="device_patterns")
    st.markdown("#### Values")
    if found.values_note:
        st.caption(found.values_note)
        return
    first = found.first_divergence
    if first is None:
        st.success(f"None of the {len(found.values)} logged outputs diverges from this machine's runtime on the same "
                   f"program and inputs (all at least {DIVERGES_DB:.0f} dB SQNR).")
    else:
        st.warning(f"First diverging node: **{first.label}** ({first.event}), {first.sqnr_db:.1f} dB SQNR against "
                   f"this machine's runtime, max |diff| {first.max_abs_diff:.4g}.")
    st.dataframe(pd.DataFrame([v.to_dict() for v in found.values]), hide_index=True, width="stretch",
                 key="device_values")
