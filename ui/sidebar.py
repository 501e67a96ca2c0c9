"""The sidebar: where the model comes from, and every option of the flow."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st

from quantviz import ModelSpec, PipelineConfig, load_model
from quantviz.config import DUPLICATE_DEQUANT, FLOWS, FUSIONS, MODES, PARTITIONERS
from sample_models import SAMPLES

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
    return name if name in SAMPLES else "digits_cnn"


def model_choice() -> ModelChoice | None:
    st.header("Model")
    source = st.radio("Source", SOURCES, key="source", label_visibility="collapsed")
    st.caption(TRUST[source])
    if source == "Sample model":
        names = list(SAMPLES)
        name = st.selectbox("Sample", names, index=names.index(default_sample()), key="sample",
                            format_func=lambda n: n, help="\n\n".join(f"**{k}**: {v}" for k, v in SAMPLES.items()))
        st.caption(SAMPLES[name])
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
    st.header("Flow")
    flow = st.radio("Flow", FLOWS, horizontal=True, key="flow",
                    help="fx: prepare_fx + ExecuTorch BackendConfig (uint8). pt2e: XNNPACKQuantizer (int8).")
    mode = st.radio("Mode", MODES, horizontal=True, key="mode")
    per_channel = st.toggle("Per-channel weights", key="per_channel")
    partitioner = st.selectbox("Partitioner", PARTITIONERS, key="partitioner",
                               help="demo: quantviz's own partitioner, conv → add groups only")
    fusion = st.selectbox("Fusion patterns", FUSIONS, index=FUSIONS.index("executorch"), key="fusion",
                          help="executorch: QuantFusionPass (uint8 add, reshapes). quantviz: the project's own "
                               "C++ kernels (conv, linear, add, mul, pools, clamps; int8 and uint8). both: "
                               "quantviz's first. The first use builds the kernels (about 15 s, cached).")
    skip = st.text_input("Modules to skip when tracing", key="skip_modules", placeholder="e.g. pad, encoder.attn",
                         help="comma separated qualified names; they stay float")
    batches = st.number_input("Calibration batches", 1, 256, 8, key="calibration_batches")
    dup = st.selectbox("Duplicate shared dequantize", DUPLICATE_DEQUANT, key="duplicate_dequant",
                       help="DuplicateDequantNodePass: auto runs it when a dequantize feeds several ops")
    return PipelineConfig(flow=flow, mode=mode, per_channel=per_channel, partitioner=partitioner, fusion=fusion,
                          skip_modules=tuple(s.strip() for s in skip.split(",") if s.strip()),
                          calibration_batches=int(batches), duplicate_dequant=dup)
