"""ethos-u: Arm Ethos-U55 (``ethos-u55-128``): ``EthosUQuantizer`` and ``EthosUPartitioner``; Vela compiles each
delegate's TOSA for the NPU. There is no Ethos-U simulator on the package index, so the numbers are those of the
TOSA graph Vela was given, run on the TOSA reference model, and Vela's own report says what it placed on the NPU,
the estimated cycles and the memory it needs::

    report = BACKEND.report(edge)      # {"delegates": [{"ops_on_npu": 7, "ops_on_cpu": 0, "cycles_npu": ..., ...}]}
"""
from __future__ import annotations

import contextlib
import copy
import csv
import glob
import io
import os
import tempfile
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from quantviz.backends.arm_tosa import REQUIRES, arm_qconfig, arm_qconfig_call, arm_recipes, arm_recovery, arm_refusals
from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from quantviz.config import PipelineConfig

TARGET = "ethos-u55-128"


def compile_spec(config: PipelineConfig | None = None) -> Any:
    from executorch.backends.arm.ethosu import EthosUCompileSpec

    return EthosUCompileSpec(TARGET, extra_flags=["--verbose-performance"])


def ethos_quantizer(config: PipelineConfig) -> Any:
    from executorch.backends.arm.quantizer import EthosUQuantizer

    return EthosUQuantizer(compile_spec(config)).set_global(arm_qconfig(config))


def ethos_quantizer_calls(config: PipelineConfig) -> list[str]:
    return ["from executorch.backends.arm.ethosu import EthosUCompileSpec",
            "from executorch.backends.arm.quantizer import EthosUQuantizer, get_symmetric_quantization_config, "
            "get_symmetric_a16w8_quantization_config",
            f"compile_spec = EthosUCompileSpec({TARGET!r}, extra_flags=['--verbose-performance'])",
            f"quantizer = EthosUQuantizer(compile_spec).set_global({arm_qconfig_call(config)})"]


def ethos_partitioner(config: PipelineConfig) -> PartitionerChoice:
    from executorch.backends.arm.ethosu import EthosUPartitioner

    return PartitionerChoice(EthosUPartitioner(compile_spec(config)),
                             "from executorch.backends.arm.ethosu import EthosUCompileSpec, EthosUPartitioner",
                             f"EthosUPartitioner(EthosUCompileSpec({TARGET!r}, extra_flags=['--verbose-performance']))")


def delegate_tosa(lowered: Any) -> tuple[bytes, Any]:
    """The TOSA flatbuffer Vela compiled for an Ethos-U delegate (regenerated from its edge subgraph, the same
    bytes Vela was given), and its compile spec."""
    from executorch.backends.arm.ethosu import EthosUCompileSpec
    from executorch.backends.arm.tosa.backend import TOSABackend

    cs = EthosUCompileSpec._from_list(lowered.compile_specs)
    tosa_cs = TOSABackend.filter_tosa_compile_specs(cs).dump_intermediate_artifacts_to(None).dump_debug_info(None)
    return TOSABackend._preprocess(copy.deepcopy(lowered.original_module), tosa_cs).processed_bytes, cs


class EthosUOnTosaReference(TorchFunctionMode):
    """Each EthosUBackend delegate call runs the TOSA graph Vela compiled on the TOSA reference model."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch._higher_order_ops.executorch_call_delegate and args[0].backend_id == "EthosUBackend":
            from executorch.backends.arm.test.runner_utils import run_tosa_graph

            tosa, cs = delegate_tosa(args[0])
            return run_tosa_graph(tosa, cs.tosa_spec, list(args[1:]), args[0].original_module.graph.output_node())
        return func(*args, **(kwargs or {}))


SUMMARY_FIELDS = ("inference_time", "cycles_total", "cycles_npu", "nn_macs", "sram_memory_used",
                  "off_chip_flash_memory_used", "total_npu_encoded_weights")


def vela_report(edge: Any) -> dict[str, Any]:
    """Vela's report of every Ethos-U delegate of ``edge`` (compiled again, one folder a delegate, since the
    backend's own dump keeps only the last): ops on the NPU and the CPU, estimated cycles and time, SRAM and flash
    (KiB), per layer."""
    from executorch.backends.arm.arm_vela import vela_compile

    ep = edge.exported_program()
    out: list[dict[str, Any]] = []
    for node in ep.graph.nodes:
        if node.op != "call_function" or "call_delegate" not in str(node.target):
            continue
        lowered = getattr(ep.graph_module, node.args[0].target)
        tosa, cs = delegate_tosa(lowered)
        with tempfile.TemporaryDirectory() as d:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                vela_compile(tosa, list(cs.compiler_flags), intermediate_path=d)
            out.append({"delegate": node.name, **_read_vela(os.path.join(d, "output"))})
    return {"target": TARGET, "delegates": out}


def _read_vela(folder: str) -> dict[str, Any]:
    rep: dict[str, Any] = {}
    summary = glob.glob(os.path.join(folder, "*_summary_*.csv"))
    if summary:
        with open(summary[0]) as f:
            row = next(csv.DictReader(f))
        rep.update({k: _number(row.get(k)) for k in SUMMARY_FIELDS})
    layers = glob.glob(os.path.join(folder, "*_per-layer.csv"))
    if layers:
        with open(layers[0]) as f:
            rows = list(csv.DictReader(f))
        rep["ops_on_npu"] = sum(r["Target"] == "NPU" for r in rows)
        rep["ops_on_cpu"] = sum(r["Target"] != "NPU" for r in rows)
        rep["per_layer"] = [{"op": r["Original Operator"], "target": r["Target"], "cycles": int(r["Op Cycles"]),
                             "macs": int(r["MAC Count"]), "name": r["Name"]} for r in rows]
    return rep


def _number(text: str | None) -> float | str | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return text


BACKEND = Backend(
    "ethos-u", f"Arm Ethos-U ({TARGET}): EthosUQuantizer and EthosUPartitioner, compiled by Vela; Vela's report and "
               "the TOSA reference model (no NPU simulator here)",
    quantizer=ethos_quantizer, quantizer_calls=ethos_quantizer_calls, quantizer_key="ethos-u",
    partitioner=ethos_partitioner, numbers="reference-model",
    numbers_note="no Ethos-U simulator on the package index: the TOSA graph Vela compiled runs on the TOSA "
                 "reference model, and Vela's report gives the NPU placement, cycles and memory",
    requires=REQUIRES + (Requirement("ethosu.vela", "pip install 'quantviz[arm]'  # ethos-u-vela==5.1.0"),),
    reference_dispatch=EthosUOnTosaReference, reference_name="TOSA reference model (the graph Vela compiled)",
    report=vela_report, refusals=arm_refusals, runtime_ids=("EthosUBackend",), recipes=arm_recipes("arm_ethos_"),
    recovery=arm_recovery,
    # its own quantizer (pt2e: the fx flow's uint8 activations are not TOSA's), and no export guards (Arm's
    # quantizer passes cannot run the _guards_fn call_module torch 2.13 adds to ep.module())
    defaults={"flow": "pt2e", "check_guards": False}, activation_bits=(8, 16), rank=3)
