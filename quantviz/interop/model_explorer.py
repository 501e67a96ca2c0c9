"""Every stage's graph as a Model Explorer graph (Google's ``ai-edge-model-explorer``, extra ``quantviz[explorer]``).

Built with the package's own graph builder (``model_explorer.graph_builder``): one ``Graph`` per stage (and one
per delegate subgraph, linked from the delegate call by ``subgraphIds``). A node's namespace is its module path
(``blocks/3/attn``), so Model Explorer collapses the graph by layer; its attributes are the node's kind, target,
quantization parameters and pattern, plus the pattern's fate (``build_ledger``) and, when computed, the node's
SQNR. Fate and SQNR are also written as Model Explorer node-data files, which colour the nodes::

    quantviz run sample:digits_cnn --flow pt2e --out out/digits
    model-explorer out/digits/model_explorer/04_convert.json \\
        --node_data_paths=out/digits/model_explorer/04_convert.fate.json

From Python::

    from quantviz.interop.model_explorer import to_model_explorer, write_model_explorer
    graph = to_model_explorer(pipe.results["convert"].graph, "convert")   # a graph_builder.Graph
    write_model_explorer(pipe, Path("out/digits"))                        # [Path(".../01_trace.json"), ...]
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from quantviz.graph.model import GraphView, NodeView
from quantviz.pipeline_view import PipelineView
from quantviz.why.ledger import build_ledger, ledger_stages
from quantviz.render.view import effective_module_paths

FOLDER = "model_explorer"
MISSING_NOTE = ("Model Explorer graphs were not written: the optional extra is not installed "
                "(pip install 'quantviz[explorer]' installs ai-edge-model-explorer).\n")
# Pattern fates as node-data values (Model Explorer's node data is numeric), with their colours.
FATES: dict[str, tuple[int, str]] = {"removed": (0, "#bdbdbd"), "unfused": (1, "#ef5350"),
                                     "fused": (2, "#42a5f5"), "delegated": (3, "#66bb6a")}

# stage -> overlay name -> node id -> value (a number, or text shown as a node attribute only)
Overlays = Mapping[str, Mapping[str, float | str]]


def available() -> bool:
    """True when ``ai-edge-model-explorer`` can be imported."""
    try:
        from model_explorer import graph_builder  # noqa: F401
    except ImportError:
        return False
    return True


def to_model_explorer(graph: GraphView, stage: str, overlays: Overlays | None = None):
    """``graph`` as a ``model_explorer.graph_builder.Graph`` with id ``stage``.

    ``overlays`` maps a name to per-node values (``{"sqnr_db": {"aten_conv2d": 31.5}}``); each becomes a node
    attribute. Example::

        g = to_model_explorer(pipe.results["trace"].graph, "trace")
        [n.namespace for n in g.nodes][:3]   # ['', 'conv1', 'conv1']
    """
    from model_explorer import graph_builder as gb

    paths = effective_module_paths(graph)
    pattern_of = {m: p for p in graph.patterns for m in p.members}
    ids = {n.id for n in graph.nodes}
    nodes = []
    for n in graph.nodes:
        attrs = _attrs(n, pattern_of.get(n.id), overlays or {})
        node = gb.GraphNode(
            id=n.id, label=_label(n), namespace=paths.get(n.id, "").replace(".", "/"),
            attrs=[gb.KeyValue(k, v) for k, v in attrs.items()],
            incomingEdges=[gb.IncomingEdge(sourceNodeId=src, targetNodeInputId=str(i))
                           for i, src in enumerate(n.inputs) if src in ids],
            outputsMetadata=[gb.MetadataItem(id="0", attrs=_output_attrs(n, gb))],
            subgraphIds=[f"{stage}/{n.subgraph}"] if n.subgraph and n.subgraph in graph.subgraphs else [])
        nodes.append(node)
    return gb.Graph(id=stage, nodes=nodes)


def stage_graphs(graph: GraphView, stage: str, overlays: Overlays | None = None) -> list:
    """The stage's graph and its delegate subgraphs (ids ``<stage>/<key>``), as Model Explorer graphs."""
    out = [to_model_explorer(graph, stage, overlays)]
    for key, sub in graph.subgraphs.items():
        out.append(to_model_explorer(sub, f"{stage}/{key}"))
    return out


def graphs_json(graphs: list) -> str:
    """The JSON Model Explorer's JSON adapter reads (``{"graphs": [...]}``), as its adapters return it."""
    return json.dumps({"graphs": [asdict(g) for g in graphs]}, indent=1)


def stage_json(pipe: PipelineView, stage: str, sqnr: Mapping[str, float] | None = None) -> str:
    """One stage's Model Explorer JSON with the pattern fates (when the ledger can be built) and ``sqnr``
    (node id -> dB, convert stage). Example: ``stage_json(pipe, "convert")``."""
    overlays = stage_overlays(pipe, sqnr).get(stage)
    return graphs_json(stage_graphs(pipe.results[stage].graph, stage, overlays))


