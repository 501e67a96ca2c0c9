"""Every ``st.session_state`` key the app uses, declared once, with its default; ``init_state()`` at the top of each
page (``app.py``, ``pages/*.py``) sets the missing ones, so no other module sets a default.

Two kinds of key:

- **App state** (``KEYS``): what the pages remember between reruns. Code reads and writes them as
  ``st.session_state[STAGE]``, never by a string of its own.
- **Widget keys** read or written through ``st.session_state`` (``WIDGET_KEYS``, the sidebar's
  ``config_widget_keys()``, and the per-stage ``inspector_key`` / ``graph_key``): Streamlit owns their values, so
  they are listed here but not initialised (a default set before a widget with its own ``value`` makes Streamlit
  warn). Buttons and downloads, whose keys nothing reads, keep their keys at the widget.

What is derived from one run (a report, a what-if, the numerics asked for) is kept per :func:`run_key` (the model
and the configuration), so a configuration change never offers another configuration's results::

    init_state()                                      # first thing on a page
    st.session_state[STAGE] = "convert"
    set_for_run(REPORT_HTML, run_key(ref, pipe.config), html)
    for_run(REPORT_HTML, run_key(ref, other_config))  # None: that configuration has no report
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, fields
from typing import Any, Callable

import streamlit as st

from quantviz import PipelineConfig


@dataclass(frozen=True)
class StateKey:
    name: str
    default: Callable[[], Any]  # a factory: a fresh value per session (dicts are never shared)
    doc: str


KEYS: dict[str, StateKey] = {}


def _declare(name: str, default: Callable[[], Any], doc: str) -> str:
    KEYS[name] = StateKey(name, default, doc)
    return name


# -- the main page ---------------------------------------------------------------------------------------------
STAGE = _declare("stage", lambda: "trace", "the stage whose page is shown (the rail, Back/Next, tests set it)")
SHOWN = _declare("shown", lambda: None, "(stage, running) the page was last drawn for; the rail reruns on a change")
SELECTED_NODE = _declare("selected_node", lambda: None, "the node selected on the shown stage's graph (inspector)")
COMPARE_NODE = _declare("compare_node", lambda: None,
                        "(page stage, other stage, node id): a click in the other pane of a comparison")
EXPANDED = _declare("expanded", dict, "stage -> the module paths drawn open on its graph")
VIEW_FOCUS = _declare("view_focus", dict, "pane key -> the box id to centre on when the pane is drawn next")
REVEAL = _declare("reveal", dict, "pane key -> the node chosen in 'Find a node': centred and ringed when the pane is "
                                  "drawn next (the modules around it opened)")
QV_RUN = _declare("qv_run", lambda: 0, "the page's run counter, shown by the viewer (tests count reruns with it)")
QV_CLICK_HANDLED = _declare("qv_click_handled", lambda: None,
                            "(pane key, box id): the click the viewer's callback handled before this run")
# per run (run_key -> value): see for_run / set_for_run
NUMERICS_DONE = _declare("numerics_done", dict,
                         "run key -> the sensitivity layers 'Compare node by node' was asked with")
BLAME_BY_STAGE = _declare("blame_by_stage", dict, "id(report) -> stage -> node -> blame row (the current report's)")
WHATIF_RESULT = _declare("whatif_result", dict, "run key -> (changes, error or None, changed ledger rows)")
REPORT_HTML = _declare("report_html", dict, "run key -> the HTML report built on the run page")
LATENCY_DONE = _declare("latency_done", dict, "run key -> the warm runs 'Measure latency' was asked with")

# -- the sidebar ----------------------------------------------------------------------------------------------------
CONFIG_GIVEN = _declare("config_given", frozenset,
                        "the config fields the user set in the sidebar (a widget changed, an Apply): the backend's "
                        "defaults leave them alone (quantviz.flows.with_backend_defaults)")
SESSION_ID = _declare("session_id", lambda: uuid.uuid4().hex,
                      "this session's id: which runs it shows (ui.runner: a run no session shows is stopped when its "
                      "model's config changes; one another session shows never is)")

# -- the Backends page -------------------------------------------------------------------------------------------
BACKEND_ROWS = _declare("backend_rows", dict, "(model ref, backends, per channel) -> the comparison's BackendRows")

# -- the Recover page: its widgets have no value of their own, so these defaults are their first values -----------
RECOVER_TARGET_KIND = _declare("recover_target_kind", lambda: "SQNR",
                               '"SQNR" (--target-sqnr) or "accuracy drop" (--max-accuracy-drop)')
RECOVER_TARGET_SQNR = _declare("recover_target_sqnr", lambda: 40.0, "dB, float vs runtime, at least")
RECOVER_MAX_DROP = _declare("recover_max_drop", lambda: 1.0, "accuracy drop in percentage points, at most")
RECOVER_BUDGET = _declare("recover_budget", lambda: 12, "trials besides the base run")
RECOVER_IN_PROCESS = _declare("recover_in_process", lambda: False, "--in-process instead of warm Ray workers")
RECOVER_DIR = _declare("recover_dir", lambda: os.environ.get("QUANTVIZ_RECOVER_DIR", "out/recover"),
                       "the recovery's output folder (QUANTVIZ_RECOVER_DIR sets the first value)")
RECOVER_APPLIED = _declare("recover_applied", lambda: "", "the flags last applied to the sidebar, shown once")
RECOVER_WAS_RUNNING = _declare("recover_was_running", lambda: False,
                               "a recovery was running at the last draw (its end redraws the whole page)")

# -- widget keys read or written through st.session_state (not initialised) -------------------------------------
RAIL = "rail"  # the stage rail's segmented control (kept in step with STAGE)
SWEEP_DIR = "sweep_dir"  # the sweeps page's folder box
SWEEP_FOUND = "sweep_found"  # the sweeps page's "Sweeps found here" choice
EXPAND_DELEGATES = "v_expand_delegates"  # a stage page's View toggle "Expand delegates" ("Find a node" turns it on)
# the sidebar's "export_llm configuration" source (ui/llm_config_picker.py); its overrides text area is the config
# widget "llm_overrides" (one key=value a line; a fix's "Apply" sets it), first filled with the tiny-model overrides
LLM_YAML = "llm_yaml"  # the shipped YAML chosen (a label such as "llama/llama_xnnpack.yaml"), or the own-file entry
LLM_YAML_PATH = "llm_yaml_path"  # the path of the user's own YAML
LLM_YAML_UPLOAD = "llm_yaml_upload"  # or its upload
LLM_OVERRIDES = "llm_overrides"  # the overrides text area (a config widget key: config_widget_keys() has it)
WIDGET_KEYS = (RAIL, SWEEP_DIR, SWEEP_FOUND, EXPAND_DELEGATES, LLM_YAML, LLM_YAML_PATH, LLM_YAML_UPLOAD)
NOT_IN_SIDEBAR = ("until",)  # config fields the sidebar does not offer: the app always runs every stage


def config_widget_keys() -> tuple[str, ...]:
    """The sidebar's widget keys: one per ``PipelineConfig`` field it offers, named as the field."""
    return tuple(f.name for f in fields(PipelineConfig) if f.name not in NOT_IN_SIDEBAR)


