"""A pt2e quantizer wrapper that leaves named submodules in float.

``XNNPACKQuantizer.set_module_name(name, None)`` is refused (``quantization_config == None is not
supported yet``), so this wrapper lets the wrapped quantizer annotate everything and then removes
the annotations of nodes whose ``nn_module_stack`` passes through a skipped module::

    quantizer = SkipModulesQuantizer(XNNPACKQuantizer().set_global(config), skip=("pad",))
    observed = prepare_pt2e(ep.module(), quantizer)
"""
from __future__ import annotations

from torch import fx
from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY, Quantizer

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
        return model

    def validate(self, model: fx.GraphModule) -> None:
        self.inner.validate(model)
