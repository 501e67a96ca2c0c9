"""The overview of a large graph: its top-level modules as boxes with badges, expanded in place, the path to a
node opened; read from the plan (pure data) and the DOT text. The graph is a synthetic ViT of ~1,100 nodes built
the way pt2e's convert stage draws one (every op between dequantize and quantize, weights dequantized)."""
from __future__ import annotations

import re

from quantviz.graph.diff import GraphDiff
from quantviz.graph.model import GraphView, NodeView, QParams
from quantviz.graph.patterns import find_patterns
from quantviz.graph.synthetic import synthetic_graph
from quantviz.render import ViewSpec, plan_view, to_dot
from quantviz.render.view import OVERVIEW_BOXES, box_key, collapse, effective_module_paths, expand_path_to
from quantviz.stage_views import linked_nodes

_Q = QParams(scheme="per_tensor", dtype="torch.int8", scale=0.05, zero_point=0, quant_min=-128, quant_max=127)
DQ, QT = "quantized_decomposed.dequantize_per_tensor.default", "quantized_decomposed.quantize_per_tensor.default"
BLOCK_OPS = [  # (module under blocks.N, op, weighted)
    ("norm1", "aten.layer_norm.default", True), ("attn.qkv", "aten.linear.default", True),
    ("attn", "aten.view.default", False), ("attn", "aten.permute.default", False),
    ("attn", "aten.mul.Tensor", False), ("attn", "aten.matmul.default", False),
    ("attn", "aten.softmax.int", False), ("attn", "aten.matmul.default", False),
    ("attn", "aten.transpose.int", False), ("attn", "aten.view.default", False),
    ("attn.proj", "aten.linear.default", True), ("", "aten.add.Tensor", False),
    ("norm2", "aten.layer_norm.default", True), ("mlp.fc1", "aten.linear.default", True),
    ("mlp.act", "aten.gelu.default", False), ("mlp.fc2", "aten.linear.default", True), ("", "aten.add.Tensor", False),
]


class _Builder:
    """Appends ops the way a converted graph has them: dq of each input, the op, q of its output."""

    def __init__(self) -> None:
        self.nodes = [NodeView("x", "x", "placeholder", "x", "input", shape=[1, 3, 32, 32])]
        self.nodes.append(NodeView("q_x", "q_x", "call_function", QT, "quantize", inputs=["x"], qparams=_Q))

    def add(self, path: str, target: str, inputs: list[str], weighted: bool = False) -> str:
        i = len(self.nodes)
        ins = []
        for k, src in enumerate(inputs):
            ins.append(self._node(f"dq{i}_{k}", "dequantize", DQ, [src], None))
        if weighted:
            w = self._node(f"w{i}", "parameter", f"w{i}", [], None, op="placeholder")
            ins.append(self._node(f"dqw{i}", "dequantize", DQ, [w], None))
        name = target.split(".")[1] + str(i)
        op = self._node(name, "float_op", target, ins, path, qparams=False)
        return self._node(f"q{i}", "quantize", QT, [op], None)

    def _node(self, name: str, kind: str, target: str, inputs: list[str], path: str | None,
              op: str = "call_function", qparams: bool = True) -> str:
        self.nodes.append(NodeView(name, name, op, target, kind, inputs=inputs, module_path=path or None,
                                   qparams=_Q if qparams and kind in ("quantize", "dequantize") else None,
                                   module_type="Linear" if target.endswith("linear.default") else None))
        return name


def vit_graph(blocks: int = 18) -> GraphView:
    """A converted ViT: patch_embed.proj, cls token and position embedding, ``blocks`` blocks, norm, head."""
    b = _Builder()
    x = b.add("patch_embed.proj", "aten.convolution.default", ["q_x"], weighted=True)
    x = b.add("", "aten.cat.default", [x])
    x = b.add("", "aten.add.Tensor", [x])
    for n in range(blocks):
        skip = x
        for sub, target, weighted in BLOCK_OPS:
            path = f"blocks.{n}" + (f".{sub}" if sub else "")
            x = b.add(path, target, [x, skip] if target == "aten.add.Tensor" else [x], weighted)
            if target == "aten.add.Tensor":
                skip = x
    x = b.add("norm", "aten.layer_norm.default", [x], weighted=True)
    x = b.add("head", "aten.linear.default", [x], weighted=True)
    b.nodes.append(NodeView("output", "output", "output", "output", "output", inputs=[x]))
    return GraphView("convert", b.nodes, patterns=find_patterns(b.nodes))


GRAPH = vit_graph()


