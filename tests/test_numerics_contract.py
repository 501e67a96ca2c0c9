"""numerics.json, the CSV tables and `quantviz compare`'s summary keep their format while `NumericsReport` holds
typed records (issue #23): the key paths of numerics.json, every CSV header and the printed summary (numbers
masked) of real runs against tests/fixtures/numerics_contract.json, recorded from the report before its rows were
typed; and `summary_lines()` / `to_dict()` on hand-built reports, for the branches those runs do not reach."""
import csv
import json
import math
import re
from pathlib import Path

import pytest

from quantviz.config import PipelineConfig
from quantviz.numerics import compare as compare_module
from quantviz.numerics.blame import BlameRow
from quantviz.numerics.compare import (LEVEL_OK, BlameSummary, GranularityCheck, LevelComparison, LevelState,
                                       NumericsReport, OutputRow, OverLsb)
from quantviz.numerics.kernel_instances import KernelInstance
from quantviz.numerics.per_node import PerNodeRow
from quantviz.numerics.runtime_intermediates import OpStatus, RuntimeIntermediates, RuntimeOpRow

CONTRACT = json.loads((Path(__file__).parent / "fixtures" / "numerics_contract.json").read_text())
SKIP = {"config", "histogram", "data"}  # keys whose children are data (config fields, LSB bins, data sets)
# added since the contract was recorded, on purpose: "data" (numerics.json: what each data set is, issue #20)
ADDED = {"data", "blame[].weight_qparams"}  # ... and the weight's qparams of each blame row (groupwise scales)
ADDED_TREE = "taps"  # ... and the intermediate-output taps inside delegates, every key under it (issue #21)
ADDED_LINE = "inside delegates: "  # ... and the summary line that says what the taps found


def added(path: str) -> bool:
    """True for a key path added on purpose since the contract was recorded."""
    return path in ADDED or path == ADDED_TREE or path.startswith(ADDED_TREE + ".")


NUMBER = re.compile(r"\binf\b|\d+(\.\d+)?(e[-+]?\d+)?")


