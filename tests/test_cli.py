"""The CLI contract: exit codes, messages, and summary.json key names."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

QUANTVIZ = [sys.executable, "-m", "quantviz.cli"]


def quantviz(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*QUANTVIZ, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_models_lists_every_sample_with_a_description():
    from sample_models import SAMPLES

    out = quantviz("models")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(SAMPLES)
    for line, (name, desc) in zip(lines, SAMPLES.items()):
        assert line.startswith(f"sample:{name}") and line.endswith(desc)


def test_stages_lists_each_flows_stages_in_order_and_its_absent_ones():
    out = quantviz("stages", "--flow", "pt2e")
    names = [line.split()[1] for line in out.stdout.strip().splitlines()[1:]]
    assert names == ["trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "fuse", "emit", "run"]
    torchao = quantviz("stages", "--flow", "torchao").stdout
    assert "quantize" in torchao and "calibrate  (not part of this flow: " in torchao
    assert quantviz("stages", "--flow", "tflite").returncode == 1


def test_unknown_sample_exits_1_and_names_the_samples():
    out = quantviz("run", "sample:does_not_exist")
    assert out.returncode == 1
    assert "does_not_exist" in out.stderr and "digits_cnn" in out.stderr and "Traceback" not in out.stderr


def test_missing_file_exits_1_and_says_so():
    out = quantviz("run", "missing.py:f")
    assert out.returncode == 1 and "'missing.py' does not exist" in out.stderr


def test_bad_flag_value_exits_1():
    assert quantviz("run", "sample:conv_add", "--flow", "tflite").returncode == 1


@pytest.mark.e2e
def test_run_writes_the_summary_contract(tmp_path):
    out = quantviz("run", "sample:digits_cnn", "--flow", "fx", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "accuracy: float" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"model", "flow", "ok", "stages", "artifacts", "numerics"} <= set(summary)
    assert summary["model"] == "digits_cnn" and summary["flow"] == "fx" and summary["ok"] is True
    assert [s["name"] for s in summary["stages"]] == ["trace", "prepare", "calibrate", "convert", "capture", "edge",
                                                      "delegate", "fuse", "emit", "run"]
    for s in summary["stages"]:
        assert set(s) == {"name", "ok", "seconds", "timed_by", "nodes", "kinds", "patterns", "error"}
        assert s["ok"] is True and s["error"] is None and isinstance(s["seconds"], float)
        assert s["timed_by"] == "quantviz"
    assert summary["data"]["source"] == "evaluation" and summary["numbers_from"] == "the ExecuTorch runtime"
    assert summary["absent"] == {}
    convert = next(s for s in summary["stages"] if s["name"] == "convert")
    assert convert["kinds"]["quantize"] == 9 and convert["patterns"] == 8
    assert summary["artifacts"]["pte"] == "model.pte" and (tmp_path / "model.pte").stat().st_size > 1000
    n = summary["numerics"]
    assert set(n) == {"float_vs_reference_sqnr_db", "float_vs_runtime_sqnr_db", "reference_vs_runtime_sqnr_db",
                      "float_accuracy", "runtime_accuracy",
                      "reference_vs_runtime_max_lsb", "reference_vs_runtime_share_ge_1_lsb",
                      "runtime_error_over_quantization_error_db"}  # output ends in a dq
    assert n["reference_vs_runtime_max_lsb"] <= 1.0
    assert abs(n["float_accuracy"] - n["runtime_accuracy"]) <= 0.02
    assert n["reference_vs_runtime_sqnr_db"] >= 30
    for i, stage in enumerate(["trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "fuse",
                               "emit"], 1):
        graph = json.loads((tmp_path / "stages" / f"{i:02d}_{stage}.json").read_text())
        assert graph["stage"] == stage and graph["nodes"]
        dot = (tmp_path / "stages" / f"{i:02d}_{stage}.dot").read_text()
        assert dot.startswith("digraph") and all(re.search(rf'\bid="?qv_{re.escape(n["id"])}"?[\s\]]', dot)
                                                 for n in graph["nodes"])
        if shutil.which("dot"):
            assert (tmp_path / "stages" / f"{i:02d}_{stage}.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.e2e
def test_a_failing_stage_exits_2_with_one_paragraph_and_still_writes_the_summary(tmp_path):
    out = quantviz("run", "sample:not_traceable", "--out", str(tmp_path))
    assert out.returncode == 2
    assert "stage 'trace' failed: module 'pad'" in out.stderr and "--skip-module pad" in out.stderr
    assert "Traceback" not in out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] is False
    assert summary["stages"][0]["error"]["stage"] == "trace" and summary["stages"][0]["error"]["hint"]


def test_the_options_given_on_the_command_line_are_known_with_their_values():
    """``given_fields``: what the user typed, which a backend's defaults leave alone (``with_backend_defaults``),
    even where it equals PipelineConfig's default (``--flow fx``); the values are argparse's as before."""
    from quantviz.cli import build_parser, config_from_args, given_fields
    from quantviz.config import PipelineConfig

    parse = build_parser().parse_args
    args = parse(["run", "sample:conv_add", "--flow", "fx", "--backend", "xnnpack", "--per-channel",
                  "--no-check-guards", "--skip-module", "a", "--skip-module", "b"])
    assert given_fields(args) == {"flow", "backend", "per_channel", "check_guards", "skip_modules"}
    config = config_from_args(args)
    assert (config.flow, config.backend, config.per_channel, config.check_guards, config.skip_modules) == \
        ("fx", "xnnpack", True, False, ("a", "b"))
    alone = parse(["run", "sample:conv_add", "--backend", "xnnpack"])
    assert given_fields(alone) == {"backend"} and config_from_args(alone) == PipelineConfig(backend="xnnpack")
    assert given_fields(parse(["why", "sample:conv_add"])) == frozenset()


def test_backend_alone_runs_its_declared_flow_and_says_so_and_an_explicit_flow_is_kept(tmp_path):
    """``--backend xnnpack`` alone: XNNPACK's declared flow (pt2e) is applied and printed before anything runs;
    ``--flow fx --backend xnnpack``: fx, as typed, nothing applied (the summary says which ran)."""
    common = ["--until", "trace", "--no-svg", "--repeat", "0"]
    alone = quantviz("run", "sample:conv_add", "--backend", "xnnpack", "--out", str(tmp_path / "a"), *common)
    assert alone.returncode == 0, alone.stderr
    assert "flow pt2e" in alone.stdout and "the xnnpack backend needs --flow pt2e: applied" in alone.stdout
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["config"]["flow"] == "pt2e"
    kept = quantviz("run", "sample:conv_add", "--flow", "fx", "--backend", "xnnpack", "--out", str(tmp_path / "f"),
                    *common)
    assert kept.returncode == 0, kept.stderr
    assert "flow fx" in kept.stdout and "needs" not in kept.stdout
    assert json.loads((tmp_path / "f" / "summary.json").read_text())["config"]["flow"] == "fx"