def groups(plan) -> dict[str, list[str]]:
    return {i.group: i.members for i in plan.items if i.group}


def test_the_synthetic_vit_is_large():
    assert len(GRAPH.nodes) >= 1_000 and len(GRAPH.patterns) >= 18 * len(BLOCK_OPS)


def test_a_large_graph_opens_at_its_top_level_modules_with_every_node_counted_once():
    plan = plan_view(GRAPH)
    assert plan.depth == 2  # depth 1 puts 95 % of the graph in one "blocks" box
    assert OVERVIEW_BOXES[0] <= plan.visible_count <= OVERVIEW_BOXES[1]
    assert set(groups(plan)) == {"patch_embed.proj", "norm", "head", *(f"blocks.{n}" for n in range(18))}
    assert sum(len(i.members) for i in plan.items) == len(GRAPH.nodes)
    assert sorted(m for i in plan.items for m in i.members) == sorted(n.id for n in GRAPH.nodes)
    assert all(i.stats.nodes == len(i.members) for i in plan.items if i.group)


def test_overview_boxes_carry_their_badges():
    paths = effective_module_paths(GRAPH)
    block3 = [n.id for n in GRAPH.nodes if paths[n.id] == "blocks.3" or paths[n.id].startswith("blocks.3.")]
    overlay = ((_first_op("blocks.3.norm1"), 31.0),
               (_first_op("blocks.3.mlp.fc2"), 17.5), (_first_op("blocks.4.norm1"), 9.0))
    plan = plan_view(GRAPH, ViewSpec(overlay=overlay, added=tuple(block3[:3]), removed=()))
    box = next(i for i in plan.items if i.group == "blocks.3")
    assert box.stats.nodes == len(block3)
    assert box.stats.patterns == len(BLOCK_OPS)  # every op of the block is a dq → op → q pattern
    assert box.stats.quant_nodes == sum(1 for m in block3 if GRAPH.node(m).kind in ("quantize", "dequantize"))
    assert box.stats.worst == (_first_op("blocks.3.mlp.fc2"), 17.5) and box.stats.added == 3
    dot = to_dot(GRAPH, ViewSpec(overlay=overlay, overlay_label="SQNR dB", added=tuple(block3[:3])), plan)
    label = _attrs(dot, "module/blocks.3")
    assert f"blocks.3\\n{len(block3)} nodes\\n{len(BLOCK_OPS)} q/dq patterns" in label
    assert f"worst SQNR dB 17.5 ({_first_op('blocks.3.mlp.fc2')})" in label and "+3 added" in label


def test_delegated_share_and_fused_ops_are_counted_per_box():
    g = vit_graph(blocks=2)
    fused = next(n for n in g.nodes if n.module_path == "blocks.1.mlp.fc1")
    fused.kind = "quantized_op"
    call = NodeView("call", "call", "call_function", "executorch_call_delegate", "delegate", module_path="blocks.0",
                    subgraph="lowered_0", inputs=["q_x"])
    sub = GraphView("lowered_0", [NodeView(f"s{k}", f"s{k}", "call_function", "aten.linear.default", "float_op")
                                  for k in range(6)])
    g = GraphView("delegate", [*g.nodes[:-1], call, g.nodes[-1]], g.patterns, {"lowered_0": sub})
    plan = plan_view(g, ViewSpec(collapse_depth=2))
    stats = {i.group: i.stats for i in plan.items if i.group}
    assert stats["blocks.1"].fused == 1
    assert stats["blocks.0"].delegated_ops == 6
    assert stats["blocks.0"].delegated_share == 6 / (6 + len(BLOCK_OPS))
    assert "1 fused" in _attrs(to_dot(g, ViewSpec(collapse_depth=2), plan), "module/blocks.1")


