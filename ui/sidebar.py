"""The sidebar: where the model comes from, and every option of the flow."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from quantviz import LoadError, ModelSpec, PipelineConfig, StageError, load_model
from quantviz.config import ConfigChanges, ConfigError, config_flags
from quantviz.backends import BACKENDS, all_recipes, backend_name, backend_of
from quantviz.catalog import catalog
from quantviz.flows import FLOWS, applies_to, choices_of, with_backend_defaults
from quantviz.llm_config import LlmConfigError
from ui import llm_config_picker
from ui.runner import Run, get_run
from ui.state import CONFIG_GIVEN, config_widget_keys

SOURCES = ("Sample model", "Python file", "Exported program (.pt2)", llm_config_picker.SOURCE)
TRUST = {
    "Sample model": "Runs code shipped with quantviz.",
    "Python file": "Runs the file's code on this machine, with your permissions: use files you trust.",
    "Exported program (.pt2)": "Reads a torch.export archive. It is checked to be a zip archive first; pickles "
                               "are refused.",
    llm_config_picker.SOURCE: llm_config_picker.TRUST,
}


@dataclass
class ModelChoice:
    key: str  # identifies the model for caching (changes when the file changes)
    ref: str  # what load_model takes (a flow that builds its own model: the flow's name, as on the CLI)
    loader: Callable[[], ModelSpec]
    config: PipelineConfig | None = None  # the config of a flow that builds its own model (export_llm); else None


def app_defaults() -> ConfigChanges:
    """The sidebar's first values where they differ from ``PipelineConfig``'s: the app opens on the flow whose record
    declares ``Flow.app_start``, with those values (pt2e with XNNPACK, where a newcomer sees delegation and fusion
    at once; the CLI's default stays fx + portable). ``QUANTVIZ_DEFAULT_FLOW`` chooses another first flow (a class
    starting from fx, tests written for it)."""
    first = FLOWS.get(os.environ.get("QUANTVIZ_DEFAULT_FLOW", "")) or \
        next(f for f in FLOWS.values() if f.app_start is not None)
    return {"flow": first.name, **(first.app_start or {})}


def default_sample() -> str:
    name = os.environ.get("QUANTVIZ_DEFAULT_MODEL", "sample:digits_cnn").removeprefix("sample:")
    return name if name in catalog() else "digits_cnn"


def model_choice() -> ModelChoice | None:
    st.header("Model")
    source = st.radio("Source", SOURCES, key="source", label_visibility="collapsed")
    st.caption(TRUST[source])
    if source == llm_config_picker.SOURCE:  # the configuration names the model and is the flow's whole config
        pick = llm_config_picker.llm_pick()
        if pick is None:
            st.info("Type the path of an LlmConfig YAML file, or upload one.")
            return None
        config = pick.config
        return ModelChoice(pick.key, config.flow, lambda: FLOWS[config.flow].own_model.build(config), config)
    if source == "Sample model":
        samples = catalog()
        names = list(samples)
        name = st.selectbox("Sample", names, index=names.index(default_sample()), key="sample",
                            format_func=lambda n: n, help="\n\n".join(f"**{k}**: {v}" for k, v in samples.items()))
        st.caption(samples[name])
        ref = f"sample:{name}"
        return ModelChoice(ref, ref, lambda: load_model(ref))
    if source == "Python file":
        path = st.text_input("File path", key="file_path", placeholder="path/to/model.py")
        factory = st.text_input("Factory function", "make_model", key="factory")
        if not path:
            st.info("Type the path of a .py file whose factory returns a ModelSpec, (model, example_inputs) or (model, "
                    "example_inputs, example_kwargs).")
            return None
        ref = f"{path}:{factory}"
        mtime = Path(path).stat().st_mtime if Path(path).is_file() else 0
        return ModelChoice(f"{ref}@{mtime}", ref, lambda: load_model(ref))
    upload = st.file_uploader("Exported program", type=["pt2"], key="upload")
    if upload is None:
        st.info("Upload a file written by torch.export.save (with example inputs).")
        return None
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"quantviz-upload-{digest}.pt2"
    if not path.exists():
        path.write_bytes(data)
    return ModelChoice(f"pt2:{digest}", str(path), lambda: load_model(str(path)))


def flow_config() -> PipelineConfig:
    """One widget per PipelineConfig field the chosen flow uses (``applies_to``), described by the field's metadata;
    its session-state key is the field's name (``ui.state.config_widget_keys``; ``apply_changes`` sets them). The
    flow comes first: it decides which options follow."""
    st.header("Flow")
    keys = config_widget_keys()
    by_name = {f.name: f for f in fields(PipelineConfig)}
    flow = _widget(by_name["flow"])  # not the flows that build their own model: they are a model source
    values: ConfigChanges = {"flow": flow}
    for f in fields(PipelineConfig):
        if f.name not in keys or f.name == "flow" or not applies_to(f.name, flow):
            continue
        values[f.name] = _recipe_widget(f) if f.name == "recipe" else _widget(f)
    return PipelineConfig(**values)


def _recipe_widget(f: Field) -> str:
    """The export recipes of every installed backend (``quantviz.backends.all_recipes``)."""
    names = list(all_recipes())
    if st.session_state.get(f.name) not in names:
        st.session_state[f.name] = "xnnpack_torchao_int8da_int4w_per_channel" \
            if "xnnpack_torchao_int8da_int4w_per_channel" in names else names[0]
    return st.selectbox("Recipe", names, key=f.name, help=f.metadata["help"], on_change=_given, args=(f.name,))


def _given(name: str) -> None:
    """A widget's callback: the user set the field ``name`` (``CONFIG_GIVEN``)."""
    st.session_state[CONFIG_GIVEN] = st.session_state[CONFIG_GIVEN] | {name}


