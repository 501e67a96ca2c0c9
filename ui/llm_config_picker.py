"""The sidebar's "export_llm configuration" source: a YAML file ExecuTorch ships (or the user's own, by path or
upload) and ``key=value`` overrides one a line, run as the export_llm flow, each of export_llm's steps a page.

The shipped files name no weights this machine has, so the overrides start filled with quantviz's tiny-model ones
(``quantviz.llm_config.tiny_overrides``): on screen, editable, and in the stages' API calls; nothing is applied
unseen. The pure logic (listing, parsing, the config) is ``quantviz.llm_config``'s, shared with the CLI::

    pick = llm_pick()          # in the sidebar: LlmPick(config, key), or None (nothing chosen yet)
    llm_error(exc)             # an LlmConfigError on the page: stage, cause, fix, and the fix's Apply
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from quantviz import PipelineConfig
from quantviz.flows import FLOWS
from quantviz.llm_config import (LlmConfigError, llm_pipeline_config, load_llm_config, parse_overrides,
                                 shipped_label, shipped_llm_configs, tiny_overrides, tiny_params)
from ui.state import LLM_OVERRIDES, LLM_YAML, LLM_YAML_PATH, LLM_YAML_UPLOAD, seed_widget

SOURCE = "export_llm configuration"
TRUST = ("Runs ExecuTorch's export_llm model code on the configuration you choose: its files (params, checkpoint) are "
         "read with your permissions.")
OWN = "Your own YAML file…"
DEFAULT_YAML = "llama/llama_xnnpack.yaml"  # KV cache, custom SDPA, 8da4w, 4-bit embeddings, XNNPACK


@dataclass(frozen=True)
class LlmPick:
    config: PipelineConfig  # flow export_llm, the YAML's path and the overrides
    key: str  # identifies the model (the file's path and time, and the overrides: they decide the model)


def yaml_choices() -> dict[str, Path]:
    """The shipped YAML files by label (``llama/llama_xnnpack.yaml``), found in the installed executorch package."""
    return {shipped_label(p): p for p in shipped_llm_configs()}


def default_overrides_text() -> str:
    """The overrides' first value: the tiny model's, one a line."""
    return "\n".join(tiny_overrides())


def overrides_text(overrides: tuple[str, ...]) -> str:
    """Overrides as the text area shows them (a fix's Apply writes them so)."""
    return "\n".join(overrides)


def picked_config(path: str | Path, text: str) -> PipelineConfig:
    """The config of a YAML and the overrides text (LlmConfigError naming the bad line or value): the same
    ``PipelineConfig`` the CLI makes of ``--llm-config path --llm-set ...`` (``llm_pipeline_config``), checked by
    reading it as export_llm does (``load_llm_config``)."""
    config = llm_pipeline_config(path, parse_overrides(text))
    load_llm_config(config.llm_config, config.llm_overrides)
    return config


def model_key(config: PipelineConfig) -> str:
    """What identifies the model: the YAML's path and modification time, and every override."""
    path = Path(config.llm_config)
    mtime = path.stat().st_mtime if path.is_file() else 0
    return f"export_llm:{path}@{mtime}:" + "|".join(config.llm_overrides)


def _own_yaml() -> str | None:
    """The path of the user's own YAML (typed, or an upload saved under the temporary folder), or None."""
    path = st.text_input("YAML path", key=LLM_YAML_PATH, placeholder="path/to/config.yaml")
    upload = st.file_uploader("or upload a YAML", type=["yaml", "yml"], key=LLM_YAML_UPLOAD)
    if upload is not None:
        data = upload.getvalue()
        saved = Path(tempfile.gettempdir()) / f"quantviz-upload-{hashlib.sha256(data).hexdigest()[:16]}.yaml"
        if not saved.exists():
            saved.write_bytes(data)
        return str(saved)
    return path or None


def llm_pick() -> LlmPick | None:
    """The sidebar's widgets for the source (drawn where it is called); the pick, None when no file is given yet,
    or LlmConfigError when the file or an override is wrong."""
    choices = yaml_choices()
    labels = [*choices, OWN]
    seed_widget(LLM_YAML, DEFAULT_YAML if DEFAULT_YAML in choices else labels[0])
    label = st.selectbox("LLM configuration", labels, key=LLM_YAML,
                         help="The LlmConfig YAML files the installed executorch package ships "
                              "(executorch/examples/models/*/config), or your own")
    path = str(choices[label]) if label in choices else _own_yaml()
    if label in choices:
        st.caption(f"`{path}`")
    seed_widget(LLM_OVERRIDES, default_overrides_text())
    text = st.text_area("Overrides (key=value, one a line)", key=LLM_OVERRIDES, height=130,
                        help="as export_llm takes them after --config: e.g. quantization.group_size=32; "
                             "+key=value (Hydra's) means the same")
    st.caption(f"Filled first with quantviz's tiny model: `{tiny_params().name}` (2 layers, width 64) and a "
               "checkpoint of random weights from a fixed seed, groups of 32 and a 32-token context, so a shipped "
               "file runs here in seconds without downloads. Remove them to run the file as written (export_llm then "
               "builds a 4096-wide layer).")
    st.caption("Flow: **export_llm**: " + FLOWS["export_llm"].description)
    if not path:
        return None
    config = picked_config(path, text)
    return LlmPick(config, model_key(config))


def _apply_overrides(overrides: tuple[str, ...]) -> None:
    """A fix's Apply: the overrides text area shows the fix (the user sees and can edit what runs)."""
    st.session_state[LLM_OVERRIDES] = overrides_text(overrides)


def llm_error(exc: LlmConfigError) -> None:
    """The configuration's error on the page: the stage that reads it, the cause, the fix and, when the fix is a
    config change, a button that writes it into the overrides."""
    st.error(f"**Stage {exc.stage}** (export_llm reads the configuration and builds its model) could not start.\n\n"
             f"**Cause:** {exc.cause}\n\n**Fix:** {exc.fix}", icon=":material/error:")
    if exc.fix_overrides is not None:
        st.code(overrides_text(exc.fix_overrides), language=None)
        st.button("Apply these overrides", key="llm_apply_fix", on_click=_apply_overrides,
                  args=(exc.fix_overrides,), help="writes them into the sidebar's overrides, where you see them")