def test_expanding_a_box_replaces_it_by_its_children_in_place_with_edges_rewired():
    before = plan_view(GRAPH)
    plan = plan_view(GRAPH, ViewSpec(expanded=("blocks.3",)))
    assert plan.depth == before.depth  # the rest of the overview keeps its boxes
    after = groups(plan)
    assert "blocks.3" not in after
    children = {g for g in after if g.startswith("blocks.3.")}
    assert children == {"blocks.3.norm1", "blocks.3.attn", "blocks.3.norm2", "blocks.3.mlp"}
    residual_adds = {i.id for i in plan.items if i.group is None and i.cluster == "blocks.3"}
    assert residual_adds and all(GRAPH.node(n).module_path in ("blocks.3", None) for n in residual_adds)
    inside = [m for i in plan.items if i.cluster == "blocks.3" for m in i.members]
    assert sorted(inside) == sorted(groups(before)["blocks.3"])
    assert {g: m for g, m in after.items() if not g.startswith("blocks.3")} == \
        {g: m for g, m in groups(before).items() if g != "blocks.3"}
    assert plan.clusters == {"blocks.3": None}
    boxes = {i.id for i in plan.items}
    assert all(s in boxes and d in boxes for s, d in plan.edges)
    assert ("module/blocks.2", "module/blocks.3.norm1") in plan.edges
    assert any(s == "module/blocks.3.mlp" or s in residual_adds for s, d in plan.edges if d == "module/blocks.4")
    dot = to_dot(GRAPH, ViewSpec(expanded=("blocks.3",)), plan)
    assert re.search(r'subgraph "?cluster_open_blocks\.3"? \{', dot) and 'id="qv_open/blocks.3"' in dot
    assert '"module/blocks.3"' not in dot


def test_nested_expansion_and_collapse():
    plan = plan_view(GRAPH, ViewSpec(expanded=("blocks.3", "blocks.3.attn")))
    assert plan.clusters == {"blocks.3": None, "blocks.3.attn": "blocks.3"}
    assert {"blocks.3.attn.qkv", "blocks.3.attn.proj"} <= set(groups(plan)) or \
        {_first_op("blocks.3.attn.qkv"), _first_op("blocks.3.attn.proj")} <= {i.id for i in plan.items}
    assert collapse(("blocks.3", "blocks.3.attn", "head"), "blocks.3") == ("head",)
    assert box_key("blocks.3.attn.qkv", 2, {"blocks.3"}) == ("blocks.3.attn", "blocks.3")
    assert box_key("blocks.3", 2, {"blocks.3"}) == (None, "blocks.3")


def test_expand_path_to_a_node_draws_it_as_itself_inside_its_open_modules():
    target = _first_op("blocks.5.attn.qkv")
    expanded = expand_path_to(GRAPH, target)
    assert expanded == ("blocks", "blocks.5", "blocks.5.attn", "blocks.5.attn.qkv")
    plan = plan_view(GRAPH, ViewSpec(expanded=expanded, search=target + "$"))
    assert plan.box_of(target) == target and target in plan.highlighted
    assert plan.clusters == {"blocks.5": None, "blocks.5.attn": "blocks.5", "blocks.5.attn.qkv": "blocks.5.attn"}
    assert plan.box_of(_first_op("blocks.6.attn.qkv")) == "module/blocks.6"  # the rest stays collapsed
    collapsed = plan_view(GRAPH, ViewSpec(search=target + "$"))
    assert collapsed.highlighted == {"module/blocks.5"}  # a match inside a box highlights the box


def test_small_graphs_open_in_full_detail_and_cnns_at_a_readable_overview():
    assert plan_view(vit_graph(blocks=1)).depth is None
    for n in (1_000, 10_000):
        plan = plan_view(synthetic_graph(n))
        assert plan.depth == 2 and plan.visible_count <= OVERVIEW_BOXES[1]


def test_dot_uses_fixed_font_sizes_and_no_size_limit():
    dot = to_dot(GRAPH)
    assert not re.search(r"(?<![a-z])size=", dot)  # graphviz never scales the drawing down
    assert re.search(r'"module/blocks\.0" \[.*fontsize=11', dot)


def test_linked_nodes_follow_provenance_both_ways():
    before = GraphView("convert", [], patterns=[])
    d = GraphDiff("convert", "fuse", kept=[("a", "a2"), ("b", "b2")], delegated={"c": "call"},
                  fused={"qop": "p1"})
    from quantviz.graph.model import PatternInstance

    before.patterns = [PatternInstance("p1", "add", ["add"], "add1", ["dq1"], "q1", ["dq1", "add1", "q1"])]
    assert linked_nodes(d, "a", "convert", before) == ["a2"]
    assert linked_nodes(d, "c", "convert", before) == ["call"]
    assert linked_nodes(d, "add1", "convert", before) == ["qop"]
    assert linked_nodes(d, "call", "fuse", before) == ["c"]
    assert linked_nodes(d, "qop", "fuse", before) == ["dq1", "add1", "q1"]


def _first_op(path: str) -> str:
    return next(n.id for n in GRAPH.nodes if n.module_path == path and n.kind == "float_op")


def _attrs(dot: str, node_id: str) -> str:
    m = re.search(rf'^\s*"?{re.escape(node_id)}"? \[(.*)\]$', dot, re.MULTILINE)
    assert m, f"{node_id} not drawn"
    return m.group(1)
