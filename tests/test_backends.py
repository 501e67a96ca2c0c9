"""Every backend that lowers here, each one file (quantviz/backends/<name>.py): its quantizer and partitioner, and
numbers wherever this machine can give them (the runtime; the TOSA reference model; Vela's report; or, for Vulkan
and Core ML, "no runtime here", which is not a failure). A wrong op planted in a TOSA delegate is named by the blame
table; Arm's passes that fail on torch's guard submodule are named with the pass and their remedy."""
import copy

import pytest
import torch
from torch import nn

from quantviz import ModelSpec, Pipeline, PipelineConfig, load_model
from quantviz.backends import BACKENDS, backend_of, require_backend
from quantviz.backends.base import Requirement
from quantviz.bare_flow import run_bare
from quantviz.config import ConfigError
from quantviz.numerics.compare import compare


def test_every_backend_is_one_record_with_what_it_needs():
    assert set(BACKENDS) == {"portable", "xnnpack", "arm-tosa", "ethos-u", "openvino", "vulkan", "coreml"}
    for name, b in BACKENDS.items():
        assert b.name == name and b.description
        assert b.numbers in ("runtime", "reference-model", "report", "none")
        if b.numbers != "runtime":
            assert b.numbers_note, name
        if b.numbers == "reference-model":
            assert b.reference_dispatch is not None and b.reference_name
        assert (b.partitioner is None) == (name == "portable")
    assert BACKENDS["openvino"].convert_options == {"fold_quantize": False}
    assert BACKENDS["vulkan"].compile_options == {"_skip_dim_order": False}


def test_a_missing_package_answers_with_the_pip_command(monkeypatch):
    import dataclasses

    from quantviz import backends

    fake = dataclasses.replace(BACKENDS["openvino"], requires=(Requirement("no_such_module_qv", "pip install x"),))
    monkeypatch.setitem(backends.BACKENDS, "openvino", fake)
    with pytest.raises(ConfigError, match="needs the Python package 'no_such_module_qv'.*pip install x"):
        require_backend(PipelineConfig(flow="pt2e", backend="openvino"))


def test_int16_activations_need_a_backend_that_has_them():
    from quantviz.flows import flow_of

    with pytest.raises(ConfigError, match=r"activation_bits=16 \(a16w8\) needs a backend that has int16 activations "
                                          r"\(arm-tosa, ethos-u\), not 'xnnpack'"):
        flow_of(PipelineConfig(flow="pt2e", backend="xnnpack", activation_bits=16))
    assert PipelineConfig(flow="pt2e", backend="arm-tosa", activation_bits=16).activation_bits == 16


@pytest.mark.e2e
def test_arm_tosa_runs_on_the_tosa_reference_model_bit_exact_with_the_reference():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e", backend="arm-tosa",
                                                                   per_channel=True)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    run = pipe.results["run"].artifact
    assert "TOSA reference model" in run.executed_by
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] == float("inf")  # bit-exact with the q/dq model
    assert len(run.delegate_checks) == 1 and run.delegate_checks[0].bit_exact
    assert any(n.backend == "TOSABackend" for n in pipe.results["delegate"].graph.nodes if n.kind == "delegate")
    bare = run_bare(load_model("sample:conv_add"), pipe.config)
    assert bare.ok and bare.pte == pipe.pte_bytes()


