"""One delegate per quantized op, for any partitioner: ``PerOpPartitioner(inner)`` lets ``inner`` decide what the
backend takes, then splits each of its partitions at the quantized tensors between ops, so every pattern (its input
dequantizes, its op and the ops fused into it, its output quantize) becomes a delegate of its own. A backend's
reference model or runtime then reports every op's output (the blame table reads it), as XNNPACK's
``per_op_mode`` does for XNNPACK::

    partitioner = PerOpPartitioner(TOSAPartitioner(compile_spec))
    edge = edge.to_backend({"forward": partitioner})

Grouping, in graph order: an op joins the group of an input it reads directly (a relu after its conv); an op whose
inputs all come through dequantizes starts a group; a quantize or ``getitem`` joins its input's group, a dequantize
and a tagged constant the group of their first user.
"""
from __future__ import annotations

from typing import Any

from executorch.exir.backend.partitioner import Partitioner, PartitionResult
from torch import fx


def _is(node: fx.Node, *names: str) -> bool:
    return node.op == "call_function" and any(n in str(node.target) for n in names)


def split_per_op(graph: fx.Graph) -> dict[str, str]:
    """Re-tag ``graph``'s delegated nodes one group per op; returns new tag -> the partition tag it came from."""
    group: dict[fx.Node, str] = {}
    origin: dict[str, str] = {}
    pending: list[fx.Node] = []  # dequantizes and constants: they take their first user's group
    count = 0
    for node in graph.nodes:
        tag = node.meta.get("delegation_tag")
        if tag is None:
            continue
        if node.op == "placeholder" or _is(node, "dequantize"):
            pending.append(node)
            continue
        direct = [i for i in node.all_input_nodes if i in group and i.meta.get("delegation_tag") == tag
                  and not _is(i, "dequantize") and (not _is(i, "quantize") or _is(node, "getitem"))]
        if direct:
            group[node] = group[direct[0]]
        else:
            group[node] = f"{tag}_op{count}"
            origin[group[node]] = tag
            count += 1
    for node in reversed(pending):  # users first: a weight's scale joins its dequantize, which joins its op
        users = [u for u in node.users if u in group]
        if users:
            group[node] = group[users[0]]
        else:  # a dequantize nobody delegated uses: leave it out
            del node.meta["delegation_tag"]
    for node, new in group.items():
        node.meta["delegation_tag"] = new
    return origin


class PerOpPartitioner(Partitioner):
    """``inner``'s partitions, split one delegate per quantized op (see the module docstring)."""

    def __init__(self, inner: Partitioner) -> None:
        super().__init__()
        self.inner = inner

    def partition(self, exported_program: Any) -> PartitionResult:
        result = self.inner.partition(exported_program)
        program = result.tagged_exported_program
        origin = split_per_op(program.graph)
        tags = {new: result.partition_tags[old] for new, old in origin.items() if old in result.partition_tags}
        return PartitionResult(tagged_exported_program=program, partition_tags=tags)

    def ops_to_not_decompose(self, ep: Any) -> Any:
        return self.inner.ops_to_not_decompose(ep)

    def __getattr__(self, name: str) -> Any:  # the inner partitioner's own settings (e.g. its compile spec)
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
