"""The bare torch/executorch calls of a configuration, without quantviz's pipeline: what a user's own script does.

quantviz is held to it: on the same model in the same process, quantviz must reach ``run`` whenever this does
(tests/test_zoo_e2e.py, bench/zoo.py)::

    bare = run_bare(load_model("sample:zoo_vit"), PipelineConfig(flow="pt2e", partitioner="xnnpack"))
    bare.ok, bare.failed_step, bare.error        # True, None, ""
    bare.delegate_calls, bare.non_delegated_ops  # 1, ('aten.cat.default', ...)

pt2e: ``torch.export.export`` → ``prepare_pt2e(XNNPACKQuantizer)`` → calibrate → ``convert_pt2e`` →
``torch.export.export`` → ``to_edge_transform_and_lower(partitioner=[...])`` (or ``to_edge`` + ``to_backend``) →
ExecuTorch's ``QuantFusionPass`` when the config asks for ExecuTorch fusion → ``to_executorch()`` →
``_load_for_executorch_from_buffer`` and ``forward`` on every comparison batch. fx: ``prepare_fx`` with ExecuTorch's
BackendConfig → calibrate → ``_convert_to_reference_decomposed_fx`` → export, plus quantviz's two small weight
passes the fx reference model needs to run at all (see the README's limitations). quantviz's own fusion
patterns, module skipping and tracing help are not bare calls and are not applied.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from quantviz.config import PipelineConfig
from quantviz.known_issues import runtime_preflight
from quantviz.lowering import compile_config, graph_ops, make_partitioner
from quantviz.model_spec import ModelSpec
from quantviz.passes.fold_weight_quantize import fold_weight_quantize
from quantviz.passes.scalar_qparams import scalar_qparams
from quantviz.stages.prepare import fx_qconfig_mapping, xnnpack_quantizer

STEPS: tuple[str, ...] = ("export", "prepare", "calibrate", "convert", "capture", "lower", "fuse", "emit", "run")


@dataclass
class BareRun:
    """What the bare calls reached, and what they made."""

    ok: bool = False                    # every step ran
    failed_step: str | None = None      # the first step that raised (one of STEPS)
    error: str = ""                     # its exception: "Type: first line"
    seconds: dict[str, float] = field(default_factory=dict)  # step -> wall seconds, for the steps that ran
    delegate_calls: int = 0             # executorch_call_delegate nodes after lowering
    non_delegated_ops: tuple[str, ...] = ()  # sorted op names left outside delegates (getitem excluded)
    outputs: list[Any] = field(default_factory=list)  # the runtime's outputs, one per comparison batch

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def run_bare(spec: ModelSpec, config: PipelineConfig) -> BareRun:
    """Run the bare calls of ``config`` on ``spec``; stops at the first step that raises and says which."""
    result = BareRun()
    state: dict[str, Any] = {}
    for step in STEPS:
        t0 = time.perf_counter()
        try:
            _STEP_FUNCS[step](spec, config, state)
        except Exception as exc:  # noqa: BLE001 - the bare flow failed here: that is the finding
            text = str(exc).strip()
            result.failed_step = step
            result.error = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:500]
            return _finish(result, state)
        result.seconds[step] = time.perf_counter() - t0
    result.ok = True
    return _finish(result, state)


def _finish(result: BareRun, state: dict[str, Any]) -> BareRun:
    result.delegate_calls, result.non_delegated_ops = state.get("lowered_ops", (0, ()))
    result.outputs = state.get("outputs", [])
    return result


# -- the steps, each reading and writing ``state`` ------------------------------------------------------------------
def _export(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    if config.flow == "pt2e":
        state["ep"] = torch.export.export(spec.model, spec.example_inputs)


def _prepare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    if config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e


        state["observed"] = prepare_pt2e(state["ep"].module(), xnnpack_quantizer(config.with_changes(skip_modules=())))
        return
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import prepare_fx


    state["observed"] = prepare_fx(copy.deepcopy(spec.model).eval(),
                                   fx_qconfig_mapping(config.with_changes(skip_modules=())), spec.example_inputs,
                                   backend_config=get_executorch_backend_config())


def _calibrate(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    with torch.no_grad():
        for batch in spec.calibration_data(config.calibration_batches):
            state["observed"](*batch)


def _convert(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    if config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        state["reference"] = convert_pt2e(state["observed"])
        return
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx

    state["reference"] = _convert_to_reference_decomposed_fx(state["observed"],
                                                             backend_config=get_executorch_backend_config())


def _capture(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    ep = torch.export.export(state["reference"], spec.example_inputs)
    if config.flow == "fx":  # the fx reference model does not run in ExecuTorch without these (README)

        ep, _ = fold_weight_quantize(ep)
        ep, _ = scalar_qparams(ep)
    state["aten"] = ep


def _lower(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    from executorch.exir import to_edge, to_edge_transform_and_lower


    if config.partitioner == "none":
        state["lowered"] = to_edge(state["aten"], compile_config=compile_config())
    elif config.lowering == "transform_and_lower":
        state["lowered"] = to_edge_transform_and_lower(
            state["aten"], partitioner=[make_partitioner(config.partitioner, config.delegate_granularity)[0]],
            compile_config=compile_config())
    else:
        state["lowered"] = to_edge(state["aten"], compile_config=compile_config()) \
            .to_backend(make_partitioner(config.partitioner, config.delegate_granularity)[0])
    state["lowered_ops"] = graph_ops(state["lowered"])  # now: to_executorch rewrites the program in place


def _fuse(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    if config.uses_executorch_fusion:
        from executorch.exir.passes.quant_fusion_pass import QuantFusionPass

        state["lowered"] = state["lowered"].transform([QuantFusionPass(_fix_node_meta_val=True)])


def _emit(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    import executorch.kernels.quantized  # noqa: F401  the quantized_decomposed out variants to_executorch needs


    state["blocked"] = runtime_preflight(state["lowered"])  # now: to_executorch rewrites the program in place
    state["program"] = state["lowered"].to_executorch()


def _run(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    blocked = state.get("blocked")  # a program that would abort this process is not loaded
    if blocked is not None:
        raise RuntimeError(f"the runtime would abort the process: {blocked.message}")
    buffer = state["program"].buffer
    module = _load_for_executorch_from_buffer(buffer)
    state["outputs"] = [module.forward(tuple(batch)) for batch in spec.comparison_batches()]


_STEP_FUNCS: dict[str, Callable[[ModelSpec, PipelineConfig, dict], None]] = {
    "export": _export, "prepare": _prepare, "calibrate": _calibrate, "convert": _convert, "capture": _capture,
    "lower": _lower, "fuse": _fuse, "emit": _emit, "run": _run,
}
assert tuple(_STEP_FUNCS) == STEPS
