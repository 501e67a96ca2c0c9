"""The Recover page: from "where is accuracy lost" to "this configuration gets it back".

It runs ``quantviz recover`` for the sidebar's model and config (the same sidebar as the main page) in a
subprocess, so its workers (warm Ray actors, or ``--in-process``) never share this process's torch with the
main page's running stages; it follows ``DIR/progress.jsonl`` (one line per finished trial) while it runs, then
shows the Pareto charts (``DIR/pareto.vl.json``) and the found configuration, which "Apply" puts into the sidebar
(``ui.sidebar.apply_changes``): the main page's stages re-run from the first one the change affects. Both files are
read as records (``quantviz.recover.progress`` events, ``quantviz.recover.results.RecoverFile``), never by key.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from quantviz.config import ConfigChanges, PipelineConfig, config_flags
from quantviz.flows import with_backend_defaults
from quantviz.llm_config import LlmConfigError
from quantviz.recover.progress import ProgressEvent, Started, TrialDone, read_progress
from quantviz.recover.results import load_recovery, startup_hint
from quantviz.recover.trial import Trial
from ui.sidebar import apply_changes, flow_config, model_choice
from ui.state import (
    CONFIG_GIVEN,
    NOT_IN_SIDEBAR,
    RECOVER_APPLIED,
    RECOVER_BUDGET,
    RECOVER_DIR,
    RECOVER_IN_PROCESS,
    RECOVER_MAX_DROP,
    RECOVER_TARGET_KIND,
    RECOVER_TARGET_SQNR,
    RECOVER_WAS_RUNNING,
)

POLL_SECONDS = 1.0


@st.cache_resource
def processes() -> dict[str, subprocess.Popen]:
    """Output folder -> the recovery subprocess writing it (shared by the app's sessions)."""
    return {}


def running(folder: str) -> bool:
    proc = processes().get(str(Path(folder).resolve()))
    return proc is not None and proc.poll() is None


def command(model_ref: str, config: PipelineConfig, folder: str) -> list[str]:
    """The ``quantviz recover`` command for the page's settings."""
    s = st.session_state
    goal = ["--target-sqnr", str(s[RECOVER_TARGET_SQNR])] if s[RECOVER_TARGET_KIND] == "SQNR" else \
        ["--max-accuracy-drop", str(s[RECOVER_MAX_DROP])]
    return [sys.executable, "-m", "quantviz.cli", "recover", model_ref, *shlex.split(config_flags(config)), *goal,
            "--budget", str(int(s[RECOVER_BUDGET])), "--out", folder,
            *(["--in-process"] if s[RECOVER_IN_PROCESS] else [])]


def start(model_ref: str, config: PipelineConfig, folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("progress.jsonl", "recover.json"):
        (out / name).unlink(missing_ok=True)
    log = (out / "recover.log").open("w")
    processes()[str(out.resolve())] = subprocess.Popen(command(model_ref, config, folder), stdout=log,
                                                       stderr=subprocess.STDOUT, cwd=os.getcwd())


def trial_rows(events: list[ProgressEvent]) -> list[dict[str, Any]]:
    """One table row per finished trial (the page's table: a dataframe at the edge)."""
    return [{"#": e.done, "phase": e.trial.phase, "change set": e.trial.key, "meets": e.meets,
             "SQNR dB": e.trial.sqnr_db, "runtime accuracy": e.trial.runtime_accuracy,
             ".pte bytes": e.trial.pte_bytes, "float layers": e.trial.float_layers,
             "seconds": round(e.trial.seconds, 1), "reused": ", ".join(e.trial.reused), "error": e.trial.error}
            for e in events if isinstance(e, TrialDone)]


def progress_panel(folder: str) -> None:
    """Each trial as it finishes; redraws the whole page when the recovery ends."""
    events = read_progress(Path(folder) / "progress.jsonl")
    head = next((e for e in events if isinstance(e, Started)), None)
    rows = trial_rows(events)
    if head is not None:
        total = head.budget + 1
        st.progress(min(1.0, len(rows) / total), text=f"{len(rows)} of at most {total} trial(s) · target "
                                                        f"{head.target.describe()} · measured on {head.data}")
    elif running(folder):
        st.caption("starting the workers (each builds the model and traces it once) …")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    if st.session_state[RECOVER_WAS_RUNNING] and not running(folder):
        st.session_state[RECOVER_WAS_RUNNING] = False
        st.rerun()


def changes_to(found: PipelineConfig, current: PipelineConfig) -> ConfigChanges:
    """The sidebar changes that turn ``current`` into ``found`` (only fields the sidebar shows)."""
    return {f.name: getattr(found, f.name) for f in fields(PipelineConfig)
            if f.name not in NOT_IN_SIDEBAR and getattr(found, f.name) != getattr(current, f.name)}


def result_panel(folder: str, model_ref: str | None, current: PipelineConfig | None) -> None:
    path = Path(folder) / "recover.json"
    if not path.is_file():
        return
    saved = load_recovery(path)
    found = saved.recovery
    base, chosen = found.base, found.chosen
    kind = found.target.kind
    cols = st.columns(5)
    cols[0].metric("target", "met" if found.met else "not met", help=found.target.describe())
    cols[1].metric("before", _reached(kind, base))
    cols[2].metric("winner" if found.met else "best found", _reached(kind, chosen),
                   delta=f"{chosen.sqnr_db - base.sqnr_db:+.2f} dB" if kind == "sqnr" else None)
    cols[3].metric("layers kept float", chosen.float_layers)
    cols[4].metric(".pte bytes", f"{chosen.pte_bytes:,}" if chosen.pte_bytes else "–")
    e = found.engine
    st.caption(f"measured on {base.data} · {len(found.trials) - 1} trial(s) of {found.budget} · "
               f"{e.engine or '?'}, {e.workers if e.workers is not None else '?'} worker(s), "
               f"{e.wall_seconds or 0:.0f} s · stage reuse saved {e.reuse_share or 0:.0%} of the stage work")
    hint = startup_hint(e, remedy="'In this process'")
    if hint:
        st.info(hint, icon=":material/timer:")
    st.code(f"quantviz run {saved.model} {saved.chosen_flags}".rstrip(), language="bash")
    charts = Path(folder) / "pareto.vl.json"
    if charts.is_file():
        for spec in json.loads(charts.read_text()):
            st.vega_lite_chart(spec=spec, width="stretch")
    if not found.met:
        st.warning(f"The target was not met within the budget: the best found is {chosen.key}.",
                   icon=":material/warning:")
    if current is None or not chosen.changes:
        return
    changes = changes_to(saved.chosen_config, current)
    if model_ref is not None and model_ref != saved.model:
        st.info(f"This recovery is of {saved.model}; the sidebar has {model_ref}.")
    if changes:
        flags = config_flags(saved.chosen_config, current)
        if st.button(f"Apply: {flags}", type="primary", key="recover_apply", on_click=_apply, args=(changes, flags),
                     help="set the sidebar to the found configuration; the main page re-runs its stages from "
                          "the first one the change affects"):
            try:
                st.switch_page("app.py")
            except Exception:  # noqa: BLE001 - not run as the app's page (tests): the sidebar is set all the same
                pass
    if st.session_state[RECOVER_APPLIED]:
        st.success(f"Applied to the sidebar: {st.session_state[RECOVER_APPLIED]}")


def _reached(kind: str, trial: Trial) -> str:
    """A trial's figure in the target's terms: its SQNR, or its runtime accuracy."""
    if kind == "sqnr":
        return f"{trial.sqnr_db:.2f} dB"
    return f"{trial.runtime_accuracy:.2%}" if trial.runtime_accuracy is not None else "–"


def _apply(changes: ConfigChanges, flags: str) -> None:
    apply_changes(changes)
    st.session_state[RECOVER_APPLIED] = flags


def recover_page() -> None:
    st.title("Recover")
    st.caption("The smallest config change (layers kept float, per-channel weights, another observer, ...) that "
               "gets the accuracy back, each candidate run to the runtime: `quantviz recover MODEL --target-sqnr DB`")
    with st.sidebar:
        try:
            choice = model_choice()
        except LlmConfigError as exc:
            st.error(str(exc))
            return
    if choice is not None and choice.config is not None:  # a flow that builds its own model (export_llm)
        st.info(f"Recover searches the options of a model you load; an {choice.config.flow} configuration is its "
                "whole config: change its overrides in the sidebar instead.")
        return
    with st.sidebar:
        # the config as the main page runs it: the backend's defaults for the options the user did not set (its
        # flags then say the flow, so `quantviz recover` runs the same)
        config = with_backend_defaults(flow_config(), st.session_state[CONFIG_GIVEN])[0]
    s = st.session_state
    c = st.columns([2, 2, 2, 2], vertical_alignment="bottom")
    c[0].radio("Target", ("SQNR", "accuracy drop"), key=RECOVER_TARGET_KIND, horizontal=True)
    if s[RECOVER_TARGET_KIND] == "SQNR":
        c[1].number_input("float vs runtime SQNR (dB) at least", 0.0, 200.0, step=1.0, key=RECOVER_TARGET_SQNR)
    else:
        c[1].number_input("accuracy drop (points) at most", 0.0, 100.0, step=0.1, key=RECOVER_MAX_DROP)
    c[2].number_input("Budget (trials)", 1, 200, key=RECOVER_BUDGET)
    c[3].toggle("In this process", key=RECOVER_IN_PROCESS, help="no Ray: the trials one after another")
    folder = st.text_input("Output folder", key=RECOVER_DIR)
    busy = running(folder)
    if st.button("Start", type="primary", disabled=busy or choice is None, key="recover_start"):
        start(choice.ref, config, folder)
        s[RECOVER_WAS_RUNNING] = True
        busy = True
    if busy:
        s[RECOVER_WAS_RUNNING] = True
        st.fragment(progress_panel, run_every=POLL_SECONDS)(folder)
    else:
        progress_panel(folder)
        result_panel(folder, choice.ref if choice else None, config)
