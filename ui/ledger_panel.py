"""The pattern ledger on the delegate and fuse pages, with "what if" re-runs."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.process_run import on_worker, what_if_outcome
from quantviz.why.ledger import build_ledger
from quantviz.why.what_ifs import WHAT_IFS
from ui.sidebar import apply_changes
from ui.state import WHATIF_RESULT, drop_for_run, for_run, run_key, set_for_run


@st.cache_resource(show_spinner=False, max_entries=16)
def _what_if(_pipe: Pipeline, key: tuple, changes: tuple) -> tuple[str | None, list[dict]]:
    """The what-if's error (None when it ran) and the changed fates, computed where the pipeline lives."""
    return on_worker(_pipe, what_if_outcome, dict(changes))


def ledger_panel(pipe: Pipeline, model_ref: str) -> None:
    try:
        ledger = build_ledger(pipe)  # a worker's pipeline carries the ledger its worker built
    except Exception as exc:  # noqa: BLE001 - shown in place, never a traceback
        st.warning(f"No ledger: {exc}")
        return
    st.markdown("#### Pattern ledger: what became of every quantized pattern")
    counts = ledger.counts()
    cols = st.columns(4)
    for col, fate in zip(cols, ("delegated", "fused", "unfused", "removed")):
        col.metric(fate, counts.get(fate, 0))
    table = pd.DataFrame([{"id": r.pattern, "pattern": r.label, "module": r.module_path or "",
                           "fate": r.fate, "where / why": r.where if r.fate in ("delegated", "fused") else r.reason}
                          for r in ledger.rows])
    st.dataframe(table, hide_index=True, width="stretch", key="ledger_table")
    st.download_button("ledger CSV", table.to_csv(index=False), "why.csv", "text/csv", key="dl_ledger")
    key = run_key(model_ref, pipe.config)
    with st.expander("What if …", expanded=False):
        c = st.columns([2, 2, 1])
        choice = c[0].selectbox("Change", list(WHAT_IFS), key="whatif_change")
        modules = sorted({r.module_path for r in ledger.rows if r.module_path})
        experiment = WHAT_IFS[choice]
        module = c[1].selectbox("Module (for skip)", modules, key="whatif_module", disabled=not experiment.needs_module)
        if c[2].button("Try it", key="whatif_run", disabled=experiment.needs_module and not module):
            changes = experiment.changes_for(pipe.config, module)
            with st.spinner("re-running from the affected stage…"):
                error, changed = _what_if(pipe, (model_ref, pipe.config), tuple(sorted(changes.items())))
            set_for_run(WHATIF_RESULT, key, (changes, error, changed))
        if for_run(WHATIF_RESULT, key):
            changes, error, changed = for_run(WHATIF_RESULT, key)
            st.write(f"With {changes}:")
            if error:
                st.error(error)
            elif not changed:
                st.info("No pattern's fate or reason changes.")
            else:
                st.table(pd.DataFrame(changed).rename(columns={"after_detail": "now"}).set_index("pattern"))
            st.button("Apply this change", key="whatif_apply", on_click=_apply, args=(changes, key))


def _apply(changes: dict, key: str) -> None:
    """Set the sidebar's widgets (a callback runs before they are drawn again); the what-if is done with."""
    apply_changes(changes)
    drop_for_run(WHATIF_RESULT, key)
