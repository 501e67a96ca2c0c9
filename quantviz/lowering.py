"""The two lowerings a partitioner can be applied with, each split at the point quantviz shows as a stage.

``to_edge_transform_and_lower`` (what XNNPACK users call) is ``_gen_edge_manager_for_partitioners`` (to the edge
dialect, keeping the ops the partitioner asks for whole), then ``to_backend``, then a check that every op kept
whole was delegated. quantviz's edge stage runs the first step and its delegate stage the other two, so each
page shows the program between them; together they are that one call::

    config = PipelineConfig(flow="pt2e", backend="xnnpack")
    edge = edge_program(aten_program, config)                                          # edge stage
    lowered = delegate(edge, partitioner_for(config).partitioner, "transform_and_lower")   # delegate stage

``to_backend`` (the seed's path) is ``to_edge`` then ``edge.to_backend(partitioner)``.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

from quantviz.backends import PartitionerChoice, backend_name, backend_of
from quantviz.config import PipelineConfig

# quantized_decomposed ops are not core ATen, so the IR check is off, as in ExecuTorch's own quantization tests
COMPILE_CONFIG_CALL = "EdgeCompileConfig(_check_ir_validity=False)"


def compile_config(config: PipelineConfig | None = None) -> Any:
    """The EdgeCompileConfig: the IR check off, plus what the config's backend needs (``compile_options``)."""
    from executorch.exir import EdgeCompileConfig

    options = backend_of(config).compile_options if config is not None and not config.recipe else {}
    return EdgeCompileConfig(_check_ir_validity=False, **options)


def compile_config_call(config: PipelineConfig) -> str:
    options = backend_of(config).compile_options if not config.recipe else {}
    return "EdgeCompileConfig(" + ", ".join(["_check_ir_validity=False", *(f"{k}={v!r}" for k, v in options.items())]) + ")"


def partitioner_for(config: PipelineConfig) -> PartitionerChoice | None:
    """The partitioner ``config`` delegates with, or None: ``--partitioner none``; ``demo`` (quantviz's conv -> add
    groups); ``auto``: the backend's own (the portable backend has none)::

        partitioner_for(PipelineConfig(backend="xnnpack", delegate_granularity="op")).constructor
        # 'XnnpackPartitioner(per_op_mode=True)'
    """
    if config.partitioner == "none":
        return None
    if config.partitioner == "demo":
        from quantviz.partitioners.demo import DemoConvAddPartitioner

        return PartitionerChoice(DemoConvAddPartitioner(), "from quantviz.partitioners.demo import "
                                 "DemoConvAddPartitioner", "DemoConvAddPartitioner()")
    backend = backend_of(config)
    if backend.partitioner is None:
        return None
    choice = backend.partitioner(config)
    if config.delegate_granularity == "op" and not backend.splits_per_op:  # XNNPACK splits itself (per_op_mode)
        from quantviz.partitioners.per_op import PerOpPartitioner

        return PartitionerChoice(PerOpPartitioner(choice.partitioner),
                                 choice.import_line + "\nfrom quantviz.partitioners.per_op import PerOpPartitioner",
                                 f"PerOpPartitioner({choice.constructor})")
    return choice


def partitioner_name(config: PipelineConfig) -> str:
    """"none", "demo" or the backend whose partitioner ``config`` delegates with (no object is built)."""
    if config.recipe:
        return backend_of(config).name  # the recipe's own partitioners
    if config.partitioner in ("none", "demo"):
        return config.partitioner
    return backend_name(config) if backend_of(config).partitioner is not None else "none"


def delegates(config: PipelineConfig) -> bool:
    """True when ``config`` hands ops to a partitioner."""
    return partitioner_name(config) != "none"


def partitioner_key(config: PipelineConfig) -> tuple:
    """What the delegate stage (and, under transform_and_lower, the edge stage) depends on."""
    return partitioner_name(config), config.delegate_granularity, config.lowering, backend_name(config)


def keeps_ops_whole(config: PipelineConfig) -> bool:
    """True when the edge program is made for a partitioner (to_edge_transform_and_lower's first step)."""
    return delegates(config) and config.lowering == "transform_and_lower"


def edge_program(aten_program: Any, config: PipelineConfig, partitioner: Any = None) -> Any:
    """The edge-dialect program before partitioning, as ``config``'s lowering makes it (``partitioner``: the one
    ``partitioner_for(config)`` makes, when the caller has it already). ``aten_program``: one ExportedProgram
    (the method "forward"), or a dict method name -> ExportedProgram, as ``to_edge_transform_and_lower`` takes."""
    programs = aten_program if isinstance(aten_program, dict) else {"forward": aten_program}
    if keeps_ops_whole(config):
        from executorch.exir.program._program import _gen_edge_manager_for_partitioners

        partitioner = partitioner or partitioner_for(config).partitioner
        cc = compile_config(config)
        edge = _gen_edge_manager_for_partitioners({name: [partitioner] for name in programs}, programs, cc, None)
        passes = transform_passes(config, cc)
        if passes:  # as to_edge_transform_and_lower runs them, before partitioning
            edge = edge.transform(passes)
            for method in edge.methods:
                _lift_constants(edge.exported_program(method))
        return edge
    from executorch.exir import to_edge

    return to_edge(programs, compile_config=compile_config(config))


