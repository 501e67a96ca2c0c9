"""The Sweeps page: load a sweep folder (``quantviz sweep ... --out DIR``) and show its heatmap and table.

Reads only what the sweep wrote (sweep.json, sensitivity rows inside it): no Ray, no torch needed here.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from quantviz.sweep.results import csv_row, heatmap_html, load_sweep
from ui.state import SWEEP_DIR, SWEEP_FOUND, seed_widget


def find_sweeps(root: Path, depth: int = 3) -> list[Path]:
    """Folders under ``root`` (a few levels deep, .venv and hidden folders left out) that hold a sweep.json."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
        if len(rel.parts) >= depth:
            dirnames[:] = []
        if "sweep.json" in filenames:
            found.append(Path(dirpath))
    return sorted(found)


def sweep_page() -> None:
    st.title("Sweeps")
    st.caption("Models × configurations, the cells on warm Ray workers (one per CPU): "
               "`quantviz sweep sample:conv_add sample:digits_cnn --flow fx,pt2e --out out/sweep`")
    known = [str(p) for p in find_sweeps(Path.cwd())]
    seed_widget(SWEEP_DIR, os.environ.get("QUANTVIZ_SWEEP_DIR") or (known[0] if known else "out/sweep"))
    with st.sidebar:
        if known:
            st.selectbox("Sweeps found here", known, index=None, placeholder="choose a sweep folder",
                         key=SWEEP_FOUND, on_change=lambda: st.session_state.update(
                             {SWEEP_DIR: st.session_state[SWEEP_FOUND] or st.session_state[SWEEP_DIR]}))
        folder = st.text_input("Sweep folder", key=SWEEP_DIR)
    path = Path(folder)
    if not (path / "sweep.json").is_file() and not (path.is_file() and path.name.endswith(".json")):
        st.info(f"No sweep.json in {folder!r}. Run `quantviz sweep MODEL ... --out {folder}` first.")
        return
    try:
        sweep = load_sweep(path)
    except (ValueError, KeyError, TypeError) as exc:
        st.error(f"Could not read the sweep in {folder!r}: {exc}", icon=":material/error:")
        return
    e, cells = sweep.engine, sweep.cells
    ok = sum(c.ok for c in cells)
    cols = st.columns(5)
    cols[0].metric("cells", len(cells))
    cols[1].metric("ok", ok)
    cols[2].metric("failed", len(cells) - ok)
    cols[3].metric("CPUs", e.get("cluster_cpus", "?"))
    cols[4].metric("wall s", f"{e.get('wall_seconds', 0):.1f}")
    st.caption(f"engine {e.get('engine', '?')} {e.get('ray_version', '')} · {e.get('address', '')} · "
               f"Ray start-up {e.get('ray_init_seconds', 0):.1f} s")
    st.subheader("Heatmap")
    st.html(heatmap_html(sweep))
    st.subheader("Cells")
    frame = pd.DataFrame([csv_row(c) for c in cells])
    if st.toggle("Failed cells only", key="sweep_failed_only"):
        frame = frame[~frame["ok"]]
    st.dataframe(frame, hide_index=True)
    rows = [{"model": c.model, "configuration": c.label, **r} for c in cells for r in c.sensitivity]
    if rows:
        st.subheader("Sensitivity (each layer kept float in turn)")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