@pytest.mark.e2e
def test_a_wrong_op_planted_in_a_tosa_delegate_is_named_by_the_blame_table():
    """One delegate per op (--delegate-granularity op); the add's delegate is rebuilt from a subgraph whose add is
    a sub: the run fails as wrong, the per-delegate check names that delegate, and the blame table's first
    divergence is the add."""
    from executorch.backends.arm.tosa.backend import TOSABackend
    from executorch.exir.dialects._ops import ops as exir_ops

    config = PipelineConfig(flow="pt2e", backend="arm-tosa", per_channel=True, delegate_granularity="op")
    pipe = Pipeline(load_model("sample:conv_add"), config).run(until="delegate")
    ep = pipe.results["delegate"].artifact.exported_program()
    lowered = [getattr(ep.graph_module, n.args[0].target) for n in ep.graph.nodes
               if n.op == "call_function" and "call_delegate" in str(n.target)]
    assert len(lowered) == 4  # conv, conv, add, relu
    (target,) = [lm for lm in lowered if any(n.target == exir_ops.edge.aten.add.Tensor
                                             for n in lm.original_module.graph.nodes)]
    bad = copy.deepcopy(target.original_module)
    for n in bad.graph_module.graph.nodes:
        if n.target == exir_ops.edge.aten.add.Tensor:
            n.target = exir_ops.edge.aten.sub.Tensor
    bad.graph_module.recompile()
    target._processed_bytes = TOSABackend.preprocess(bad, target.compile_specs).processed_bytes
    pipe.run()
    assert not pipe.results["run"].ok and "does not match the reference" in pipe.results["run"].error.message
    report = compare(pipe)
    first = next(r for r in report.blame if r.first_divergence)
    assert first.op == "add" and first.runtime_local_max_lsb > 1 and first.runtime_source == "delegate-op"
    assert all(r.runtime_local_max_lsb <= 1 for r in report.blame if r.op.startswith("conv2d"))


@pytest.mark.e2e
def test_ethos_u_gives_velas_report_and_the_reference_model_numbers():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e", backend="ethos-u",
                                                                   per_channel=True)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    run = pipe.results["run"].artifact
    (rep,) = run.report["delegates"]
    assert rep["ops_on_npu"] > 0 and rep["ops_on_cpu"] == 0 and rep["cycles_npu"] > 0
    assert any(note.startswith("Vela (ethos-u55-128)") for note in pipe.results["run"].notes)
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] > 40


@pytest.mark.e2e
def test_openvino_runs_in_the_runtime_here():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e", backend="openvino")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.results["run"].artifact.executed_by == "the ExecuTorch runtime"
    assert "fold_quantize=False" in "\n".join(pipe.results["convert"].calls)
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] > 30


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["vulkan", pytest.param("coreml", marks=pytest.mark.slow)])
def test_backends_without_a_runtime_here_stop_after_emit_and_say_so(backend, tmp_path):
    from quantviz.outputs import write_outputs

    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e", backend=backend,
                                                                   per_channel=True)).run()
    assert pipe.ok and pipe.pte_bytes()
    run = pipe.results["run"]
    assert run.artifact.not_run.startswith("no runtime for this backend on this machine")
    assert set(pipe.numerics()) == {"float_vs_reference_sqnr_db"}
    data = write_outputs(pipe, tmp_path, svg=False, model_explorer=False)
    assert data["ok"] and (tmp_path / "model.pte").is_file()