def transform_passes(config: PipelineConfig, cc: Any) -> list[Any]:
    """The passes the backend asks to_edge_transform_and_lower to run before partitioning (Vulkan: I64toI32)."""
    if config.recipe:  # the recipe's own lowering
        return []
    backend = backend_of(config)
    return backend.transform_passes(cc) if backend.transform_passes is not None and delegates(config) else []


def _lift_constants(ep: Any) -> None:
    from executorch.exir.program._program import lift_constant_tensor_pass

    lift_constant_tensor_pass(ep)


def delegate(edge: Any, partitioner: Any, lowering: str) -> Any:
    """``edge`` with ``partitioner``'s groups lowered to delegates; under transform_and_lower, also the check
    ``to_edge_transform_and_lower`` makes afterwards (an op kept whole but not delegated is an error)."""
    if lowering == "to_backend":
        return edge.to_backend(partitioner)
    with _no_workflow_warning():  # XNNPACK warns of "to_edge() + to_backend()" unless its caller is named
        # to_edge_transform_and_lower's step: every method (forward, and decode beside it) with the one partitioner
        lowered = edge.to_backend({name: partitioner for name in method_order(edge)})
    for name in method_order(lowered):
        _check_kept_ops_delegated(lowered, partitioner, name)
    return lowered


def method_order(program: Any) -> list[str]:
    """The methods of an edge (or ExecuTorch) program manager in the order they were given (``forward`` first, as
    ``to_edge_transform_and_lower`` keeps its dict's order); ``methods`` itself is a set."""
    given = getattr(program, "_edge_programs", None) or getattr(program, "_execution_programs", None)
    return list(given) if isinstance(given, dict) else sorted(program.methods)


@contextlib.contextmanager
def _no_workflow_warning() -> Iterator[None]:
    logger = logging.getLogger("executorch.backends.xnnpack.partition.xnnpack_partitioner")

    def drop(record: logging.LogRecord) -> bool:
        return "deprecated 'to_edge() + to_backend()'" not in str(record.msg)

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _check_kept_ops_delegated(lowered: Any, partitioner: Any, method: str = "forward") -> None:
    from executorch.exir.program._program import (
        _can_skip_using_EDGE_DO_NOT_DECOMP,
        _remove_invalid_ops_for_not_decompose,
        _sanity_check_graph_for_non_decomp_ops,
    )

    program = lowered.exported_program(method)
    ops, check_op_support = partitioner.ops_to_not_decompose(program)
    if not _can_skip_using_EDGE_DO_NOT_DECOMP(partitioner, program):
        ops = _remove_invalid_ops_for_not_decompose(ops)
    _sanity_check_graph_for_non_decomp_ops(method, program, set(ops), check_op_support,
                                           partitioner_name=type(partitioner).__name__, generate_error=True)


def graph_ops(program: Any) -> tuple[int, tuple[str, ...]]:
    """(delegate calls, sorted names of the other call_function ops) of an edge program manager or program."""
    ep = program.exported_program() if hasattr(program, "exported_program") else program
    delegates, ops = 0, set()
    for n in ep.graph.nodes:
        if n.op != "call_function":
            continue
        name = getattr(n.target, "__name__", str(n.target))
        if "executorch_call_delegate" in name:
            delegates += 1
        elif name != "getitem":
            ops.add(name)
    return delegates, tuple(sorted(ops))


def calls(config: PipelineConfig, stage: str) -> list[str]:
    """The bare API calls of ``stage`` ("edge" or "delegate") under ``config``, as copyable Python."""
    cc = compile_config_call(config)
    choice = partitioner_for(config)
    if choice is None:
        return ["from executorch.exir import EdgeCompileConfig, to_edge",
                f"edge = to_edge(aten_program, compile_config={cc})"] if stage == "edge" else []
    import_line, ctor = choice.import_line, choice.constructor
    if config.lowering == "to_backend":
        if stage == "edge":
            return ["from executorch.exir import EdgeCompileConfig, to_edge",
                    f"edge = to_edge(aten_program, compile_config={cc})"]
        return [import_line, f"edge = edge.to_backend({ctor})"]
    backend = backend_of(config)
    passes = f", transform_passes={backend.transform_passes_call}" if backend.transform_passes else ""
    bare = [import_line, "from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower",
            f"compile_config = {cc}",
            f"edge = to_edge_transform_and_lower(aten_program, partitioner=[{ctor}], compile_config=compile_config"
            f"{passes})"]
    if stage == "edge":
        return [f"# the edge and delegate stages together are this one call; this page shows the program after "
                f"its first step (to edge dialect, {ctor.split('(')[0]}'s ops kept whole):", *bare,
                "# quantviz's split: from executorch.exir.program._program import "
                "_gen_edge_manager_for_partitioners",
                f"# edge = _gen_edge_manager_for_partitioners({{'forward': [{ctor}]}}, {{'forward': aten_program}}, "
                f"{cc}, None)"]
    return ["# the rest of to_edge_transform_and_lower (see the edge stage): partition and lower, then check that "
            "every op kept whole was delegated", *bare,
            f"# quantviz's split: edge = edge.to_backend({{'forward': {ctor}}})"]
