"""Model Explorer interop: every stage written as a Model Explorer graph and read back with the package's own
classes (``model_explorer.graph_builder`` through dacite, as the package's node-data runner loads a graph)."""
import json
from pathlib import Path

import pytest

from quantviz.flows import FLOWS
STAGES = FLOWS["fx"].names  # the default flow's stages
from quantviz.interop import model_explorer as me
from quantviz.render.view import effective_module_paths
from quantviz.why.ledger import build_ledger
from quantviz_devtools.tools import require_module

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipe(flow):
    return flow("sample:digits_cnn", flow="pt2e")


@pytest.fixture(scope="module")
def written(pipe, tmp_path_factory):
    require_module("model_explorer")
    out = tmp_path_factory.mktemp("me")
    return out, me.write_model_explorer(pipe, out)


def load_graphs(path: Path) -> dict:
    """The file's graphs as ``graph_builder.Graph`` objects, by id (dacite, as model_explorer.ndp_runner does)."""
    from dacite import from_dict
    from model_explorer.graph_builder import Graph

    data = json.loads(path.read_text())
    return {g["id"]: from_dict(data_class=Graph, data=g) for g in data["graphs"]}


def test_every_stage_with_a_graph_is_written(pipe, written):
    out, paths = written
    graphs = [p.name for p in paths if p.name.count(".") == 1]
    expected = [f"{i:02d}_{s}.json" for i, s in enumerate(STAGES, 1) if pipe.results[s].graph is not None]
    assert graphs == expected and len(graphs) == 9  # run has no graph
    assert all(p.parent == out / "model_explorer" for p in paths)


def test_nodes_edges_and_namespaces_round_trip(pipe, written):
    out, _ = written
    view = pipe.results["convert"].graph
    graph = load_graphs(out / "model_explorer" / "04_convert.json")["convert"]
    assert len(graph.nodes) == len(view.nodes)
    paths = effective_module_paths(view)
    by_id = {n.id: n for n in graph.nodes}
    for n in view.nodes:
        got = by_id[n.id]
        assert got.namespace == paths[n.id].replace(".", "/")
        assert [e.sourceNodeId for e in got.incomingEdges] == n.inputs
        attrs = {kv.key: kv.value for kv in got.attrs}
        assert attrs["kind"] == n.kind and attrs["target"] == n.target
        if n.qparams is not None:
            assert attrs["qparams"] == n.qparams.label()
    conv = next(n for n in view.nodes if n.target.startswith("aten.conv2d"))
    assert by_id[conv.id].namespace == "conv1" and by_id[conv.id].label == "conv2d"
    assert {n.namespace for n in graph.nodes} >= {"conv1", "conv2", "fc"}


def test_delegate_subgraphs_are_linked(flow, tmp_path):
    require_module("model_explorer")
    pipe = flow("sample:digits_cnn", flow="pt2e", partitioner="xnnpack")
    me.write_model_explorer(pipe, tmp_path)
    graphs = load_graphs(tmp_path / "model_explorer" / "07_delegate.json")
    calls = [n for n in graphs["delegate"].nodes if n.subgraphIds]
    assert calls and all(sid in graphs for n in calls for sid in n.subgraphIds)
    view = pipe.results["delegate"].graph
    assert len(graphs) == 1 + len(view.subgraphs)


def test_pattern_fates_are_node_attributes_and_node_data(pipe, written):
    from dacite import from_dict
    from model_explorer.node_data_builder import GraphNodeData

    out, _ = written
    ledger = build_ledger(pipe)
    assert ledger.rows
    graph = load_graphs(out / "model_explorer" / "04_convert.json")["convert"]
    attrs = {n.id: {kv.key: kv.value for kv in n.attrs} for n in graph.nodes}
    raw = json.loads((out / "model_explorer" / "04_convert.fate.json").read_text())
    data = from_dict(data_class=GraphNodeData, data=raw["convert"])
    assert data.name == "pattern fate"
    for row in ledger.rows:
        for member in row.members:
            assert attrs[member]["fate"] == row.fate
            assert data.results[member].value == me.FATES[row.fate][0]
            assert data.results[member].bgColor == me.FATES[row.fate][1]
    assert len(data.results) == len({m for r in ledger.rows for m in r.members})
    assert {r.fate for r in ledger.rows} == {"unfused"}  # pt2e digits_cnn, no partitioner, as `quantviz why` says
    assert attrs[ledger.rows[0].members[0]]["fate_detail"].startswith(f"{ledger.rows[0].pattern} dq → ")


def test_sqnr_overlay_becomes_node_data(pipe, tmp_path):
    require_module("model_explorer")
    q = next(n.id for n in pipe.results["convert"].graph.nodes if n.kind == "quantize")
    text = me.stage_json(pipe, "convert", sqnr={q: 31.25})
    node = next(n for n in json.loads(text)["graphs"][0]["nodes"] if n["id"] == q)
    assert {"key": "sqnr_db", "value": "31.25"} in node["attrs"]
    paths = me.write_model_explorer(pipe, tmp_path, sqnr={q: 31.25})
    raw = json.loads((tmp_path / "model_explorer" / "04_convert.sqnr_db.json").read_text())
    assert raw["convert"]["results"] == {q: {"value": 31.25}}
    assert tmp_path / "model_explorer" / "04_convert.sqnr_db.json" in paths


def test_without_the_extra_run_out_writes_a_note_and_still_succeeds(pipe, tmp_path, monkeypatch):
    from quantviz.outputs import write_outputs

    monkeypatch.setattr(me, "available", lambda: False)
    data = write_outputs(pipe, tmp_path, svg=False)
    assert data["artifacts"]["model_explorer"] == []
    assert "pip install 'quantviz[explorer]'" in (tmp_path / "model_explorer" / "MISSING.txt").read_text()
    assert (tmp_path / "summary.json").exists()


def test_run_out_lists_the_model_explorer_files(pipe, tmp_path):
    require_module("model_explorer")
    from quantviz.outputs import write_outputs

    data = write_outputs(pipe, tmp_path, svg=False)
    files = data["artifacts"]["model_explorer"]
    assert "model_explorer/01_trace.json" in files and "model_explorer/04_convert.fate.json" in files
    assert all((tmp_path / f).exists() for f in files)


def test_the_app_offers_each_stage_as_model_explorer_json():
    require_module("model_explorer")
    import os

    from streamlit.testing.v1 import AppTest

    os.environ["QUANTVIZ_DEFAULT_MODEL"] = "sample:digits_cnn"
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=600)
    at.session_state.stage = "convert"
    at.run()
    assert not at.exception, at.exception
    assert "Model Explorer JSON" in {b.label for b in at.get("download_button")}
