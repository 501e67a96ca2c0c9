"""The graph data model (:class:`GraphView`) and how to build it from any stage's artifact."""
from quantviz.graph.model import KINDS, GraphView, NodeView, PatternInstance, QParams
from quantviz.graph.snapshot import snapshot

__all__ = ["KINDS", "GraphView", "NodeView", "PatternInstance", "QParams", "snapshot"]
