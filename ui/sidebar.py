"""The sidebar: where the model comes from, and every option of the flow."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from quantviz import ModelSpec, PipelineConfig, load_model
from quantviz.catalog import catalog
from ui.state import config_widget_keys

SOURCES = ("Sample model", "Python file", "Exported program (.pt2)")
TRUST = {
    "Sample model": "Runs code shipped with quantviz.",
    "Python file": "Runs the file's code on this machine, with your permissions: use files you trust.",
    "Exported program (.pt2)": "Reads a torch.export archive. It is checked to be a zip archive first; pickles "
                               "are refused.",
}


@dataclass
class ModelChoice:
    key: str  # identifies the model for caching (changes when the file changes)
    ref: str  # what load_model takes
    loader: Callable[[], ModelSpec]


def default_sample() -> str:
    name = os.environ.get("QUANTVIZ_DEFAULT_MODEL", "sample:digits_cnn").removeprefix("sample:")
    return name if name in catalog() else "digits_cnn"


def model_choice() -> ModelChoice | None:
    st.header("Model")
    source = st.radio("Source", SOURCES, key="source", label_visibility="collapsed")
    st.caption(TRUST[source])
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
            st.info("Type the path of a .py file whose factory returns a ModelSpec or (model, example_inputs).")
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
    """One widget per PipelineConfig field, described by the field's metadata; its session-state key is the
    field's name (``ui.state.config_widget_keys``; ``apply_changes`` sets them)."""
    st.header("Flow")
    keys = config_widget_keys()
    values = {f.name: _widget(f) for f in fields(PipelineConfig) if f.name in keys}
    return PipelineConfig(**values)


def apply_changes(changes: dict[str, Any]) -> None:
    """Set the sidebar's widgets to a config change (a ``StageError.fix`` or a what-if). Call it from a widget
    callback, which runs before the widgets are drawn again."""
    unknown = set(changes) - set(config_widget_keys())
    if unknown:
        raise ValueError(f"not options of the sidebar: {sorted(unknown)}")
    for name, value in changes.items():
        st.session_state[name] = ", ".join(value) if isinstance(value, (tuple, list)) else value


def _widget(f: Field) -> Any:
    meta, default, key = f.metadata, f.default, f.name
    label = meta.get("label", f.name.replace("_", " ").capitalize())
    choices = meta.get("choices")
    if isinstance(default, bool):
        return st.toggle(label, value=default, key=key, help=meta["help"])
    if choices and len(choices) <= 2:
        return st.radio(label, choices, index=choices.index(default), horizontal=True, key=key, help=meta["help"])
    if choices:
        return st.selectbox(label, choices, index=choices.index(default), key=key, help=meta["help"])
    if isinstance(default, tuple):
        text = st.text_input(label, key=key, placeholder="comma separated, e.g. pad, encoder.attn",
                             help=meta["help"])
        return tuple(s.strip() for s in text.split(",") if s.strip())
    return int(st.number_input(label, 1, 256, default, key=key, help=meta["help"]))