def key_paths(value, prefix: str = "") -> list[str]:
    """Every key path of a JSON value in first-seen order: ``end_to_end[].sqnr_db``, ``granularity_check.error``."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            out.append(path)
            if k not in SKIP:
                out += key_paths(v, path)
    elif isinstance(value, list):
        for item in value:
            out += key_paths(item, prefix + "[]")
    return list(dict.fromkeys(out))


def mask(line: str) -> str:
    return NUMBER.sub("#", line)


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(CONTRACT))
def test_compare_writes_and_prints_what_it_did_before_the_rows_were_typed(case, tmp_path, capsys, monkeypatch):
    from quantviz.cli import main

    expected = CONTRACT[case]
    reports = []
    real = compare_module.compare
    monkeypatch.setattr(compare_module, "compare", lambda *a, **k: reports.append(real(*a, **k)) or reports[-1])
    # --repeat 0: the contract is the numerics; the latency lines compare prints first are issue #30's (test_timing)
    assert main(["compare", *expected["argv"], "--repeat", "0", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "numerics.json").read_text())
    assert [k for k in key_paths(data) if not added(k)] == expected["json"]
    assert set(data["data"]) == {r["data"] for r in data["end_to_end"]}  # every data set is named
    assert {f"{r['a']} vs {r['b']}": list(r) for r in data["end_to_end"]} == expected["end_to_end_rows"]
    headers = {}
    for path in sorted(tmp_path.glob("*.csv")):
        with path.open() as f:
            headers[path.stem] = [h for h in next(csv.reader(f), []) if h != "weight_qparams"]  # added (#20)
    assert headers == expected["csv"]
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("  numerics 100%  numerics done") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("  wrote "))
    (report,) = reports
    assert lines[start:end] == [f"  {line}" for line in report.summary_lines()]  # the CLI prints the report's lines
    first, *rest = report.summary_lines()
    assert first == f"measured on {report.data[report.main_data()]}"  # the data, first (added in issue #20)
    kept = [line for line in rest if not line.startswith(ADDED_LINE)]
    assert [mask(line) for line in kept] == [mask(line) for line in expected["summary"]]


def per_node_row(node: str, db: float) -> PerNodeRow:
    return PerNodeRow(node, "aten.conv2d.default", f"quantize_{node}", node, "same name", 0.05, sqnr_db=db)


def hand_built() -> NumericsReport:
    """No fused level, no ETDump, a granularity check that could not lower, an integer output."""
    return NumericsReport(
        "toy", PipelineConfig(flow="pt2e"),
        levels={"float": LEVEL_OK, "reference": LEVEL_OK,
                "fused": LevelState("unavailable", "the fuse stage has no result"), "runtime": LEVEL_OK},
        end_to_end=[LevelComparison("calibration", "float", "reference", 29.0, 0.998, 0.2, 0.02),
                    LevelComparison("evaluation", "float", "reference", 31.3, 0.99912, 0.1, 0.01),
                    LevelComparison("evaluation", "float", "runtime", 30.0, 0.999, 0.1, 0.01),
                    LevelComparison("evaluation", "reference", "runtime", 48.5, 1.0, 0.01, 0.001, 2.0, 0.125)],
        per_node=[per_node_row("conv1", 28.0), per_node_row("conv2", math.nan)],
        kernels=[KernelInstance("c1", "conv2d", 10, 3, 0.2, {"0": 8, "3": 2})],
        runtime_intermediates=RuntimeIntermediates(False, "ETDump could not be read: no debug buffer"),
        blame=[BlameRow("conv1", "p0", "conv1", "conv2d", 0, scale=0.05, float_vs_reference_sqnr_db=math.inf)],
        blame_note="1 quantized pattern(s) on 1 batch(es)",
        blame_summary=BlameSummary(1, 1, 1, 1, "conv1", [OverLsb("conv1", "conv2d", 3.0)]),
        outputs=[OutputRow("logits", "float32", [4, 10], True, end_to_end=True,
                           sqnr_db={("float", "reference"): 31.3}),
                 OutputRow("best", "int64", [4], why_not="integer tensor (int64)",
                           equal_share={("float", "reference"): 0.75})],
        granularity_check=GranularityCheck(error="the edge stage failed"))


def test_summary_lines_of_a_hand_built_report():
    assert hand_built().summary_lines() == [
        "float     ok",
        "reference ok",
        "fused     unavailable: the fuse stage has no result",
        "runtime   ok",
        "float vs reference: SQNR 31.3 dB, cosine 0.99912",
        "float vs runtime: SQNR 30.0 dB, cosine 0.99900",
        "reference vs runtime: SQNR 48.5 dB, cosine 1.00000, max 2 LSB",
        "worst node: conv1 (28.0 dB float vs reference)",
        "quantviz kernels: worst instance c1 3 LSB off the reference",
        "runtime intermediates: unavailable (ETDump could not be read: no debug buffer)",
        "blame: 1 quantized pattern(s) on 1 batch(es)",
        "per-op delegates vs whole-graph ones: could not lower: the edge stage failed",
        "outputs not compared: best (see outputs.csv)",
    ]


def test_summary_lines_of_the_other_branches():
    report = NumericsReport("toy", PipelineConfig(), levels={"float": LEVEL_OK}, runtime_reused=True,
                            end_to_end=[LevelComparison("calibration", "float", "runtime", 20.0, 0.99, 0.1, 0.01)],
                            runtime_intermediates=RuntimeIntermediates(True, "note", [
                                RuntimeOpRow(0, "quantize_per_tensor.out", "q", OpStatus.COMPARED, 4, 0.5, 40.0),
                                RuntimeOpRow(1, "DELEGATE_CALL", "", OpStatus.INSIDE_DELEGATE),
                                RuntimeOpRow(2, "aten::add.out", "", OpStatus.NO_NODE)]),
                            granularity_check=GranularityCheck(batches=2, sqnr_db=41.04, max_lsb=1.0))
    assert report.main_data() == "calibration"  # no evaluation data: the first data set
    assert report.summary_lines() == [
        "float     ok",
        "float vs runtime: SQNR 20.0 dB, cosine 0.99000",
        "runtime intermediates: 1 kernel call(s) compared with the fused program, max difference 0.5; "
        "1 op(s) inside delegates",
        "per-op delegates vs whole-graph ones: SQNR 41.0 dB, max 1 LSB",
        "runtime outputs reused from the run stage",
    ]
    assert GranularityCheck(batches=2, identical=True, sqnr_db=math.inf).summary() == "identical output"


def test_to_dict_keeps_the_json_format_of_every_record():
    data = hand_built().to_dict()
    top = [k for k in CONTRACT["conv_add_pt2e_xnnpack_per_op"]["json"] if "." not in k and "[]" not in k]
    assert [k for k in data if not added(k)] == top
    assert data["levels"] == {"float": "ok", "reference": "ok", "fused": "the fuse stage has no result",
                              "runtime": "ok"}
    assert list(data["end_to_end"][0]) == ["data", "a", "b", "sqnr_db", "cosine", "max_abs_error", "mean_abs_error"]
    assert data["end_to_end"][3]["max_lsb"] == 2.0 and data["end_to_end"][3]["share_ge_1_lsb"] == 0.125
    assert data["per_node"][1]["sqnr_db"] is None and data["blame"][0]["float_vs_reference_sqnr_db"] == "inf"
    assert data["runtime_intermediates"] == {"available": False,
                                             "reason": "ETDump could not be read: no debug buffer"}  # no rows key
    assert data["blame_summary"] == {"patterns": 1, "with_runtime": 1, "delegated": 1, "delegated_with_runtime": 1,
                                     "first_divergence": "conv1", "delegate_ops_over_1_lsb": [
                                         {"node": "conv1", "op": "conv2d", "runtime_local_max_lsb": 3.0}]}
    assert data["outputs"] == [
        {"path": "logits", "dtype": "float32", "shape": [4, 10], "compared": True, "why_not": "",
         "end_to_end": True, "float_vs_reference_sqnr_db": 31.3},
        {"path": "best", "dtype": "int64", "shape": [4], "compared": False, "why_not": "integer tensor (int64)",
         "end_to_end": False, "float_vs_reference_equal_share": 0.75}]
    assert data["granularity_check"] == {"other": "graph", "error": "the edge stage failed"}
    checked = GranularityCheck(batches=2, identical=False, sqnr_db=41.0, delegate_calls_op=5, delegate_calls_graph=1,
                               max_lsb=1.0, share_ge_1_lsb=0.01)
    assert checked.to_dict() == {"other": "graph", "batches": 2, "identical": False, "sqnr_db": 41.0,
                                 "delegate_calls": {"op": 5, "graph": 1}, "max_lsb": 1.0, "share_ge_1_lsb": 0.01}
    empty = NumericsReport("toy", PipelineConfig()).to_dict()
    assert empty["blame_summary"] == {} and empty["granularity_check"] == {}  # not computed: as before
    assert RuntimeOpRow(0, "DELEGATE_CALL", "", OpStatus.INSIDE_DELEGATE).to_dict()["status"] == \
        "inside a delegate: the backend reports the op but not its output"


def test_frames_are_the_csv_tables(tmp_path):
    report = hand_built()
    frames = report.frames()
    assert list(frames["kernels"].columns) == ["node", "op", "elements", "max_lsb", "share_off", "histogram"]
    assert frames["kernels"]["histogram"][0] == "0:8 3:2"
    assert frames["runtime_intermediates"].empty and list(frames["blame"].columns)[:3] == ["node", "pattern", "module"]
    assert list(frames["outputs"].columns) == ["path", "dtype", "shape", "compared", "why_not", "end_to_end",
                                               "float_vs_reference_sqnr_db", "float_vs_reference_equal_share"]
    written = report.write(tmp_path)
    assert [p.name for p in written] == ["numerics.json", "end_to_end.csv", "accuracy.csv", "per_node.csv",
                                         "kernels.csv", "runtime_intermediates.csv", "sensitivity.csv", "blame.csv",
                                         "outputs.csv"]
    assert "inf" in (tmp_path / "blame.csv").read_text().splitlines()[1]  # CSVs keep inf, as pandas writes it
