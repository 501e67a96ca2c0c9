"""Decide what a view shows: collapse by module, focus on a neighbourhood, filter, search.

Pure data in, pure data out; :func:`quantviz.render.to_dot` draws the plan::

    plan = plan_view(graph, ViewSpec(collapse_depth=2))
    len(plan.items), plan.depth
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from quantviz.graph.model import GraphView

QUANT_KINDS = {"quantize", "dequantize", "choose_qparams", "observer", "quantized_op", "delegate", "input", "output"}
DEFAULT_MAX_NODES = 300


@dataclass(frozen=True)
class ViewSpec:
    """How to look at a graph. The defaults give a readable first view of any graph."""

    collapse_depth: int | None = None  # None: full detail up to max_nodes, collapsed above it
    expanded: tuple[str, ...] = ()  # module paths drawn in full inside a collapsed view
    focus: str | None = None  # node id: show its neighbourhood only
    hops: int = 2
    quant_only: bool = False  # only quantization-relevant nodes (edges pass through hidden ones)
    search: str | None = None  # regex on names and targets: matches are highlighted
    highlight: tuple[str, ...] = ()
    overlay: tuple[tuple[str, float], ...] = ()  # (node id, value): fill by value, e.g. SQNR dB
    overlay_label: str = ""
    notes: tuple[tuple[str, str], ...] = ()  # (node id, text) shown in the label and tooltip
    added: tuple[str, ...] = ()  # diff marks
    removed: tuple[str, ...] = ()
    show_patterns: bool = True
    show_params: bool = True
    expand_delegates: tuple[str, ...] = ()
    max_nodes: int = DEFAULT_MAX_NODES


@dataclass
class Item:
    """One drawn box: a node, or a collapsed module group."""

    id: str
    members: list[str]
    group: str | None = None  # module path for a collapsed group


@dataclass
class ViewPlan:
    items: list[Item]
    edges: list[tuple[str, str]]
    depth: int | None  # collapse depth used (None: full detail)
    highlighted: set[str] = field(default_factory=set)
    matches: list[str] = field(default_factory=list)  # node ids matching the search
    total_nodes: int = 0

    @property
    def visible_count(self) -> int:
        return len(self.items)


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


def _group_count(graph: GraphView, paths: dict[str, str], depth: int, expanded: tuple[str, ...]) -> int:
    groups = set()
    singles = 0
    for n in graph.nodes:
        key = _depth_key(paths[n.id], depth)
        if not key or any(paths[n.id] == e or paths[n.id].startswith(e + ".") for e in expanded):
            singles += 1
        else:
            groups.add(key)
    return singles + len(groups)


def choose_depth(graph: GraphView, paths: dict[str, str], spec: ViewSpec) -> int | None:
    """The deepest collapse depth that keeps the view at or under ``spec.max_nodes`` boxes."""
    if len(graph.nodes) <= spec.max_nodes:
        return None
    best = 1
    for depth in range(1, _max_depth(paths) + 1):
        if _group_count(graph, paths, depth, spec.expanded) <= spec.max_nodes:
            best = depth
        else:
            break
    return best


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


def plan_view(graph: GraphView, spec: ViewSpec = ViewSpec()) -> ViewPlan:
    """Which boxes and edges to draw for ``graph`` under ``spec``."""
    visible = _visible(graph, spec)
    matches = _search(graph, spec.search)
    depth = spec.collapse_depth
    paths: dict[str, str] = {}
    if spec.focus is None and (depth is not None or len(visible) > spec.max_nodes):
        paths = effective_module_paths(graph)
        if depth is None:
            sub = GraphView(graph.stage, [n for n in graph.nodes if n.id in visible])
            depth = choose_depth(sub, paths, spec)
    rep: dict[str, str] = {}
    items: dict[str, Item] = {}
    order: list[str] = []
    for n in graph.nodes:
        if n.id not in visible:
            continue
        key = _depth_key(paths.get(n.id, ""), depth) if depth else ""
        if key and not any(paths[n.id] == e or paths[n.id].startswith(e + ".") for e in spec.expanded):
            gid = f"module/{key}"
            if gid not in items:
                items[gid] = Item(gid, [], key)
                order.append(gid)
            items[gid].members.append(n.id)
            rep[n.id] = gid
        else:
            items[n.id] = Item(n.id, [n.id])
            order.append(n.id)
            rep[n.id] = n.id
    for gid in list(order):  # a group of one node is just that node
        item = items[gid]
        if item.group is not None and len(item.members) == 1:
            only = item.members[0]
            items[only] = Item(only, [only])
            order[order.index(gid)] = only
            rep[only] = only
            del items[gid]
    edges = _edges(graph, rep)
    highlighted = set(spec.highlight) | set(matches)
    return ViewPlan([items[i] for i in order], edges, depth, {rep[h] for h in highlighted if h in rep}, matches,
                    len(graph.nodes))


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

