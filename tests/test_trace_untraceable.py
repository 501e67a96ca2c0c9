"""fx tracing finds every helper function and module it cannot follow in ONE run; ``skip_untraceable`` wraps the
helpers (the convolutions around them are still quantized) and skips only the modules whose own forward branches."""
from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.fx import _symbolic_trace
from torch.nn import functional as F

from quantviz import Pipeline, PipelineConfig
from quantviz.graph.patterns import node_op
from quantviz.model_spec import ModelSpec
from quantviz.untraceable import find_untraceable, leaf_functions

REPO = Path(__file__).resolve().parents[1]
N_CONVS = 12


def pad_same(x, kernel_size, stride, dilation=1):
    in_height = int(x.shape[-2]); in_width = int(x.shape[-1])  # noqa: E702 - fails under symbolic tracing
    pad_h = max((math.ceil(in_height / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - in_height, 0)
    pad_w = max((math.ceil(in_width / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - in_width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class Conv2dSame(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(pad_same(x, self.kernel_size[0], self.stride[0]), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)


class Gate(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # control flow on a tensor value in the module's own forward
            return x * 0.5
        return x


class ShapeGate(nn.Module):
    """Branches on a shape: not symbolically traceable either, but torch.export specialises it (``Gate`` cannot be
    exported at all, so the whole flow runs with this one)."""

    def forward(self, x):
        if x.shape[-1] > 4:
            return x * 0.5
        return x


class PadSameNet(nn.Module):
    def __init__(self, gate: nn.Module | None = None) -> None:
        super().__init__()
        self.convs = nn.ModuleList(Conv2dSame(3 if i == 0 else 8, 8, 3, 2 if i in (3, 7) else 1)
                                   for i in range(N_CONVS))
        self.gate = gate or Gate()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            if i == 5:
                x = self.gate(x)
        return self.fc(x.mean((2, 3)))


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(inspect.getsource(sys.modules[__name__]).splitlines(), 1) if text in line)


PAD_LINE, GATE_LINE = line_of("in_height = int(x.shape[-2])"), line_of("if x.sum() > 0:")


def make_spec(gate: nn.Module | None = None) -> ModelSpec:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(1, 3, 17, 17, generator=gen),) for _ in range(5)]
    return ModelSpec(name="pad_same_net", model=PadSameNet(gate).eval(), example_inputs=batches[0],
                     calibration_batches=batches[:3], eval_batches=[(b, None) for b in batches[3:]])


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return make_spec()


def registry() -> set:
    return set(_symbolic_trace._wrapped_fns_to_patch)


def pad_same_registered() -> bool:
    return any(ns.get(name) is pad_same for (_, name), ns in _symbolic_trace._wrapped_fns_to_patch.items())


def test_the_finder_traces_until_it_succeeds_and_records_each_site(spec):
    found = find_untraceable(spec.model)
    assert [(s.action, s.name) for s in found.sites] == [("wrap", "pad_same"), ("skip", "gate")]
    wrap, skip = found.sites
    assert (wrap.module, wrap.module_class, wrap.function) == ("convs.0", "Conv2dSame", f"{__name__}.pad_same")
    assert wrap.line == PAD_LINE and wrap.file == __file__ and wrap.reason.startswith("TypeError: int()")
    assert wrap.callers == [f"convs.{i}" for i in range(N_CONVS)]
    assert (skip.module, skip.module_class, skip.line) == ("gate", "Gate", GATE_LINE)
    assert skip.reason.startswith("TraceError") and skip.callers == []
    assert found.fixable and found.skipped == ("gate",) and found.traces == 3
    assert json.loads(json.dumps([s.to_dict() for s in found.sites]))[0]["callers"][-1] == "convs.11"
    calls = [n for n in found.graph_module.graph.nodes if n.op == "call_function" and n.target is pad_same]
    assert len(calls) == N_CONVS and not any(n.meta.get("is_wrapped") for n in calls)
    assert not pad_same_registered()


def test_without_the_flag_one_error_lists_every_site_and_the_fix(spec):
    pipe = Pipeline(spec, PipelineConfig(flow="fx")).run()
    assert list(pipe.results) == ["trace"]
    err = pipe.results["trace"].error
    assert err.fix == {"skip_untraceable": True} and "--skip-untraceable" in err.hint
    assert err.message.startswith("2 places are not symbolically traceable")
    assert f"helper function 'pad_same' (called from module 'convs.0' (Conv2dSame), called in {N_CONVS} place(s)) " \
           f"at test_trace_untraceable.py:{PAD_LINE}" in err.message
    assert f"module 'gate' (Gate) at test_trace_untraceable.py:{GATE_LINE}: if x.sum() > 0:" in err.message
    assert "would be wrapped as a leaf call" in err.message and "would be skipped, stays float" in err.message
    assert "int() argument must be" in err.message and "cannot be used as inputs to control flow" in err.message
    assert err.metrics == {"wrapped_functions": 1, "skipped_modules": 1}
    assert err.details.count("Traceback") == 2
    assert not pad_same_registered()


def test_one_run_quantizes_the_convolutions_and_leaves_no_wrap_registered(spec):
    pipe = Pipeline(spec, PipelineConfig(flow="fx", skip_untraceable=True, until="convert")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    trace, prepare = pipe.results["trace"], pipe.results["prepare"]
    sites = trace.diagnostics.untraceable
    assert [(s.action, s.name) for s in sites] == [("wrap", "pad_same"), ("skip", "gate")]
    assert any("wrapped helper function 'pad_same'" in n and f"{N_CONVS} place(s)" in n for n in trace.notes)
    assert any("skipped module 'gate' (Gate)" in n for n in trace.notes)
    calls = "\n".join(trace.calls)
    assert f"(vars(importlib.import_module({__name__!r})), 'pad_same')" in calls
    assert "with leaf_functions(leaf_entries):" in calls and "SkippingTracer(('gate',))" in calls
    calls = "\n".join(prepare.calls)
    assert "set_non_traceable_module_names(['gate'])" in calls
    assert "qconfig_mapping.set_module_name('gate', None)" in calls
    assert "with leaf_functions(leaf_entries):" in calls
    # the convolutions: fed by a dequantize, feeding a quantize
    convert = pipe.results["convert"].graph
    convs = [n for n in convert.nodes if n.kind == "float_op" and node_op(n) == "conv2d"]
    quantized = [p for p in convert.patterns if p.op == "conv2d" and p.input_dqs and p.output_q]
    assert len(convs) == N_CONVS and len(quantized) >= 0.9 * N_CONVS
    # the gate alone stays float, as a call of the float module
    assert [n.target for n in convert.nodes if n.op == "call_module" and n.module_type == "Gate"] == ["gate"]
    assert not any("gate" in (p.module_path or "") for p in convert.patterns)
    assert not pad_same_registered()
    # a second run adds nothing to torch.fx's registry (the first may import torch modules that register their own)
    before = registry()
    Pipeline(spec, PipelineConfig(flow="fx", skip_untraceable=True, until="convert")).run()
    assert registry() == before


def test_leaf_functions_is_scoped_and_keeps_entries_it_did_not_add():
    before = dict(_symbolic_trace._wrapped_fns_to_patch)
    entries = [(globals(), "pad_same")]
    with leaf_functions(entries):
        assert pad_same_registered()
        with leaf_functions(entries):  # nested: the inner block does not remove the outer block's entry
            pass
        assert pad_same_registered()
        gm = torch.fx.symbolic_trace(Conv2dSame(3, 4, 3))  # compiling its code calls wrap() again
    assert dict(_symbolic_trace._wrapped_fns_to_patch) == before
    assert any(n.target is pad_same for n in gm.graph.nodes)


def test_a_helper_imported_into_the_layer_module_is_wrapped_where_it_is_called(tmp_path, monkeypatch):
    (tmp_path / "qv_helpers_x.py").write_text(
        "import torch.nn.functional as F\n"
        "def pad_to_even(x):\n"
        "    if x.shape[-1] % 2:\n"
        "        return F.pad(x, [0, 1, 0, 1])\n"
        "    return x\n")
    (tmp_path / "qv_layers_x.py").write_text(
        "import torch\n"
        "from qv_helpers_x import pad_to_even as pad\n"
        "class Layer(torch.nn.Conv2d):\n"
        "    def forward(self, x):\n"
        "        return super().forward(pad(x))\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a, self.b = Layer(3, 4, 3), Layer(4, 4, 3)\n"
        "    def forward(self, x):\n"
        "        return self.b(self.a(x))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    layers = importlib.import_module("qv_layers_x")
    found = find_untraceable(layers.Net())
    assert [(s.action, s.function, s.callers) for s in found.sites] == \
        [("wrap", "qv_helpers_x.pad_to_even", ["a", "b"])]
    assert {(ns["__name__"], name) for ns, name in found.leaf_entries} == \
        {("qv_helpers_x", "pad_to_even"), ("qv_layers_x", "pad")}


def test_control_flow_in_the_models_own_forward_has_no_fix():
    class Branchy(nn.Module):
        def forward(self, x):
            return x + 1 if x.sum() > 0 else x

    x = torch.randn(1, 3)
    pipe = Pipeline(ModelSpec(name="branchy", model=Branchy(), example_inputs=(x,), calibration_batches=[(x,)]),
                    PipelineConfig(flow="fx", skip_untraceable=True)).run()
    err = pipe.results["trace"].error
    assert err.message.startswith("the model's forward is not symbolically traceable at test_trace_untraceable.py:")
    assert err.fix == {} and "--flow pt2e" in err.hint


@pytest.mark.e2e
def test_skip_untraceable_runs_to_the_runtime():
    pipe = Pipeline(make_spec(ShapeGate()), PipelineConfig(flow="fx", skip_untraceable=True)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert [(s.action, s.name) for s in pipe.results["trace"].diagnostics.untraceable] == \
        [("wrap", "pad_same"), ("skip", "gate")]
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] > 30
    assert not pad_same_registered()


@pytest.mark.e2e
@pytest.mark.skipif(not (REPO / "sample_models" / "zoo_tf_mobilenet.py").exists(), reason="no zoo_tf_mobilenet yet")
def test_cli_quantizes_the_tf_mobilenet_convolutions(tmp_path):
    out = subprocess.run([str(REPO / ".venv" / "bin" / "quantviz"), "run", "sample:zoo_tf_mobilenet", "--flow", "fx",
                          "--skip-untraceable", "--until", "convert", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(s["action"], s["function"].rsplit(".", 1)[-1]) for s in summary["untraceable"]] == [("wrap", "pad_same")]
    graph = json.loads((tmp_path / "stages" / "04_convert.json").read_text())
    convs = [n for n in graph["nodes"] if n["kind"] == "float_op" and n["target"].endswith("conv2d")]
    quantized = [p for p in graph["patterns"] if p["op"] == "conv2d" and p["input_dqs"] and p["output_q"]]
    assert len(convs) == len(summary["untraceable"][0]["callers"]) and len(quantized) >= 0.9 * len(convs)