def inspector_key(stage: str) -> str:
    """The inspector's "Find a node" box on ``stage``'s page."""
    return f"inspect_{stage}"


def graph_key(stage: str, compared: bool = False) -> str:
    """The graph viewer of ``stage``'s page, or (``compared``) of ``stage`` drawn beside another stage's page."""
    return f"graph_cmp_{stage}" if compared else f"graph_{stage}"


# -- setting up and per-run values ------------------------------------------------------------------------------
MAX_RUNS_KEPT = 8  # per-run values kept per key (the oldest go first): reports are megabytes of SVG


def init_state() -> None:
    """Set every app-state key the session does not have yet to its default (values already set stay)."""
    for key in KEYS.values():
        if key.name not in st.session_state:
            st.session_state[key.name] = key.default()


def seed_widget(key: str, value: Any) -> None:
    """A widget's first value, for a widget drawn with ``key`` and no ``value`` of its own (kept once set)."""
    if key not in st.session_state:
        st.session_state[key] = value


def run_key(model_ref: str, config: PipelineConfig) -> str:
    """What identifies one run: the model reference and every config field (a string: cache functions hash it)."""
    return model_ref + json.dumps(config.to_dict(), sort_keys=True)


def for_run(name: str, key: str) -> Any:
    """The per-run value ``name`` (``REPORT_HTML``, ``WHATIF_RESULT``, ``NUMERICS_DONE``) of run ``key``, or None."""
    return st.session_state[name].get(key)


def set_for_run(name: str, key: str, value: Any) -> None:
    """Keep ``value`` as run ``key``'s ``name``, dropping the oldest runs' beyond ``MAX_RUNS_KEPT``."""
    values = st.session_state[name]
    values.pop(key, None)
    values[key] = value
    while len(values) > MAX_RUNS_KEPT:
        values.pop(next(iter(values)))


def drop_for_run(name: str, key: str) -> None:
    """Forget run ``key``'s ``name``."""
    st.session_state[name].pop(key, None)
