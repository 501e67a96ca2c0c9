"""Every kind of bad input gets a clear answer: stage, cause, fix; never a raw traceback."""
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from torch import nn

from quantviz import LoadError, ModelSpec, Pipeline, PipelineConfig, load_model
from quantviz.graph.synthetic import synthetic_graph
from quantviz.known_issues import explain
from quantviz.render import plan_view

CLI = [sys.executable, "-m", "quantviz.cli"]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, **kw)


def test_factory_that_is_missing_or_returns_garbage_exits_1_naming_which(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def make():\n    return 'a model'\n")
    missing = cli("run", f"{f}:nope")
    assert missing.returncode == 1 and "no factory function 'nope'" in missing.stderr
    wrong = cli("run", f"{f}:make")
    assert wrong.returncode == 1 and "returned str" in wrong.stderr and "ModelSpec" in wrong.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


def test_example_inputs_of_the_wrong_shape_fail_at_trace_naming_both_shapes():
    spec = ModelSpec("bad", TwoLayer().eval(), (torch.randn(1, 5, 8, 8),))
    err = Pipeline(spec).run().results["trace"].error
    assert err.stage == "trace"
    assert "given: (1, 5, 8, 8) float32" in err.message
    assert "expected input[1, 5, 8, 8] to have 3 channels" in err.message  # torch names what it expected
    assert "shape and dtype" in err.hint


class Raises(nn.Module):
    def forward(self, x):
        raise ValueError("the model refuses this input")


def test_a_forward_that_raises_keeps_the_models_message_and_line():
    err = Pipeline(ModelSpec("raises", Raises(), (torch.randn(2),))).run().results["trace"].error
    assert "ValueError: the model refuses this input" in err.message
    assert "test_bad_input.py:" in err.message and 'raise ValueError("the model refuses this input")' in err.message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_calibration_data_with_nan_or_inf_fails_at_calibrate_naming_the_batch(bad):
    x = torch.randn(1, 3, 8, 8)
    poisoned = x.clone()
    poisoned[0, 0, 0, 0] = bad
    spec = ModelSpec("nan", TwoLayer().eval(), (x,), calibration_batches=[(x,), (x,), (poisoned,)])
    pipe = Pipeline(spec, PipelineConfig(until="convert")).run()
    err = pipe.results["calibrate"].error
    assert err.stage == "calibrate" and "calibration batch 2 input 0 has 1 NaN/Inf" in err.message
    assert "convert" not in pipe.results  # no NaN scale flows on


class NothingToQuantize(nn.Module):
    def forward(self, x):
        return x.transpose(0, 1).flip(0)


@pytest.mark.e2e
@pytest.mark.parametrize("flow_name", ["fx", "pt2e"])
def test_a_model_with_nothing_to_quantize_runs_and_says_so(flow_name):
    x = torch.randn(3, 4)
    pipe = Pipeline(ModelSpec("plain", NothingToQuantize(), (x,)), PipelineConfig(flow=flow_name)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    for stage in ("convert", "capture", "edge", "delegate", "fuse", "emit"):
        assert "no quantized patterns: nothing in this graph is quantized" in pipe.results[stage].notes
    assert pipe.numerics()["float_vs_runtime_sqnr_db"] == float("inf")


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/quantviz-pwned",))


def test_a_pickle_inside_a_pt2_archive_is_refused_without_running_it(tmp_path):
    if os.path.exists("/tmp/quantviz-pwned"):
        os.remove("/tmp/quantviz-pwned")
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(evil, "w") as z:  # what torch.save writes: a zip with a pickle in it
        z.writestr("evil/data.pkl", pickle.dumps(Boom()))
        z.writestr("evil/version", "3\n")
    with pytest.raises(LoadError, match="not a readable exported program"):
        load_model(str(evil))
    assert not os.path.exists("/tmp/quantviz-pwned")
    out = cli("run", str(evil))
    assert out.returncode == 1 and "Traceback" not in out.stderr


def test_a_50k_node_graph_opens_collapsed():
    plan = plan_view(synthetic_graph(50_000))
    assert plan.depth is not None and plan.visible_count <= 300


def test_an_unhelpful_library_error_keeps_its_message_and_gains_stage_and_hint():
    from quantviz.flows import FLOWS

    err = explain("edge", RuntimeError("boom: internal assert at pass_base.cpp:12"),
                  remedy=FLOWS["pt2e"].stage("edge").remedy)
    assert err.stage == "edge" and err.message == "RuntimeError: boom: internal assert at pass_base.cpp:12"
    assert err.hint and "RuntimeError" in err.details


def test_an_unhelpful_error_from_a_stage_is_kept_in_the_pipeline(patch_stage):
    def broken(ctx):
        raise AssertionError("")

    patch_stage("capture", broken)
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(until="capture")).run()
    err = pipe.results["capture"].error
    assert err.message == "AssertionError (the library gave no message)" and "torch.export" in err.hint
    assert pipe.results["convert"].ok  # earlier stages stay


@pytest.mark.e2e
def test_ctrl_c_during_a_stage_exits_promptly_with_one_line(tmp_path):
    # SIGINT back to its default in the child: a runner started in the background (`cmd &`) ignores SIGINT, the
    # child would inherit that, and Python does not install its Ctrl-C handler over an ignored signal
    proc = subprocess.Popen([*CLI, "run", "sample:mobilenet_v2", "--flow", "pt2e", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    deadline = time.time() + 300
    while "[ 3/10]" not in seen and time.time() < deadline:  # interrupt once calibration starts
        seen += proc.stdout.read(1)
    proc.send_signal(signal.SIGINT)
    t = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t < 30
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "quantviz: interrupted; the stages that finished are in the output folder"
    assert "Traceback" not in err
    assert (tmp_path / "summary.json").exists()
