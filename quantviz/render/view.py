"""Decide what a view shows: an overview by module, modules expanded in place, focus, filter, search.

Pure data in, pure data out; :func:`quantviz.render.to_dot` draws the plan::

    plan = plan_view(graph)                                  # a large graph opens at its top-level modules
    [(i.group, i.stats.nodes) for i in plan.items if i.group]
    plan = plan_view(graph, ViewSpec(expanded=("blocks.3",)))  # blocks.3's children replace its box
    plan = plan_view(graph, ViewSpec(expanded=expand_path_to(graph, "conv10")))  # every ancestor of conv10

A graph of at most ``ViewSpec.max_nodes`` visible nodes is drawn in full detail. A larger one is collapsed at
its *overview depth*: the shallowest module depth giving between ``OVERVIEW_BOXES`` boxes with no box holding
more than half the nodes (a transformer: embeddings, each block, head). ``ViewSpec.expanded`` names modules
drawn open: an expanded module's box is replaced by its children's boxes (one level deeper; a node whose
whole module path is expanded is drawn as itself) inside a cluster titled with the module path.
"""
from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field

from quantviz.graph.model import GraphView

QUANT_KINDS = {"quantize", "dequantize", "choose_qparams", "observer", "quantized_op", "delegate", "input", "output"}
DEFAULT_MAX_NODES = 300
OVERVIEW_BOXES = (6, 40)  # the overview depth gives between this many boxes (inclusive)
OPERATOR_KINDS = ("float_op", "quantized_op", "delegate", "other")


@dataclass(frozen=True)
class ViewSpec:
    """How to look at a graph. The defaults give a readable first view of any graph."""

    collapse_depth: int | None = None  # None: full detail up to max_nodes, the overview depth above it
    expanded: tuple[str, ...] = ()  # module paths drawn open (children replace the box), any number of them
    focus: str | None = None  # node id: show its neighbourhood only
    hops: int = 2  # how far the focus neighbourhood reaches
    quant_only: bool = False  # only quantization-relevant nodes (edges pass through hidden ones)
    search: str | None = None  # regex on names and targets: matches are highlighted
    highlight: tuple[str, ...] = ()  # node ids drawn with a highlight outline (their box when collapsed)
    overlay: tuple[tuple[str, float], ...] = ()  # (node id, value): fill by value, e.g. SQNR dB
    overlay_label: str = ""  # what the overlay value is, e.g. "SQNR dB"
    overlay_high_is_bad: bool = False  # True for times (ms): the highest value is drawn red and is a box's worst
    overlay_digits: int = 1  # decimals of the overlay values in labels (3 for ms)
    notes: tuple[tuple[str, str], ...] = ()  # (node id, text) shown in the label and tooltip
    added: tuple[str, ...] = ()  # diff marks: nodes this stage added (green outline; a box counts them)
    removed: tuple[str, ...] = ()  # nodes a later stage removed (greyed and dashed; a box counts them)
    show_patterns: bool = True  # one cluster per reference quantized pattern
    show_params: bool = True  # weights and constants
    expand_delegates: tuple[str, ...] = ()  # delegate call ids drawn with their subgraph's ops
    max_nodes: int = DEFAULT_MAX_NODES  # above this many visible nodes the view opens collapsed


@dataclass
class BoxStats:
    """What a collapsed module box holds: its badges."""

    nodes: int  # graph nodes inside
    patterns: int = 0  # reference q/dq patterns anchored inside
    quant_nodes: int = 0  # quantize + dequantize nodes inside
    fused: int = 0  # quantized (fused) operators inside
    delegated_ops: int = 0  # operators inside the delegate calls in this box
    other_ops: int = 0  # operators left outside delegates
    worst: tuple[str, float] | None = None  # (node id, value): the lowest overlay value inside, e.g. worst SQNR
    added: int = 0  # diff: nodes inside this stage added
    removed: int = 0  # diff: nodes inside a later stage removed
    module_type: str | None = None  # the module's class, when a node names it

    @property
    def delegated_share(self) -> float:
        """Share of the box's operators that run in a delegate (0 without delegates)."""
        total = self.delegated_ops + self.other_ops
        return self.delegated_ops / total if total else 0.0


