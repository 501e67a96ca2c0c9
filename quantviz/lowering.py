"""The two lowerings a partitioner can be applied with, each split at the point quantviz shows as a stage.

``to_edge_transform_and_lower`` (what XNNPACK users call) is ``_gen_edge_manager_for_partitioners`` (to the edge
dialect, keeping the ops the partitioner asks for whole), then ``to_backend``, then a check that every op kept
whole was delegated. quantviz's edge stage runs the first step and its delegate stage the other two, so each
page shows the program between them; together they are that one call::

    edge = edge_program(aten_program, PipelineConfig(partitioner="xnnpack"))      # edge stage
    lowered = delegate(edge, make_partitioner("xnnpack")[0], "transform_and_lower")   # delegate stage

``to_backend`` (the seed's path) is ``to_edge`` then ``edge.to_backend(partitioner)``.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

from quantviz.config import PipelineConfig

# quantized_decomposed ops are not core ATen, so the IR check is off, as in ExecuTorch's own quantization tests
COMPILE_CONFIG_CALL = "EdgeCompileConfig(_check_ir_validity=False)"


def compile_config() -> Any:
    from executorch.exir import EdgeCompileConfig

    return EdgeCompileConfig(_check_ir_validity=False)


def make_partitioner(name: str, granularity: str = "graph") -> tuple[Any, str, str]:
    """(partitioner, its import line, its constructor call) for a ``PipelineConfig.partitioner`` name.

    ``granularity="op"`` (``PipelineConfig.delegate_granularity``) makes every op the partitioner takes its own
    delegate (XNNPACK's ``per_op_mode``), so the runtime reports each delegated op's output as a delegate call
    output. The demo partitioner's groups are one conv -> add each already: it ignores the granularity::

        partitioner, import_line, ctor = make_partitioner("xnnpack", "op")
        ctor   # 'XnnpackPartitioner(per_op_mode=True)'
    """
    if name == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        per_op = granularity == "op"
        return (XnnpackPartitioner(per_op_mode=per_op),
                "from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner",
                "XnnpackPartitioner(per_op_mode=True)" if per_op else "XnnpackPartitioner()")
    if name == "demo":
        from quantviz.partitioners.demo import DemoConvAddPartitioner

        return DemoConvAddPartitioner(), "from quantviz.partitioners.demo import DemoConvAddPartitioner", \
            "DemoConvAddPartitioner()"
    raise ValueError(f"no partitioner named {name!r}")


def keeps_ops_whole(config: PipelineConfig) -> bool:
    """True when the edge program is made for a partitioner (to_edge_transform_and_lower's first step)."""
    return config.partitioner != "none" and config.lowering == "transform_and_lower"


def edge_program(aten_program: Any, config: PipelineConfig) -> Any:
    """The edge-dialect program before partitioning, as ``config``'s lowering makes it."""
    if keeps_ops_whole(config):
        from executorch.exir.program._program import _gen_edge_manager_for_partitioners

        partitioner = make_partitioner(config.partitioner, config.delegate_granularity)[0]
        return _gen_edge_manager_for_partitioners({"forward": [partitioner]}, {"forward": aten_program},
                                                  compile_config(), None)
    from executorch.exir import to_edge

    return to_edge(aten_program, compile_config=compile_config())


def delegate(edge: Any, partitioner: Any, lowering: str) -> Any:
    """``edge`` with ``partitioner``'s groups lowered to delegates; under transform_and_lower, also the check
    ``to_edge_transform_and_lower`` makes afterwards (an op kept whole but not delegated is an error)."""
    if lowering == "to_backend":
        return edge.to_backend(partitioner)
    with _no_workflow_warning():  # XNNPACK warns of "to_edge() + to_backend()" unless its caller is named
        lowered = edge.to_backend({"forward": partitioner})  # to_edge_transform_and_lower; this is that call's step
    _check_kept_ops_delegated(lowered, partitioner)
    return lowered


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


def _check_kept_ops_delegated(lowered: Any, partitioner: Any) -> None:
    from executorch.exir.program._program import (
        _can_skip_using_EDGE_DO_NOT_DECOMP,
        _remove_invalid_ops_for_not_decompose,
        _sanity_check_graph_for_non_decomp_ops,
    )

    program = lowered.exported_program()
    ops, check_op_support = partitioner.ops_to_not_decompose(program)
    if not _can_skip_using_EDGE_DO_NOT_DECOMP(partitioner, program):
        ops = _remove_invalid_ops_for_not_decompose(ops)
    _sanity_check_graph_for_non_decomp_ops("forward", program, set(ops), check_op_support,
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
    if config.partitioner == "none":
        return ["from executorch.exir import EdgeCompileConfig, to_edge",
                f"edge = to_edge(aten_program, compile_config={COMPILE_CONFIG_CALL})"] if stage == "edge" else []
    _, import_line, ctor = make_partitioner(config.partitioner, config.delegate_granularity)
    if config.lowering == "to_backend":
        if stage == "edge":
            return ["from executorch.exir import EdgeCompileConfig, to_edge",
                    f"edge = to_edge(aten_program, compile_config={COMPILE_CONFIG_CALL})"]
        return [import_line, f"edge = edge.to_backend({ctor})"]
    bare = [import_line, "from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower",
            f"edge = to_edge_transform_and_lower(aten_program, partitioner=[{ctor}], "
            f"compile_config={COMPILE_CONFIG_CALL})"]
    if stage == "edge":
        return [f"# the edge and delegate stages together are this one call; this page shows the program after "
                f"its first step (to edge dialect, {ctor.removesuffix('()')}'s ops kept whole):", *bare,
                "# quantviz's split: from executorch.exir.program._program import "
                "_gen_edge_manager_for_partitioners",
                f"# edge = _gen_edge_manager_for_partitioners({{'forward': [{ctor}]}}, {{'forward': aten_program}}, "
                f"{COMPILE_CONFIG_CALL}, None)"]
    return ["# the rest of to_edge_transform_and_lower (see the edge stage): partition and lower, then check that "
            "every op kept whole was delegated", *bare,
            f"# quantviz's split: edge = edge.to_backend({{'forward': {ctor}}})"]