def node_data(graph_id: str, name: str, values: Mapping[str, float | str]):
    """A Model Explorer node-data file's content (``ModelNodeData``) for one overlay, or None when it has no
    numbers. Fates are coded ``FATES`` (value and colour); numbers are coloured on a red → green gradient."""
    from model_explorer import node_data_builder as nd

    if name == "fate":
        results = {k: nd.NodeDataResult(value=FATES[v][0], bgColor=FATES[v][1])
                   for k, v in values.items() if v in FATES}
        thresholds = [nd.ThresholdItem(value=code, bgColor=colour) for code, colour in sorted(FATES.values())]
        data = nd.GraphNodeData(results=results, name="pattern fate", thresholds=thresholds)
    else:
        results = {k: nd.NodeDataResult(value=float(v)) for k, v in values.items() if isinstance(v, (int, float))}
        data = nd.GraphNodeData(results=results, name=name, gradient=[
            nd.GradientItem(stop=0, bgColor="#ef5350"), nd.GradientItem(stop=1, bgColor="#66bb6a")])
    return nd.ModelNodeData(graphsData={graph_id: data}) if results else None


def stage_overlays(pipe: PipelineView, sqnr: Mapping[str, float] | None = None) -> dict[str, dict[str, dict]]:
    """Per stage, the overlays known for its nodes: ``fate`` and ``fate_detail`` from the pattern ledger (convert:
    every member of a pattern; delegate: the pattern's op), ``sqnr_db`` on the convert stage when given.

    The ledger needs convert, delegate and fuse; without them, or when it fails, there are no fates."""
    out: dict[str, dict[str, dict]] = {}
    reference = pipe.role("reference") or "convert"
    for row in _ledger_rows(pipe):
        detail = row.where if row.fate in ("delegated", "fused") else row.reason
        for stage, nodes in ((reference, row.members), ("delegate", [row.node] if row.node else [])):
            o = out.setdefault(stage, {"fate": {}, "fate_detail": {}})
            for node in nodes:
                o["fate"][node] = row.fate
                o["fate_detail"][node] = f"{row.pattern} {row.label}: {row.fate}" + (f" ({detail})" if detail else "")
    if sqnr:
        out.setdefault(reference, {})["sqnr_db"] = {k: float(v) for k, v in sqnr.items()}
    return out


def write_model_explorer(pipe: PipelineView, out_dir: Path, sqnr: Mapping[str, float] | None = None) -> list[Path]:
    """Write ``out_dir/model_explorer/NN_<stage>.json`` for every stage with a graph, and beside each the node
    data of its overlays (``NN_<stage>.fate.json``, ``NN_<stage>.sqnr_db.json``). Returns the paths written.

    Without the extra, writes ``out_dir/model_explorer/MISSING.txt`` (saying so) and returns [].

    Example::

        write_model_explorer(pipe, Path("out/digits"))[0].name   # '01_trace.json'
    """
    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if not available():
        (folder / "MISSING.txt").write_text(MISSING_NOTE)
        return []
    overlays = stage_overlays(pipe, sqnr)
    written = []
    for stage in pipe.stage_names:
        r = pipe.results.get(stage)
        if r is None or not r.ok or r.graph is None:
            continue
        stem = f"{pipe.flow.number(stage):02d}_{stage}"
        path = folder / f"{stem}.json"
        path.write_text(graphs_json(stage_graphs(r.graph, stage, overlays.get(stage))))
        written.append(path)
        for name, values in overlays.get(stage, {}).items():
            data = node_data(stage, name, values)
            if data is not None:
                data_path = folder / f"{stem}.{name}.json"
                data_path.write_text(data.to_json_string(indent=1))
                written.append(data_path)
    return written


def _ledger_rows(pipe: PipelineView) -> list:
    if not all(pipe.results.get(s) is not None and pipe.results[s].ok for s in ledger_stages(pipe)):
        return []
    try:
        return build_ledger(pipe).rows
    except Exception:  # noqa: BLE001 - fates are an extra: the graphs are written without them
        return []


def _label(n: NodeView) -> str:
    """The op's short name (``conv2d``, ``quantize_per_tensor``), as Model Explorer shows on the box."""
    if n.op in ("placeholder", "output", "get_attr"):
        return n.kind if n.kind in ("input", "output") else n.name
    parts = n.target.split(".")
    return parts[-2] if len(parts) >= 2 and parts[-1] in ("default", "Tensor", "Scalar", "tensor") else parts[-1]


def _attrs(n: NodeView, pattern, overlays: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    attrs = {"name": n.name, "kind": n.kind, "op": n.op, "target": n.target}
    if n.qparams is not None:
        q = n.qparams
        attrs["qparams"] = q.label()
        attrs.update({f"q.{k}": _short(v) for k, v in asdict(q).items() if v is not None})
    if pattern is not None:
        attrs["pattern"] = f"{pattern.id} {pattern.label()}"
    for key in ("module_path", "module_type", "source", "backend", "debug_handle"):
        value = getattr(n, key)
        if value is not None:
            attrs[key] = str(value)
    for name, values in overlays.items():
        if n.id in values:
            v = values[n.id]
            attrs[name] = f"{v:.2f}" if isinstance(v, float) else str(v)
    return attrs


def _short(value: Any, keep: int = 8) -> str:
    """``[0.1, 0.2, … (64 values)]`` for long per-channel lists, ``str(value)`` otherwise."""
    if isinstance(value, list) and len(value) > keep:
        return "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value[:keep]) + \
            f", … ({len(value)} values)]"
    return str(value)


def _output_attrs(n: NodeView, gb) -> list:
    attrs = [gb.KeyValue("tensor_name", n.id)]
    if n.shape is not None:
        attrs.append(gb.KeyValue("shape", "[" + ", ".join(str(d) for d in n.shape) + "]"))
    if n.dtype:
        attrs.append(gb.KeyValue("dtype", n.dtype.replace("torch.", "")))
    return attrs