class PooledHead(nn.Module):
    """conv -> adaptive average pool -> linear: Arm decomposes the pool with a pass that cannot run the guards."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def pooled_spec() -> ModelSpec:
    torch.manual_seed(0)
    batches = [(torch.randn(1, 3, 16, 16),) for _ in range(3)]
    return ModelSpec("pooled", PooledHead().eval(), batches[0], calibration_batches=batches[:2],
                     eval_batches=[(batches[2], None)])


@pytest.mark.e2e
def test_an_arm_pass_that_cannot_run_the_guards_is_named_with_its_remedy():
    """Without the backend's defaults (check_guards=False for Arm) the failure is named with its fix; with them (the
    default) the same config runs, and says what it applied."""
    config = PipelineConfig(flow="pt2e", backend="arm-tosa")
    pipe = Pipeline(pooled_spec(), config, apply_backend_defaults=False).run()
    err = pipe.results["prepare"].error
    assert err is not None and "Pass failed" in err.message and "_guards_fn" in err.message
    assert err.fix == {"check_guards": False}
    assert not run_bare(pooled_spec(), config, apply_backend_defaults=False).ok  # the bare calls fail the same way
    fixed = Pipeline(pooled_spec(), config.with_changes(**err.fix)).run()
    assert fixed.ok, fixed.failed and fixed.failed.error
    assert "check_guards=False" in "\n".join(fixed.results["prepare"].calls)
    assert run_bare(pooled_spec(), fixed.config).ok
    defaults = Pipeline(pooled_spec(), config).run()  # Backend.defaults: the same fix, applied and said
    assert defaults.ok and defaults.config == fixed.config and defaults.backend_defaults == {"check_guards": False}
    assert "check_guards=False" in "\n".join(defaults.results["prepare"].calls)
    assert any(n.startswith("check_guards=False applied: the arm-tosa backend needs it")
               for n in defaults.results["prepare"].notes)


@pytest.mark.e2e
def test_vulkans_per_tensor_conv_assert_is_named_with_its_fix():
    config = PipelineConfig(flow="pt2e", backend="vulkan", until="delegate")
    pipe = Pipeline(load_model("sample:conv_add"), config, apply_backend_defaults=False).run()
    err = pipe.results["delegate"].error
    assert "needs per-channel weight scales" in err.message and err.fix == {"per_channel": True}
    # the hint gets further on the same model (tests/test_known_issue_hints.py lists it)
    fixed = Pipeline(load_model("sample:conv_add"), config.with_changes(**err.fix), apply_backend_defaults=False).run()
    assert fixed.results["delegate"].ok, fixed.failed and fixed.failed.error
    assert sum(n.kind == "delegate" for n in fixed.results["delegate"].graph.nodes) >= 1


@pytest.mark.e2e
def test_quantviz_backends_writes_the_comparison(tmp_path):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "quantviz.cli", "backends", "sample:conv_add", "--backends",
                          "portable,arm-tosa,vulkan", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r["backend"]: r for r in json.loads((tmp_path / "backends.json").read_text())}
    assert set(rows) == {"portable", "arm-tosa", "vulkan"} and all(r["ok"] for r in rows.values())
    assert rows["portable"]["delegates"] == 0 and rows["arm-tosa"]["delegates"] == 1
    assert rows["arm-tosa"]["reference_vs_backend_sqnr_db"] == float("inf")  # bit-exact with its reference
    assert "TOSA reference model" in rows["arm-tosa"]["numbers"]
    assert rows["vulkan"]["numbers"].startswith("no runtime for this backend") and rows["vulkan"]["pte_bytes"] > 0
    assert rows["portable"]["latency_ms"] > 0  # ExecuTorch's runtime ran it here, timed with an ETDump
    assert rows["arm-tosa"]["latency_ms"] is None and "not ExecuTorch's runtime" in rows["arm-tosa"]["latency_spread"]
    assert (tmp_path / "backends.csv").read_text().startswith("backend,ok,quantizer")
    assert "<table>" in (tmp_path / "backends.html").read_text()
    assert "| arm-tosa | ok |" in out.stdout


def layer_norm_spec() -> ModelSpec:
    """Two blocks of LayerNorm -> Linear on tokens: OpenVINOQuantizer observes each LayerNorm's 1-D bias per channel."""
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.fc = nn.LayerNorm(16), nn.Linear(16, 16)

        def forward(self, x):
            return x + self.fc(self.norm(x))

    model = nn.Sequential(Block(), Block()).eval()
    batches = [(torch.randn(1, 8, 16),) for _ in range(3)]
    return ModelSpec("layer_norms", model, batches[0], calibration_batches=batches[:2],
                     eval_batches=[(batches[2], None)])


@pytest.mark.e2e
def test_openvinos_observer_on_every_layer_norm_is_named_and_skipping_them_all_reaches_the_runtime():
    pytest.importorskip("openvino")
    config = PipelineConfig(flow="pt2e", backend="openvino")
    pipe = Pipeline(layer_norm_spec(), config).run()
    err = pipe.results["calibrate"].error
    assert err is not None and "Dimension out of range" in err.message and "'0.norm'" in err.message
    assert "all 2 LayerNorm modules" in err.hint and err.fix == {"skip_modules": ("0.norm", "1.norm")}
    assert not run_bare(layer_norm_spec(), config).ok  # the bare calls fail the same way
    fixed = Pipeline(layer_norm_spec(), config.with_changes(**err.fix)).run()
    assert fixed.ok, fixed.failed and fixed.failed.error
    assert fixed.results["run"].metrics["float_vs_runtime_sqnr_db"] > 20
