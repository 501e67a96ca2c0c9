"""A small partitioner of our own: hands only quantized conv -> add groups to XNNPACK.

It is the seed flow's ``QuantizedConvAddOpPartitioner`` written against today's API, so a user
can read how a partitioning decision is made: an operator-support check (:func:`conv_add_groups`)
picks the nodes, each group gets a ``delegation_tag`` (its q/dq nodes also XNNPACK's "implicit q/dq"
mark, which tells XNNPACK to fold them into quantized tensors), and ``to_backend`` lowers every tag::

    edge = edge.to_backend(DemoConvAddPartitioner())
"""
from __future__ import annotations

from torch import fx
from torch.export import ExportedProgram

from executorch.backends.xnnpack.utils.quant_utils import tag_as_implicit_q_dq
from executorch.exir.backend.partitioner import DelegationSpec, Partitioner, PartitionResult
from executorch.exir.backend.utils import tag_constant_data

BACKEND_ID = "XnnpackBackend"


def _is(node: object, *names: str) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and any(n in str(node.target) for n in names)


def _quantized_conv(dq: fx.Node) -> list[fx.Node]:
    """For ``dq`` fed by ``q <- conv``, the nodes of the quantized conv: its input dqs, conv, q."""
    q = dq.args[0]
    if not _is(q, "quantize_per") or len(q.users) != 1:
        return []  # a conv output used elsewhere too would make a path out of the group and back: a cycle
    conv = q.args[0]
    if not _is(conv, "convolution", "conv2d") or len(conv.users) != 1:
        return []
    # the conv's dequantized input and weight (weights are int8 constants: the edge stage folds them)
    return [conv, q, *(a for a in conv.all_input_nodes if _is(a, "dequantize_per"))]


def conv_add_groups(graph: fx.Graph, reasons: dict[str, list[str]] | None = None) -> list[list[fx.Node]]:
    """Groups ``dq -> conv -> q -> dq -> add [-> relu] -> q`` with at least one conv feeding the add.

    Every add that is not taken gets its reason in ``reasons`` (node name -> reasons).
    """
    reasons = {} if reasons is None else reasons

    def reject(node: fx.Node, why: str) -> None:
        reasons.setdefault(node.name, []).append(f"demo partitioner: {why}")

    groups = []
    for add in graph.nodes:
        if not _is(add, "aten.add.Tensor", "aten_add_Tensor"):
            continue
        dqs = [a for a in add.args[:2] if _is(a, "dequantize_per")]
        if len(dqs) != 2:
            reject(add, "both inputs of add must be dequantized")
            continue
        if any(len(d.users) != 1 for d in dqs):
            reject(add, "a dequantize feeding add has other users (run DuplicateDequantNodePass)")
            continue
        convs = [_quantized_conv(d) for d in dqs]
        if not any(convs):
            reject(add, "no quantized conv (used only by this add) feeds it")
            continue
        tail, out = add, None
        user = next(iter(add.users)) if len(add.users) == 1 else None
        if _is(user, "relu") and len(user.users) == 1:
            tail, user = user, next(iter(user.users))
        if _is(user, "quantize_per"):
            out = user
        if out is None:
            reject(add, "its result is not quantized")
            continue
        group = [*dqs, add, out] + ([tail] if tail is not add else [])
        for c in convs:
            group += c
        groups.append(group)
    taken = {n for g in groups for n in g}
    for n in graph.nodes:
        if n.op == "call_function" and n not in taken and n.name not in reasons and not _is(
                n, "quantize_per", "dequantize_per", "getitem"):
            reject(n, "it takes only quantized conv -> add groups")
    return groups


class DemoConvAddPartitioner(Partitioner):
    """Delegates quantized conv -> add [-> relu] groups to XNNPACK; everything else stays in the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.delegation_spec = DelegationSpec(BACKEND_ID, [])
        self.reasons: dict[str, list[str]] = {}  # node name -> why it was not taken

    def partition(self, exported_program: ExportedProgram) -> PartitionResult:
        tags = {}
        self.reasons = {}
        for i, group in enumerate(conv_add_groups(exported_program.graph_module.graph, self.reasons)):
            tag = f"conv_add_{i}"
            for node in group:
                node.meta["delegation_tag"] = tag
                if _is(node, "quantize_per", "dequantize_per"):
                    # XNNPACK folds these into its quantized tensors instead of running them as ops
                    tag_as_implicit_q_dq(node)
            tags[tag] = self.delegation_spec
        tag_constant_data(exported_program)
        return PartitionResult(tagged_exported_program=exported_program, partition_tags=tags)
