"""Every stage failure keeps its real cause: chained exceptions, library log lines, the failing fx node (name,
target, inputs, module, source line), and the hint's config change as data (StageError.fix)."""
import inspect
import logging
import textwrap
from types import SimpleNamespace

import pytest
import torch
from torch import fx, nn

from quantviz import ModelSpec, Pipeline, PipelineConfig, StageError, load_model
from quantviz.backends import normalize
from quantviz.failure_site import find_failure_site, rerun_under_interpreter
from quantviz.flows import flow_of
from quantviz.known_issues import explain


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` that records each node's source line (module stacks are always recorded)."""
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    return fx.GraphModule(model, tracer.trace(model))


def line_of(obj, text: str) -> int:
    """The file line number of the first line of ``obj``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(obj)
    return start + next(i for i, line in enumerate(lines) if text in line)


# -- (a) a failure inside an fx graph names the node, its module and its source line ----------------------------
class Mixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 4))

    def forward(self, x):
        return torch.matmul(x, self.w)  # fails when x's last dimension is not 8


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.ReLU(), Mixer())

    def forward(self, x):
        return self.blocks(x)


MATMUL_LINE = line_of(Mixer, "torch.matmul(x, self.w)")


@pytest.mark.parametrize("how", ["interpreter", "generated forward"])
def test_a_failure_inside_an_fx_graph_names_the_node_module_and_line(how):
    gm = symbolic_trace(Net().eval())
    bad = torch.randn(2, 5)
    with pytest.raises(RuntimeError) as info:
        fx.Interpreter(gm).run(bad) if how == "interpreter" else gm(bad)
    site = find_failure_site(info.value)
    assert site is not None
    assert site.node == "matmul" and site.op == "call_function" and site.target == "matmul"
    assert site.module == "blocks.1" and site.module_type == "Mixer"
    assert site.source == f"test_failure_causes.py:{MATMUL_LINE}: return torch.matmul(x, self.w)  " \
                          "# fails when x's last dimension is not 8"
    assert site.inputs == ["blocks_0: (2, 5) float32", "blocks_1_w: (8, 4) float32"]  # the runtime values
    # the interpreter's frame holds the node; torch strips the generated forward's traceback: re-run node by node
    assert site.during == ("interpreter Interpreter" if how == "interpreter" else "")
    assert rerun_under_interpreter(gm, (bad,), info.value).node == "matmul"
    assert rerun_under_interpreter(gm, (torch.randn(2, 8),)) is None  # runs: nothing to report


def test_explain_puts_the_node_in_the_message_of_a_library_error():
    gm = symbolic_trace(Net().eval())
    with pytest.raises(RuntimeError) as info:
        gm(torch.randn(2, 5))
    err = explain("convert", info.value)
    assert err.message.startswith("RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x5 and 8x4)")
    assert err.message.endswith(f"(at node 'matmul' in module 'blocks.1' (Mixer) at "
                                f"test_failure_causes.py:{MATMUL_LINE}: return torch.matmul(x, self.w)  "
                                "# fails when x's last dimension is not 8)")
    assert err.site.node == "matmul"
    assert err.to_dict()["site"]["module"] == "blocks.1"


# -- (b) chained exceptions: the innermost real cause is in the message ------------------------------------------
def raise_chained():
    try:
        raise RuntimeError("t() expects a tensor with <= 2 dimensions, but self is 3D")
    except RuntimeError as inner:
        raise Exception("An error occurred when running the 'ConvertToLinearPass' pass after the following "
                        "passes: []") from inner


def test_a_pass_wrapper_error_names_the_pass_and_the_inner_cause():
    with pytest.raises(Exception) as info:
        raise_chained()
    err = explain("emit", info.value)
    assert err.message == "ConvertToLinearPass failed: RuntimeError: t() expects a tensor with <= 2 dimensions, " \
                          "but self is 3D"
    assert err.causes == ["Exception: An error occurred when running the 'ConvertToLinearPass' pass after the "
                          "following passes: []",
                          "RuntimeError: t() expects a tensor with <= 2 dimensions, but self is 3D"]
    assert "The above exception was the direct cause" in err.details  # the whole chain stays in details


def test_any_wrapper_names_its_cause_and_an_incidental_lookup_context_is_dropped():
    def lookup():
        try:
            {}["weight"]
        except KeyError:
            raise ValueError("weight is not quantized")  # noqa: B904 - an implicit __context__: the KeyError

    try:
        try:
            lookup()
        except ValueError as exc:
            raise RuntimeError("lowering failed") from exc
    except RuntimeError as exc:
        err = explain("delegate", exc, PipelineConfig(flow="pt2e", partitioner="xnnpack"),
                      flow_of(PipelineConfig(flow="pt2e")).stage("delegate").remedy)
    assert err.message == "RuntimeError: lowering failed; caused by ValueError: weight is not quantized"
    assert err.causes == ["RuntimeError: lowering failed", "ValueError: weight is not quantized"]  # no KeyError
    assert err.fix == {"partitioner": "none"} and "--partitioner none" in err.hint


def test_a_stage_error_keeps_its_words_and_gains_its_causes():
    try:
        try:
            raise OSError("disk full")
        except OSError as exc:
            raise StageError("emit", "could not write the program", "free some space") from exc
    except StageError as exc:
        err = explain("emit", exc)
    assert err.message == "could not write the program" and err.causes == ["OSError: disk full"]


def test_library_log_lines_during_a_failing_stage_are_kept(patch_stage):
    import quantviz.pipeline as pipeline_mod

    def broken(ctx):
        logging.getLogger("executorch.exir.fake").error("the backend rejected %s", "aten.t.default")
        logging.getLogger("torch._subclasses.fake").warning("meta kernel missing")
        logging.getLogger("torch._subclasses.fake").info("not kept: below WARNING")
        logging.getLogger("myapp").error("not kept: not a library logger")
        raise RuntimeError("boom")

    patch_stage("capture", broken)
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(until="capture")).run()
    err = pipe.results["capture"].error
    assert err.log == ["ERROR executorch.exir.fake: the backend rejected aten.t.default",
                       "WARNING torch._subclasses.fake: meta kernel missing"]
    assert err.to_dict()["log"] == err.log
    assert not any(isinstance(h, pipeline_mod._LogLines) for h in logging.getLogger("torch").handlers)


# -- report 2: an op inside the model fails on an index tensor; the calibration data is fine ----------------------
class WindowAttention(nn.Module):
    def __init__(self, dim: int = 16, ws: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.ws, self.heads = ws, heads
        self.table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        self.register_buffer("coords", coords)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        rel = self.coords[:, :, None] - self.coords[:, None, :]
        index = (rel[0] + self.ws - 1) * (2 * self.ws - 1) + rel[1] + self.ws - 1
        bias = self.table[index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) + bias).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Windowed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Linear(16, 16), WindowAttention())

    def forward(self, x):
        return self.blocks(x)


def test_an_op_failing_on_an_index_tensor_at_calibrate_is_named_not_blamed_on_the_data():
    torch.manual_seed(0)
    spec = ModelSpec("windowed", Windowed().eval(), (torch.randn(2, 16, 16),),
                     calibration_batches=[(torch.randn(2, 16, 16),) for _ in range(2)])
    err = Pipeline(spec, PipelineConfig(flow="pt2e", until="calibrate")).run().results["calibrate"].error
    index_line = line_of(WindowAttention, "bias = self.table[index.view(-1)]")
    add_line = line_of(WindowAttention, "index = (rel[0] + self.ws - 1)")
    assert err.message.startswith("calibration batch 0 failed inside the prepared model: IndexError: tensors used "
                                  "as indices must be long, int, byte or bool tensors, at node 'index' in module "
                                  f"'blocks.1' (WindowAttention) at test_failure_causes.py:{index_line}: ")
    assert err.site.inputs == ["blocks_1_table: (49, 2) float32", "view: (256,) float32"]  # runtime dtypes
    assert err.site.dtype_drift.startswith(f"node 'add' (aten.add.Tensor, test_failure_causes.py:{add_line}: ")
    assert "computes float32 where the traced graph has int64" in err.site.dtype_drift
    assert "calibration data matches" in err.hint and "check the calibration data" not in err.hint.lower()
    assert "_convert_scalars_to_attrs" in err.hint and err.fix == {"keep_integer_scalars": True}
    fixed = Pipeline(spec, PipelineConfig(flow="pt2e", until="calibrate", **err.fix)).run()
    assert fixed.ok and "keep_integer_scalars" in "\n".join(fixed.results["prepare"].calls)  # the remedy works


# -- (c) report 3: a NaN weight is named, the calibration data is not blamed -------------------------------------
class ConvBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(*[ConvBlock() for _ in range(5)])

    def forward(self, x):
        return self.blocks(self.stem(x))


def test_a_nan_weight_is_named_at_calibrate_without_the_calibration_data_hint():
    model = ConvNet().eval()
    with torch.no_grad():
        model.blocks[3].conv.weight[0, 0, 0, 0] = float("nan")
    err = Pipeline(ModelSpec("nan_weight", model, (torch.randn(1, 3, 8, 8),)),
                   PipelineConfig(until="calibrate")).run().results["calibrate"].error
    assert err.message.startswith("parameter 'blocks.3.conv.weight' has 1 NaN value(s):")
    assert "fix the model's weights" in err.hint
    assert "calibration data" not in (err.message + err.hint).lower()


class InfGain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("gain", torch.tensor([float("inf")]))  # buffers may hold inf (masks): not refused
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return self.conv(x * self.gain)


def test_an_observer_failing_on_non_finite_values_names_the_buffer_that_made_them():
    err = Pipeline(ModelSpec("inf_gain", InfGain().eval(), (torch.randn(1, 3, 4, 4),)),
                   PipelineConfig(flow="fx", until="calibrate")).run().results["calibrate"].error
    assert err.message.startswith("buffer 'gain' has 1 infinite value(s) (calibration batch 0 failed: "
                                  "RuntimeError: torch.histc: range of [")
    assert err.causes[-1].startswith("RuntimeError: torch.histc: range of [")
    assert err.site is not None and err.site.during.startswith("observer 'activation_post_process_")
    assert "calibration data" not in err.hint


# -- (d) calibration data of another shape: the data hint, before anything runs ----------------------------------
def test_calibration_batch_of_another_shape_gets_the_data_hint_before_running():
    x = torch.randn(1, 3, 8, 8)
    spec = ModelSpec("shapes", ConvNet().eval(), (x,), calibration_batches=[(x,), (torch.randn(2, 3, 8, 8),)])
    pipe = Pipeline(spec, PipelineConfig(until="prepare")).run()
    observed = pipe.results["prepare"].artifact
    calls = []
    forward = observed.forward
    observed.forward = lambda *a: calls.append(a) or forward(*a)
    pipe.run(until="calibrate")
    err = pipe.results["calibrate"].error
    assert err.message == "calibration batch 1 input 0 is (2, 3, 8, 8) float32, the example input is (1, 3, 8, 8) " \
                          "float32"
    assert err.hint.startswith("check the calibration data: every batch must have the example inputs' shapes")
    assert calls == []  # checked before the first batch ran


def test_calibration_batch_of_another_dtype_or_count_gets_the_data_hint():
    from quantviz.stages.calibrate import check_batches_match

    x = torch.randn(1, 3)
    with pytest.raises(StageError, match=r"calibration batch 0 input 0 is \(1, 3\) float16, the example input is "
                                         r"\(1, 3\) float32"):
        check_batches_match((x,), [(x.half(),)], "calibrate")
    with pytest.raises(StageError, match="calibration batch 1 has 2 input"):
        check_batches_match((x,), [(x,), (x, x)], "calibrate")


# -- (e) the fix as data, printed as flags ------------------------------------------------------------------------
def fake_failed_pipe(config: PipelineConfig, error: StageError, name: str = "conv_add"):
    result = SimpleNamespace(error=error, name=error.stage, ok=False)
    from quantviz.measure.run_numerics import RunNumerics

    return SimpleNamespace(numerics=RunNumerics, failed=result, config=config, spec=SimpleNamespace(name=name),
                           results={error.stage: result}, result_of=lambda role: None)


@pytest.mark.parametrize("fix, flags", [
    ({"fusion": "quantviz"}, "--flow pt2e --backend xnnpack --fusion quantviz"),
    ({"skip_modules": ("pad",)}, "--flow pt2e --backend xnnpack --skip-module pad"),
    ({"partitioner": "none"}, "--flow pt2e --backend xnnpack --partitioner none"),
])
def test_a_fix_prints_as_flags_in_the_stderr_paragraph(capsys, monkeypatch, fix, flags):
    from quantviz.cli import _finish

    err = StageError("emit", "it failed", "try this", fix=fix, causes=["RuntimeError: inner"],
                     log=["WARNING torch.x: chatter", "ERROR executorch.y: the backend said no"])
    # a pipeline's config is normalized (quantviz.backends.normalize: --partitioner xnnpack is --backend xnnpack)
    config = normalize(PipelineConfig(flow="pt2e", partitioner="xnnpack"))
    code = _finish(fake_failed_pipe(config, err), "sample:conv_add")
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == ["quantviz: stage 'emit' failed: it failed. Hint: try this",
                     "  cause: RuntimeError: inner",
                     "  logged: ERROR executorch.y: the backend said no",
                     f"  try: quantviz run sample:conv_add {flags}"]


def test_known_and_generic_hints_carry_their_fix():
    missing = RuntimeError("Missing out variants: {'quantized_decomposed::add_relu'}")
    assert explain("emit", missing).fix == {"fusion": "quantviz"}
    run_remedy = flow_of(PipelineConfig()).stage("run").remedy
    prepare_remedy = flow_of(PipelineConfig(flow="pt2e")).stage("prepare").remedy
    differs = Pipeline(None, PipelineConfig()).runs_differently
    assert run_remedy.fix_for(PipelineConfig(backend="xnnpack"), differs) == {"partitioner": "none"}
    # nothing is delegated by default, so --partitioner none would change nothing: the next suggestion
    assert run_remedy.fix_for(PipelineConfig(), differs) == {"fusion": "none"}
    assert prepare_remedy.fix_for(PipelineConfig(flow="pt2e")) == {"flow": "fx"}
    assert StageError("x", "m", "h", fix={"skip_modules": ("a", "b")}).to_dict()["fix"] == {"skip_modules": ["a", "b"]}


def test_the_app_offers_the_fix_as_a_button_that_sets_the_sidebar_keys():
    from streamlit.testing.v1 import AppTest

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).resolve().parents[1])!r})
        from types import SimpleNamespace
        from quantviz import PipelineConfig, StageError
        from quantviz.failure_site import FailureSite
        from ui.stage_page import error_panel

        site = FailureSite("index", "call_function", "aten.index.Tensor", ["view: (256,) float32"],
                           "blocks.1", "WindowAttention", "model.py:16: bias = table[index]", "")
        err = StageError("calibrate", "it failed", "skip it", details="Traceback (most recent call last): ...",
                         fix={{"skip_modules": ("pad", "blocks.1"), "flow": "fx"}}, causes=["IndexError: bad"],
                         log=["ERROR torch.x: said no"], site=site)
        pipe = SimpleNamespace(results={{"calibrate": SimpleNamespace(error=err)}},
                               config=PipelineConfig(flow="pt2e", skip_modules=("pad",)))
        error_panel(pipe, "calibrate")
    """)
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, at.exception
    button = next(b for b in at.button if b.label.startswith("Apply"))
    assert button.label == "Apply: --flow fx --skip-module blocks.1"  # only what changes, in field order
    shown = "\n".join(m.value for m in at.markdown)
    assert "`index` = `aten.index.Tensor`" in shown and "`blocks.1` (WindowAttention)" in shown
    assert "`model.py:16: bias = table[index]`" in shown and "`IndexError: bad`" in shown
    assert "ERROR torch.x: said no" in [c.value for c in at.code][0]
    assert "Traceback" not in shown + " ".join(e.value for e in at.error)
    button.click().run()
    assert at.session_state["skip_modules"] == "pad, blocks.1" and at.session_state["flow"] == "fx"


# -- report 1: XNNPACK's ConvertToLinearPass under to_edge + to_backend -------------------------------------------
class TokenAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)

    def forward(self, x):  # x: (B, C, H, W)
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C), not contiguous
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        return self.proj((q @ k.transpose(-2, -1)).softmax(-1) @ v)


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Conv2d(3, 16, 1), TokenAttention())

    def forward(self, x):
        return self.blocks(x)


@pytest.mark.e2e
def test_convert_to_linear_pass_failure_at_delegate_names_the_inner_cause_and_the_linear():
    spec = ModelSpec("tokens", TokenNet().eval(), (torch.randn(1, 3, 4, 4),))
    config = PipelineConfig(flow="pt2e", partitioner="xnnpack", lowering="to_backend", until="delegate")
    err = Pipeline(spec, config).run().results["delegate"].error
    assert err.message.startswith("ConvertToLinearPass failed: RuntimeError: t() expects a tensor with <= 2 "
                                  "dimensions, but self is 3D")
    assert err.causes[-1] == "RuntimeError: t() expects a tensor with <= 2 dimensions, but self is 3D"
    assert err.site.node == "aten_linear_default" and err.site.during == "pass ConvertToLinearPass"
    assert err.site.module == "blocks.1.qkv" and err.site.module_type == "Linear"
    line = line_of(TokenAttention, "self.qkv(tokens)")
    assert err.site.source == f"test_failure_causes.py:{line}: q, k, v = self.qkv(tokens).chunk(3, dim=-1)"
    assert f"in module 'blocks.1.qkv' (Linear) at test_failure_causes.py:{line}" in err.message
    assert any(line.startswith("ERROR torch._subclasses.fake_tensor: failed while attempting to run meta for "
                               "aten.t.default [RuntimeError: t() expects") for line in err.log)
    assert err.fix == {"lowering": "transform_and_lower"} and "--lowering transform_and_lower" in err.hint
    fixed = Pipeline(spec, config.with_changes(**err.fix)).run()
    assert fixed.ok, fixed.failed and fixed.failed.error
