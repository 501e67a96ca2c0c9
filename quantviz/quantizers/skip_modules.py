"""A pt2e quantizer wrapper that leaves named submodules in float.

``XNNPACKQuantizer.set_module_name(name, None)`` is refused (``quantization_config == None is not
supported yet``), so this wrapper lets the wrapped quantizer annotate everything and then removes
the annotations of nodes whose ``nn_module_stack`` passes through a skipped module. A node outside them whose
annotation shares its quantization parameters with a value that is no longer quantized (a
``SharedQuantizationSpec`` naming the skipped conv's output, e.g. the pad or activation around it) stays float
too: ``prepare_pt2e`` could not resolve that reference (``KeyError: conv2d_14``)::

    quantizer = SkipModulesQuantizer(XNNPACKQuantizer().set_global(config), skip=("pad",))
    observed = prepare_pt2e(ep.module(), quantizer)
"""
from __future__ import annotations

from torch import fx
from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY, Quantizer, SharedQuantizationSpec

from quantviz.graph.snapshot import normalise_module_path


def in_module(node: fx.Node, names: set[str]) -> bool:
    """True when ``node`` was traced inside one of the modules ``names`` (or their children)."""
    for path, _ in (node.meta.get("nn_module_stack") or {}).values():
        p = normalise_module_path(str(path))
        if any(p == n or p.startswith(n + ".") for n in names):
            return True
    return False


class SkipModulesQuantizer(Quantizer):
    def __init__(self, inner: Quantizer, skip: tuple[str, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.skip = set(skip)

    def transform_for_annotation(self, model: fx.GraphModule) -> fx.GraphModule:
        return self.inner.transform_for_annotation(model)

    def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
        model = self.inner.annotate(model)
        for node in model.graph.nodes:
            if Q_ANNOTATION_KEY in node.meta and in_module(node, self.skip):
                del node.meta[Q_ANNOTATION_KEY]
        drop_dangling_shared_specs(model)
        return model

    def validate(self, model: fx.GraphModule) -> None:
        self.inner.validate(model)


def _quantized(ref: object) -> bool:
    """True when a ``SharedQuantizationSpec``'s target is still quantized: a node's output (it has an output
    qspec) or an input edge ``(producer, user)`` (the user quantizes that input)."""
    if isinstance(ref, fx.Node):
        ann = ref.meta.get(Q_ANNOTATION_KEY)
        return ann is not None and ann.output_qspec is not None
    producer, user = ref  # type: ignore[misc]
    ann = user.meta.get(Q_ANNOTATION_KEY)
    return ann is not None and producer in ann.input_qspec_map


def drop_dangling_shared_specs(model: fx.GraphModule) -> list[str]:
    """Remove the annotation of every node that shares quantization parameters with a value no longer quantized,
    until none does; the names of the nodes left float."""
    dropped: list[str] = []
    changed = True
    while changed:
        changed = False
        for node in model.graph.nodes:
            ann = node.meta.get(Q_ANNOTATION_KEY)
            if ann is None:
                continue
            specs = [*ann.input_qspec_map.values(), ann.output_qspec]
            if any(isinstance(q, SharedQuantizationSpec) and not _quantized(q.edge_or_node) for q in specs):
                del node.meta[Q_ANNOTATION_KEY]
                dropped.append(node.name)
                changed = True
    return dropped
