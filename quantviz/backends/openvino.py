"""openvino: ``OpenVINOQuantizer`` (nncf) and ``OpenvinoPartitioner``; the pip runtime registers
``OpenvinoBackend``, so the .pte runs here. ``convert_pt2e(..., fold_quantize=False)``: folded int8 weights make
OpenVINO fail ("Arguments do not have the same element type (f32, i8)"). Under ``--partitioner none`` nothing is
delegated and the weights are folded (``convert_pt2e``'s default): the portable ``quantize_per_channel`` kernel aborts
on the float32 scales OpenVINOQuantizer gives them (``quantviz/stages/convert_pt2e.py``)::

    BACKEND.quantizer(PipelineConfig(flow="pt2e", backend="openvino"))   # OpenVINOQuantizer(mode=INT8_SYM)

OpenVINO programs are loaded from bytes: loading one from a file path crashes the process (executorch 1.5.1).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Iterator

from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from quantviz.config import PipelineConfig

EXTRA = "pip install 'quantviz[openvino]'  # openvino==2026.4.1 nncf==3.4.0 (2025.x fails with torch 2.13)"


def mode(config: PipelineConfig) -> str:
    """INT8_SYM (static int8, symmetric) or INT8WO_SYM (weight-only, for --mode dynamic: OpenVINO has no dynamic
    activations)."""
    return "INT8WO_SYM" if config.mode == "dynamic" else "INT8_SYM"


def openvino_quantizer(config: PipelineConfig) -> Any:
    from executorch.backends.openvino.quantizer import OpenVINOQuantizer, QuantizationMode

    return OpenVINOQuantizer(mode=getattr(QuantizationMode, mode(config)))


def openvino_quantizer_calls(config: PipelineConfig) -> list[str]:
    return ["from executorch.backends.openvino.quantizer import OpenVINOQuantizer, QuantizationMode",
            f"quantizer = OpenVINOQuantizer(mode=QuantizationMode.{mode(config)})"]


def openvino_partitioner(config: PipelineConfig) -> PartitionerChoice:
    from executorch.backends.openvino.partitioner import OpenvinoPartitioner
    from executorch.exir.backend.backend_details import CompileSpec

    return PartitionerChoice(OpenvinoPartitioner([CompileSpec("device", b"CPU")]),
                             "from executorch.backends.openvino.partitioner import OpenvinoPartitioner\n"
                             "from executorch.exir.backend.backend_details import CompileSpec",
                             'OpenvinoPartitioner([CompileSpec("device", b"CPU")])')


@contextlib.contextmanager
def openvino_refusals(into: dict[str, list[str]]) -> Iterator[None]:
    """OpenVINO's support check only prints "Op not supported: torch.ops.X" (no node): wrap it to name the node."""
    from executorch.backends.openvino.partitioner import OpenvinoOperatorsSupport

    original = OpenvinoOperatorsSupport.is_node_supported

    def checked(self, submodules, node):
        ok = original(self, submodules, node)
        if not ok and node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            why = "skipped by op_types_to_skip/op_names_to_skip" if name in self._op_types_to_skip or \
                node.name in self._op_names_to_skip else f"torch.ops.{name} is not in OpenVINO's supported ops"
            if why not in into.get(node.name, []):
                into.setdefault(node.name, []).append(f"OpenVINO partitioner: {why}")
        return ok

    OpenvinoOperatorsSupport.is_node_supported = checked
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its print()s
            yield
    finally:
        OpenvinoOperatorsSupport.is_node_supported = original


BACKEND = Backend(
    "openvino", "OpenVINO (CPU): OpenVINOQuantizer (nncf) and OpenvinoPartitioner; run by the runtime here",
    quantizer=openvino_quantizer, quantizer_calls=openvino_quantizer_calls, quantizer_key="openvino",
    partitioner=openvino_partitioner, numbers="runtime",
    requires=(Requirement("openvino", EXTRA), Requirement("nncf", EXTRA)),
    convert_options={"fold_quantize": False}, refusals=openvino_refusals, runtime_ids=("OpenvinoBackend",),
    # its frontend cannot convert the fx flow's programs (MobileNetV2: OpConversionFailure); its own quantizer's
    # flow lowers them whole. `--flow fx` given is kept
    defaults={"flow": "pt2e"}, rank=4)
