"""Run or reuse pipelines: one per (model, config), kept across reruns; progress shown while running."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from quantviz import ModelSpec, Pipeline, PipelineConfig
from quantviz.config import STAGES
from quantviz.pipeline import StageEvent

MAX_PIPELINES = 12


@st.cache_resource(show_spinner=False)
def pipeline_store() -> dict[tuple[str, PipelineConfig], Pipeline]:
    """Pipelines by (model key, config). A new config for a known model forks the existing pipeline, so
    only the stages the change affects run again."""
    return {}


@st.cache_resource(show_spinner=False)
def load_spec(model_key: str, _loader: Callable[[], ModelSpec]) -> ModelSpec:
    return _loader()


def get_pipeline(model_key: str, loader: Callable[[], ModelSpec], config: PipelineConfig) -> Pipeline:
    store = pipeline_store()
    key = (model_key, config)
    if key in store:
        return store[key]
    base = next((p for (mk, _), p in store.items() if mk == model_key), None)
    pipe = base.fork(config) if base is not None else Pipeline(load_spec(model_key, loader), config)
    todo = [s for s in STAGES[: STAGES.index(config.until) + 1] if s not in pipe.results]
    if todo:
        with st.status(f"Running {len(todo)} stage(s): {todo[0]} … {todo[-1]}", expanded=True) as status:
            bar = st.progress(0.0)
            line = st.empty()

            def on_event(e: StageEvent) -> None:
                done = sum(1 for s in todo if s in pipe.results)
                frac = (done + (e.fraction if e.kind == "progress" else 0.0)) / len(todo)
                bar.progress(min(1.0, frac), text=f"{e.stage}: {e.text or e.kind}")
                if e.kind == "end" and e.result is not None:
                    line.write(f"{e.stage}: {'ok' if e.result.ok else 'failed'} in {e.result.seconds:.2f}s")

            pipe.on_event = on_event
            pipe.run()
            pipe.on_event = lambda e: None
            failed = pipe.failed
            status.update(label=f"Stopped at stage '{failed.name}'" if failed else "All stages ran",
                          state="error" if failed else "complete", expanded=False)
    if len(store) >= MAX_PIPELINES:
        store.pop(next(iter(store)))
    store[key] = pipe
    return pipe