def _backend_chosen() -> None:
    """The backend widget's callback: the backend is the user's, and its record's defaults (``Backend.defaults``:
    XNNPACK's pt2e flow, Vulkan's per-channel weights) are set on the shown widgets of the options the user did not
    set, as an Apply would, so the sidebar shows what runs (the pipeline applies the rest: ``with_backend_defaults``)."""
    _given("backend")
    s = st.session_state
    backend = BACKENDS.get(s["backend"])
    for name, value in (backend.defaults if backend is not None else {}).items():
        if name not in s[CONFIG_GIVEN] and name in s:  # a widget drawn on the last run
            s[name] = value


def apply_changes(changes: ConfigChanges) -> None:
    """Set the sidebar's widgets to a config change (a ``StageError.fix`` or a what-if). Call it from a widget
    callback, which runs before the widgets are drawn again."""
    unknown = set(changes) - set(config_widget_keys())
    if unknown:
        raise ValueError(f"not options of the sidebar: {sorted(unknown)}")
    for name, value in changes.items():
        st.session_state[name] = ", ".join(value) if isinstance(value, (tuple, list)) else value
    st.session_state[CONFIG_GIVEN] = st.session_state[CONFIG_GIVEN] | set(changes)  # the user chose them


def _widget(f: Field) -> Any:
    meta, default, key = f.metadata, app_defaults().get(f.name, f.default), f.name
    label = meta.get("label", f.name.replace("_", " ").capitalize())
    choices = choices_of(f)
    if f.name == "flow":  # export_llm is the "export_llm configuration" source, not a flow for another model
        choices = tuple(c for c in choices if FLOWS[c].own_model is None)
    noted = {"key": key, "help": meta["help"], "on_change": _backend_chosen} if f.name == "backend" else \
        {"key": key, "help": meta["help"], "on_change": _given, "args": (f.name,)}  # the user set it
    if isinstance(default, bool):
        return st.toggle(label, value=default, **noted)
    if choices and len(choices) <= 2:
        return st.radio(label, choices, index=choices.index(default), horizontal=True, **noted)
    if choices:
        return st.selectbox(label, choices, index=choices.index(default), **noted)
    if isinstance(default, tuple):
        text = st.text_input(label, placeholder="comma separated, e.g. pad, encoder.attn", **noted)
        return tuple(s.strip() for s in text.split(",") if s.strip())
    return int(st.number_input(label, meta.get("min", 0), 256, default, **noted))


def backend_defaults_caption(config: PipelineConfig, given: frozenset[str]) -> str:
    """What the chosen backend's record sets on the options the user did not set (``Backend.defaults``: on the
    widgets when the backend was chosen, or applied by the pipeline), as the sidebar says it under the options; ""
    when nothing."""
    resolved, applied = with_backend_defaults(config, given)
    if not applied and "backend" not in given:  # the app's first values (pt2e with XNNPACK): nothing was set
        return ""
    defaults = {f.name: f.default for f in fields(PipelineConfig)}
    held = [name for name, value in backend_of(resolved).defaults.items() if name not in given and
            getattr(resolved, name) == value != defaults[name]]
    if not held:
        return ""
    before = resolved.with_changes(**{name: defaults[name] for name in held})
    needs = f"The {backend_name(resolved)} backend needs `{config_flags(resolved, base=before)}`"
    if applied:  # the widgets show PipelineConfig's default: the run differs from them
        return f"{needs}: applied to the options you did not set (its record's defaults)."
    return f"{needs} (its record's defaults; an option you set yourself is kept)."


@dataclass(frozen=True)
class SidebarRun:
    """The sidebar's model and config, and the run they share with every page."""

    choice: ModelChoice
    config: PipelineConfig  # the config that runs: the sidebar's, with the backend's defaults the user left applied
    run: Run


def sidebar_run(title: str | None = None) -> SidebarRun | None:
    """The sidebar's choices (under ``title``) and their run, started or shared; None, with the reason on the page,
    when the config is invalid, no model is chosen, or the model cannot be loaded or run here::

        found = sidebar_run()
        if found is None:
            return
    """
    with st.sidebar:
        if title:
            st.title(title)
        try:
            choice = model_choice()
        except LlmConfigError as exc:  # the YAML or an override: the stage, cause and fix on the page
            st.error(exc.cause)
            choice = exc
        try:
            if isinstance(choice, ModelChoice) and choice.config is not None:
                config, given, caption = choice.config, frozenset(), ""  # the configuration is the whole config
            else:
                config = flow_config()
                given = st.session_state[CONFIG_GIVEN]
                caption = backend_defaults_caption(config, given)
        except ConfigError as exc:
            st.error(str(exc))
            return None
        if caption:
            st.caption(caption)
    if isinstance(choice, LlmConfigError):
        llm_config_picker.llm_error(choice)
        return None
    if choice is None:
        st.info("Choose a model in the sidebar.")
        return None
    try:
        run = get_run(choice.key, choice.loader, config, choice.ref, given)
        return SidebarRun(choice, run.pipe.config, run)
    except ConfigError as exc:  # e.g. a backend whose package is missing: the pip command
        st.error(f"This configuration cannot run here: {exc}", icon=":material/error:")
    except LlmConfigError as exc:  # export_llm's loader: files the configuration names, a shape that does not fit
        llm_config_picker.llm_error(exc)
    except (LoadError, StageError) as exc:
        st.error(f"Could not load the model: {exc}", icon=":material/error:")
    return None
