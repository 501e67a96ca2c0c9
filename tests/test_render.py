"""Graph views read from the DOT text and the graph model, not from pixels. Tests of a real flow's stages are
marked e2e; the ones on synthetic graphs are not."""
import re

import pytest

from quantviz.graph.synthetic import synthetic_graph
from quantviz.render import ViewSpec, plan_view, to_dot
from quantviz.render.palette import KIND_STYLES
from quantviz.stage_views import stage_view


def node_attrs(dot: str, node_id: str) -> str:
    """The attribute text of node ``node_id`` in DOT output."""
    m = re.search(rf'^\s*"?{re.escape(node_id)}"? \[(.*)\]$', dot, re.MULTILINE)
    assert m, f"node {node_id} not drawn"
    return m.group(1)


def has_svg_id(text: str, node_id: str) -> bool:
    """True when DOT attributes ``text`` give the node the SVG id ``qv_<node_id>`` (quoted or not)."""
    return re.search(rf'\bid="?qv_{re.escape(node_id)}"?(?=[\s\]]|$)', text) is not None


def clusters(dot: str) -> dict[str, str]:
    """cluster name -> its label."""
    out = {}
    for m in re.finditer(r'subgraph "?(cluster_[^" {]+)"? \{\s*(?:graph )?\[?[^\n]*?label="([^"]*)"', dot):
        out[m.group(1)] = m.group(2)
    return out


def assert_kind_style(dot: str, graph, kind: str) -> None:
    style = KIND_STYLES[kind]
    nodes = [n for n in graph.nodes if n.kind == kind]
    assert nodes
    for n in nodes:
        attrs = node_attrs(dot, n.id)
        assert f"shape={style.shape}" in attrs and f'fillcolor="{style.fill}"' in attrs, attrs
        assert has_svg_id(attrs, n.id)


@pytest.mark.e2e  # runs the real flow
@pytest.mark.parametrize("options", [dict(), dict(flow="pt2e", partitioner="xnnpack")])
def test_convert_stage_styles_every_q_and_dq_and_clusters_each_pattern(flow, options):
    pipe = flow("sample:conv_add", until="convert", **options)
    g = pipe.results["convert"].graph
    dot = to_dot(g, stage_view(pipe, "convert"))
    assert_kind_style(dot, g, "quantize")
    assert_kind_style(dot, g, "dequantize")
    labels = sorted(v for k, v in clusters(dot).items() if k.startswith("cluster_p"))
    assert labels == ["dq → add → relu → q", "dq → conv2d → q", "dq → conv2d → q"]
    q = next(n for n in g.nodes if n.kind == "quantize")
    assert f"s={q.qparams.scale:.4g} zp={q.qparams.zero_point}" in node_attrs(dot, q.id)


@pytest.mark.e2e  # runs the real flow
def test_delegate_stage_draws_a_cluster_titled_with_backend_and_op_count(flow):
    pipe = flow("sample:conv_add", flow="pt2e", partitioner="xnnpack", until="delegate")
    g = pipe.results["delegate"].graph
    call = next(n for n in g.nodes if n.kind == "delegate")
    inner_ops = [n for n in g.subgraphs[call.subgraph].nodes if n.kind not in ("input", "parameter", "output")]
    dot = to_dot(g)
    assert clusters(dot)[f"cluster_delegate_{call.id}"] == f"XnnpackBackend · {len(inner_ops)} ops"
    assert_kind_style(dot, g, "delegate")
    expanded = to_dot(g, ViewSpec(expand_delegates=(call.id,)))
    for n in inner_ops:
        assert has_svg_id(expanded, n.id)


@pytest.mark.e2e  # runs the real flow
def test_fuse_stage_marks_fused_operators_and_links_them_to_their_pattern(flow):
    pipe = flow("sample:conv_add")  # fx, ExecuTorch fusion: dq-add-relu-q becomes add_relu
    g = pipe.results["fuse"].graph
    dot = to_dot(g, stage_view(pipe, "fuse"))
    fused = [n for n in g.nodes if n.kind == "quantized_op"]
    assert [n.target for n in fused] == ["quantized_decomposed.add_relu.default"]
    assert_kind_style(dot, g, "quantized_op")
    before = pipe.results["delegate"].graph
    add = next(p for p in before.patterns if p.op == "add")
    assert f"fused from dq → add → relu → q ({add.id})" in node_attrs(dot, fused[0].id)


def test_small_graphs_open_in_full_detail_and_large_ones_collapsed():
    small = synthetic_graph(200)
    assert plan_view(small).depth is None and plan_view(small).visible_count == len(small.nodes)
    big = synthetic_graph(10_000)
    plan = plan_view(big)
    assert plan.depth is not None and 1 <= plan.visible_count <= 300
    # every node is inside exactly one drawn box
    assert sorted(m for item in plan.items for m in item.members) == sorted(n.id for n in big.nodes)


def test_expanding_one_module_shows_its_children_and_keeps_the_rest_collapsed():
    big = synthetic_graph(3_000)
    plan = plan_view(big, ViewSpec(collapse_depth=2))
    target = next(i.group for i in plan.items if i.group)
    expanded = plan_view(big, ViewSpec(collapse_depth=2, expanded=(target,)))
    inside = {n.id for n in big.nodes if (n.module_path or "").startswith(target + ".")}
    children = {i.group for i in expanded.items if i.group and i.group.startswith(target + ".")}
    assert children == {target + ".blocks"}  # one level deeper: stages.0 -> stages.0.blocks
    assert inside <= {m for i in expanded.items if i.cluster == target for m in i.members}
    assert any(i.group and i.cluster is None for i in expanded.items)
    fully = plan_view(big, ViewSpec(collapse_depth=2, expanded=(target, target + ".blocks")))
    assert {i.group for i in fully.items if i.cluster == target + ".blocks"} == \
        {f"{target}.blocks.{b}" for b in range(16)}


def test_focus_shows_the_k_hop_neighbourhood():
    g = synthetic_graph(1_000)
    plan = plan_view(g, ViewSpec(focus="conv10", hops=1))
    assert {i.id for i in plan.items} == {"conv10", "dq10", "dqw10", "q10"}


def test_quant_filter_keeps_q_dq_and_pattern_nodes_and_bridges_edges():
    g = synthetic_graph(200)
    plan = plan_view(g, ViewSpec(quant_only=True, show_params=False))
    kinds = {g.node(i.id).kind for i in plan.items}
    assert "parameter" not in kinds and {"quantize", "dequantize"} <= kinds
    assert ("dq0", "conv0") in plan.edges


def test_search_highlights_matches_by_regex():
    g = synthetic_graph(200)
    plan = plan_view(g, ViewSpec(search=r"^add\d+$"))
    assert plan.matches and all(re.match(r"^add\d+$", m) for m in plan.matches)
    dot = to_dot(g, ViewSpec(search=r"^add\d+$"))
    assert "penwidth=3" in node_attrs(dot, plan.matches[0])


def test_overlay_colours_nodes_and_adds_a_legend():
    g = synthetic_graph(100)
    dot = to_dot(g, ViewSpec(overlay=(("conv0", 10.0), ("conv1", 40.0)), overlay_label="SQNR dB"))
    assert "SQNR dB 10.0" in node_attrs(dot, "conv0") and "legend_overlay_lo" in dot
    assert node_attrs(dot, "conv0") != node_attrs(dot, "conv1")