@dataclass
class Item:
    """One drawn box: a node, or a collapsed module group."""

    id: str  # node id, or "module/<path>" for a group
    members: list[str]  # node ids inside (one for a node)
    group: str | None = None  # module path for a collapsed group
    cluster: str | None = None  # the expanded module this box is drawn inside (None: top level)
    stats: BoxStats | None = None  # badges of a group


@dataclass
class ViewPlan:
    """The boxes and edges of one view, and what is highlighted."""

    items: list[Item]  # in graph order
    edges: list[tuple[str, str]]  # (box id, box id), paths through hidden nodes bridged
    depth: int | None  # base collapse depth (None: full detail)
    highlighted: set[str] = field(default_factory=set)  # box ids
    matches: list[str] = field(default_factory=list)  # node ids matching the search
    total_nodes: int = 0  # nodes of the graph
    clusters: dict[str, str | None] = field(default_factory=dict)  # expanded module drawn open -> its parent's
    rep: dict[str, str] = field(default_factory=dict)  # visible node id -> the id of the box drawing it

    @property
    def visible_count(self) -> int:
        return len(self.items)

    def box_of(self, node_id: str) -> str | None:
        """The id of the box a node is drawn in (itself, or its module's box), None when hidden.

        >>> plan.box_of("conv10")   # 'module/stages.0' in an overview
        """
        return self.rep.get(node_id)


def effective_module_paths(graph: GraphView) -> dict[str, str]:
    """Module path per node; q/dq/params without one take their pattern's, their user's or their input's."""
    path = {n.id: n.module_path or "" for n in graph.nodes}
    for p in graph.patterns:
        anchor_path = path.get(p.anchor, "")
        for m in p.members:
            if not path.get(m):
                path[m] = anchor_path
    users = graph.users()
    for n in graph.nodes:  # forward: a q takes its input's module
        if not path[n.id] and n.kind not in ("input", "output") and n.inputs:
            path[n.id] = path.get(n.inputs[0], "")
    for n in reversed(graph.nodes):  # backward: a parameter or dq takes its user's module
        if not path[n.id] and n.kind not in ("input", "output") and users[n.id]:
            path[n.id] = path.get(users[n.id][0], "")
    return path


def _depth_key(path: str, depth: int) -> str:
    return ".".join(path.split(".")[:depth]) if path else ""


def _max_depth(paths: dict[str, str]) -> int:
    return max((p.count(".") + 1 for p in paths.values() if p), default=0)


def box_sizes(node_ids: list[str], paths: dict[str, str], depth: int) -> Counter:
    """Box -> node count when every module is collapsed at ``depth`` (nodes without a module are boxes of one).

    >>> box_sizes(["a", "b"], {"a": "blocks.0.attn", "b": "blocks.1"}, 2)   # Counter({'blocks.0': 1, 'blocks.1': 1})
    """
    return Counter(_depth_key(paths.get(i, ""), depth) or f"node/{i}" for i in node_ids)


def _overview_ok(sizes: Counter, total: int, lo: int, hi: int, dominance: bool) -> bool:
    return lo <= len(sizes) <= hi and (not dominance or max(sizes.values()) * 2 <= total)


def choose_depth(graph: GraphView, paths: dict[str, str], spec: ViewSpec) -> int | None:
    """The overview depth: the shallowest module depth with ``OVERVIEW_BOXES`` boxes and no box holding more
    than half the nodes; failing that the shallowest in range, the shallowest under ``spec.max_nodes`` boxes with
    no dominant box, the deepest at most the range's top, then the deepest under ``spec.max_nodes``. None (full detail) when the graph has at most ``spec.max_nodes`` nodes.

    >>> choose_depth(graph, effective_module_paths(graph), ViewSpec())   # 2 for blocks.N in a ViT
    """
    if len(graph.nodes) <= spec.max_nodes:
        return None
    ids = [n.id for n in graph.nodes]
    sizes = {d: box_sizes(ids, paths, d) for d in range(1, max(1, _max_depth(paths)) + 1)}
    lo, hi = OVERVIEW_BOXES
    for dominance in (True, False):
        for d, s in sizes.items():
            if _overview_ok(s, len(ids), lo, hi, dominance):
                return d
    for d, s in sizes.items():  # more boxes than the range, but none holding most of the graph
        if _overview_ok(s, len(ids), 1, spec.max_nodes, True):
            return d
    for limit in (hi, spec.max_nodes):
        fitting = [d for d, s in sizes.items() if len(s) <= limit]
        if fitting:
            return max(fitting)
    return 1


