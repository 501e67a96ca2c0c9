"""quantviz in the browser: layout only; everything shown comes from the quantviz library.

    make run      # opens http://127.0.0.1:8501 on sample:digits_cnn
"""
from __future__ import annotations

import streamlit as st

from quantviz.background import DONE, FAILED, RUNNING, WAITING, RunState
from quantviz.data import evaluation_data
from quantviz.flows import describe_config
from ui.runner import Run, warm_workers, pick_stage, progress_text, torch_turn, wait_for_stage
from ui.sidebar import sidebar_run
from ui.stage_page import absent_page, stage_page
from ui.state import RAIL, SELECTED_NODE, SHOWN, STAGE, init_state

POLL_SECONDS = 1.0  # how often the rail asks a running pipeline for news

st.set_page_config(page_title="quantviz", layout="wide")
init_state()
warm_workers()


# The rail stays in reach (its wrapper, a child of the page's block, sticky under Streamlit's header) and wraps to a
# second line rather than scrolling sideways (torchao's 11 stages); the status row keeps its height; the page's top
# padding is trimmed so the graph starts within a 1000-pixel-high screen.
RAIL_CSS = """<style>
[data-testid="stLayoutWrapper"]:has(> .st-key-qv_rail) {position: sticky; top: 3.75rem; z-index: 990;}
.st-key-qv_rail {background: var(--background-color, #fff); padding: 0.25rem 0;
  border-bottom: 1px solid rgba(49, 51, 63, 0.1);}
.st-key-qv_rail [data-testid="stButtonGroup"] > div {flex-wrap: wrap; overflow-x: visible; row-gap: 0.25rem;}
.st-key-qv_status {min-height: 2.75rem; justify-content: center;}
.block-container {padding-top: 4rem;}
</style>"""

MARKS = {DONE: " ✓", FAILED: " ✗", RUNNING: " …", WAITING: " ○"}  # not run: no mark
ABSENT_MARK = " —"  # a stage this flow does not have (its page says why)


def stage_rail(run: Run) -> None:
    """The flow's stages in order, marked done ✓ / failed ✗ / running … / waiting ○, and the ones this flow does
    not have marked — (their page says why), with Back and Next; under them what runs, with Stop. A stage that has
    not finished can be chosen: its page appears when it is ready.

    Redrawn every ``POLL_SECONDS`` while the worker runs (a fragment: the stage page below is not redrawn); a
    click on the rail, the end of the run or Continue redraws the whole page."""
    s = run.state()
    stage = st.session_state[STAGE]
    slots = [slot.name for slot in run.pipe.flow.slots]
    reachable = [name for name in slots if s.states.get(name) in MARKS]  # ready, running or waiting

    def go(target: str | None) -> None:
        if target:  # None: the current segment was clicked again
            st.session_state[STAGE] = target
            st.session_state[SELECTED_NODE] = None

    i = reachable.index(stage) if stage in reachable else 0
    cols = st.columns([1, 12, 1], vertical_alignment="center")
    cols[0].button("◀ Back", disabled=i == 0, key="back", on_click=go, args=(reachable[max(0, i - 1)],))
    st.session_state[RAIL] = stage  # keeps the control in step with Back/Next
    cols[1].segmented_control("Stage", slots, key=RAIL, format_func=lambda n: rail_label(run, n, s),
                              label_visibility="collapsed", on_change=lambda: go(st.session_state[RAIL]))
    cols[2].button("Next ▶", disabled=i >= len(reachable) - 1, key="next", on_click=go,
                   args=(reachable[min(len(reachable) - 1, i + 1)],))
    status_line(run, s)
    if (st.session_state[STAGE], s.running) != st.session_state[SHOWN]:
        st.rerun()  # a stage was chosen, or the run ended or resumed: draw the page for it


def rail_label(run: Run, name: str, s: RunState) -> str:
    """``3 calibrate …``: the stage's number, name and state mark (— for a stage the flow does not have)."""
    mark = ABSENT_MARK if name in run.pipe.flow.absent else MARKS.get(s.states.get(name, ""), "")
    return f"{run.pipe.flow.number(name)} {name}{mark}"


def status_line(run: Run, s: RunState) -> None:
    """What runs and waits, with Stop; after Stop, what did not run, with Continue."""
    not_run = [name for name in s.states if name not in s.ready and name not in s.pending()]
    with st.container(key="qv_status"):  # one height whether a run goes on or ended: the page never jumps
        _status(run, s, not_run)


def _status(run: Run, s: RunState, not_run: list[str]) -> None:
    if s.running:
        c = st.columns([10, 1], vertical_alignment="center")
        c[0].caption(progress_text(s), help="later stages keep running; their pages appear when ready")
        c[1].button("Stop", key="stop_run", disabled=s.stopping, on_click=run.stop, help=run.stop_means)
    elif s.stopped:
        c = st.columns([10, 1], vertical_alignment="center")
        c[0].caption("Stopped. Not run: " + ", ".join(not_run))
        c[1].button("Continue", key="continue_run", on_click=run.start, help="run the remaining stages")
    elif not_run:
        st.caption("Not run: " + ", ".join(not_run))
    else:  # the row keeps its height (an empty container is not drawn at all)
        failed = [name for name in s.ready if s.states[name] == FAILED]
        st.caption(f"All {len(s.ready)} stages ran; {', '.join(failed)} failed." if failed
                   else f"All {len(s.ready)} stages ran.")


def main() -> None:
    st.html(RAIL_CSS)  # style only: takes no room on the page
    found = sidebar_run("quantviz")
    if found is None:
        return
    choice, config, run = found.choice, found.config, found.run
    own = run.pipe.flow.own_model  # a flow that builds its own model (export_llm) says what it measures on, as the CLI
    # the name is the path already; a flow building its own model describes it by its config, the chips below
    about = f": {run.pipe.spec.description}" if run.pipe.spec.description and own is None else ""
    st.markdown(f"**{run.pipe.spec.name}**{about} · "
                + " · ".join(f"`{part}`" for part in describe_config(config).split(", ")))
    remote = getattr(run.pipe.spec, "measured_on", "")  # a worker's model: described there (quantviz.process_run)
    st.caption("Figures measured on " + (own.measured_on if own is not None else remote or
                                         evaluation_data(run.pipe.spec, config, run.pipe.flow.calibrates(config))
                                         .describe()) + ".")
    stage = pick_stage(run)
    running = run.alive
    st.session_state[SHOWN] = (stage, running)
    # one element for the rail: its own reruns (a fragment) never shift the page below it; sticky under the header
    with st.container(key="qv_rail"):
        st.fragment(stage_rail, run_every=POLL_SECONDS if running else None)(run)
    if run.error is not None:
        st.error(f"The run stopped on an unexpected error: {run.error!r}", icon=":material/error:")
    page = st.container()  # the page is one element whatever it holds (waiting, or the stage), so reruns never shift
    with page:
        if stage in run.pipe.flow.absent:
            absent_page(run.pipe.flow, stage)
            return
        if not wait_for_stage(run, stage):
            if run.state().ready:
                st.rerun()  # the run ended without this stage (Stop, or an earlier stage failed): show another
            return
        with torch_turn(run.pipe, stage):
            stage_page(run.view(), stage, choice.ref)


main()