def box_key(path: str, depth: int, expanded: frozenset[str] | set[str]) -> tuple[str | None, str | None]:
    """(the module box a node of module ``path`` is drawn in, the expanded module it sits in) at base ``depth``.

    The box is the path's prefix at ``depth``, one level deeper for each expanded prefix; None when the node's
    own module is expanded (it is drawn as itself)::

        box_key("blocks.3.attn.qkv", 2, {"blocks.3"})   # ('blocks.3.attn', 'blocks.3')
    """
    if not path:
        return None, None
    parts = path.split(".")
    parent = None
    for level in range(min(depth, len(parts)), len(parts) + 1):
        key = ".".join(parts[:level])
        if key not in expanded:
            return key, parent
        parent = key
    return None, parent


def expand_path_to(graph: GraphView, node_id: str, expanded: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``expanded`` plus every module enclosing ``node_id``, so the node is drawn as itself.

    >>> expand_path_to(graph, "conv10")   # ('stages', 'stages.0', 'stages.0.blocks', 'stages.0.blocks.3', ...)
    """
    path = effective_module_paths(graph).get(node_id, "")
    parts = path.split(".") if path else []
    prefixes = [".".join(parts[:k]) for k in range(1, len(parts) + 1)]
    return tuple(dict.fromkeys([*expanded, *prefixes]))


def collapse(expanded: tuple[str, ...], module: str) -> tuple[str, ...]:
    """``expanded`` without ``module`` and every module inside it (a breadcrumb's or a second click's collapse).

    >>> collapse(("blocks", "blocks.3", "blocks.3.attn", "head"), "blocks.3")   # ('blocks', 'head')
    """
    return tuple(e for e in expanded if e != module and not e.startswith(module + "."))


def _neighbourhood(graph: GraphView, focus: str, hops: int) -> set[str]:
    users = graph.users()
    seen, queue = {focus}, deque([(focus, 0)])
    while queue:
        nid, d = queue.popleft()
        if d == hops:
            continue
        for other in graph.node(nid).inputs + users[nid]:
            if other not in seen:
                seen.add(other)
                queue.append((other, d + 1))
    return seen


def _visible(graph: GraphView, spec: ViewSpec) -> set[str]:
    ids = {n.id for n in graph.nodes}
    if spec.focus and spec.focus in ids:
        ids = _neighbourhood(graph, spec.focus, spec.hops)
    if spec.quant_only:
        anchors = {m for p in graph.patterns for m in p.members}
        ids = {i for i in ids if graph.node(i).kind in QUANT_KINDS or i in anchors}
    if not spec.show_params:
        ids = {i for i in ids if graph.node(i).kind != "parameter"}
    return ids


def _search(graph: GraphView, pattern: str | None) -> list[str]:
    if not pattern:
        return []
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error:
        rx = re.compile(re.escape(pattern), re.IGNORECASE)
    return [n.id for n in graph.nodes if rx.search(n.name) or rx.search(n.target)
            or (n.module_path and rx.search(n.module_path))]


def _base_depth(graph: GraphView, visible: set[str], spec: ViewSpec) -> tuple[int | None, dict[str, str]]:
    """The collapse depth (None: full detail) and the module path of every node (empty when not collapsing).
    The depth does not depend on what is expanded, so expanding a box never re-groups the rest."""
    if spec.focus is not None or (spec.collapse_depth is None and len(visible) <= spec.max_nodes):
        return None, {}
    paths = effective_module_paths(graph)
    if spec.collapse_depth is not None:
        return spec.collapse_depth, paths
    sub = GraphView(graph.stage, [n for n in graph.nodes if n.id in visible])
    return choose_depth(sub, paths, spec), paths


def _group(graph: GraphView, visible: set[str], depth: int | None, paths: dict[str, str],
           expanded: frozenset[str]) -> tuple[list[Item], dict[str, str], dict[str, str | None]]:
    """Boxes in graph order, node id -> box id, and the expanded modules drawn open (-> their parent's)."""
    items: dict[str, Item] = {}
    rep: dict[str, str] = {}
    clusters: dict[str, str | None] = {}
    for n in graph.nodes:
        if n.id not in visible:
            continue
        key, cluster = box_key(paths.get(n.id, ""), depth, expanded) if depth else (None, None)
        _record_clusters(cluster, clusters, depth or 0)
        gid = f"module/{key}" if key else n.id
        if gid not in items:
            items[gid] = Item(gid, [], key, cluster)
        items[gid].members.append(n.id)
        rep[n.id] = gid
    for gid, item in list(items.items()):  # a group of one node is just that node
        if item.group is not None and len(item.members) == 1:
            only = item.members[0]
            items[gid] = Item(only, [only], None, item.cluster)
            rep[only] = only
    return list(items.values()), rep, clusters


def _record_clusters(cluster: str | None, clusters: dict[str, str | None], depth: int) -> None:
    """Add ``cluster`` and its expanded ancestors (down to the base depth) with their parents."""
    while cluster and cluster not in clusters:
        parts = cluster.split(".")
        parent = ".".join(parts[:-1]) if len(parts) > max(depth, 1) else None
        clusters[cluster] = parent
        cluster = parent


def box_stats(graph: GraphView, members: list[str], spec: ViewSpec) -> BoxStats:
    """The badges of a box holding ``members``: patterns, q/dq, fused, delegated share, worst overlay, diff.

    >>> box_stats(graph, plan.items[3].members, ViewSpec(overlay=(("conv3", 21.5),))).worst   # ('conv3', 21.5)
    """
    inside = set(members)
    kinds = Counter(graph.node(m).kind for m in members)
    delegated = 0
    for m in members:
        n = graph.node(m)
        sub = graph.subgraphs.get(n.subgraph or "") if n.kind == "delegate" else None
        delegated += sum(1 for s in sub.nodes if s.kind not in ("input", "parameter", "output")) if sub else 0
    overlay = [(k, v) for k, v in spec.overlay if k in inside]
    return BoxStats(
        nodes=len(members), patterns=sum(1 for p in graph.patterns if p.anchor in inside),
        quant_nodes=kinds["quantize"] + kinds["dequantize"], fused=kinds["quantized_op"], delegated_ops=delegated,
        other_ops=kinds["float_op"] + kinds["quantized_op"] + kinds["other"],
        worst=(max if spec.overlay_high_is_bad else min)(overlay, key=lambda kv: kv[1]) if overlay else None,
        added=len(inside.intersection(spec.added)), removed=len(inside.intersection(spec.removed)))


def _module_type(graph: GraphView, group: str, members: list[str]) -> str | None:
    return next((graph.node(m).module_type for m in members
                 if graph.node(m).module_path == group and graph.node(m).module_type), None)


def plan_view(graph: GraphView, spec: ViewSpec = ViewSpec()) -> ViewPlan:
    """Which boxes and edges to draw for ``graph`` under ``spec``.

    >>> plan_view(graph, ViewSpec(expanded=("blocks.3",))).clusters   # {'blocks.3': None}
    """
    visible = _visible(graph, spec)
    depth, paths = _base_depth(graph, visible, spec)
    items, rep, clusters = _group(graph, visible, depth, paths, frozenset(spec.expanded))
    for item in items:
        if item.group is not None:
            item.stats = box_stats(graph, item.members, spec)
            item.stats.module_type = _module_type(graph, item.group, item.members)
    matches = _search(graph, spec.search)
    highlighted = {rep[h] for h in set(spec.highlight) | set(matches) if h in rep}
    return ViewPlan(items, _edges(graph, rep), depth, highlighted, matches, len(graph.nodes), clusters, rep)


def _edges(graph: GraphView, rep: dict[str, str]) -> list[tuple[str, str]]:
    """Edges between drawn boxes; a path through hidden nodes becomes one edge."""
    memo: dict[str, set[str]] = {}
    by_id = {n.id: n for n in graph.nodes}

    def visible_sources(nid: str) -> set[str]:
        if nid in rep:
            return {rep[nid]}
        if nid in memo:
            return memo[nid]
        memo[nid] = set()  # guards cycles
        out: set[str] = set()
        node = by_id.get(nid)
        for i in node.inputs if node else []:
            out |= visible_sources(i)
        memo[nid] = out
        return out

    seen: set[tuple[str, str]] = set()
    edges = []
    for n in graph.nodes:
        if n.id not in rep:
            continue
        dst = rep[n.id]
        for i in n.inputs:
            for src in visible_sources(i):
                if src != dst and (src, dst) not in seen:
                    seen.add((src, dst))
                    edges.append((src, dst))
    return edges
