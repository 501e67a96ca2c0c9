"""Defaults that work on every backend: a value a backend needs (``Backend.defaults``: Arm's passes cannot run the
export guards, Vulkan's quantized convolution takes per-channel weights only, XNNPACK's and OpenVINO's partitioners
take the pt2e flow's programs) is applied where the user did not set the field and the config keeps
PipelineConfig's default, and shown: a note on the stage that reads it, its API calls, reproduce.py. A field the user
set (``explicit``: the CLI's flags given, the sidebar's widgets changed) is kept, ``--flow fx`` included."""
import pytest
import torch

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.backends import BACKENDS
from quantviz.bare_flow import bare_steps, run_bare
from quantviz.flows import with_backend_defaults
from quantviz.model_spec import ModelSpec
from quantviz.script import reproduce_script


def test_backend_defaults_apply_only_where_the_flow_reads_the_field_and_the_config_keeps_the_default():
    assert with_backend_defaults(PipelineConfig(flow="pt2e", backend="arm-tosa"))[1] == {"check_guards": False}
    # the default flow (fx) becomes the backend's quantizer's, and then what pt2e reads follows
    assert with_backend_defaults(PipelineConfig(backend="arm-tosa"))[1] == {"flow": "pt2e", "check_guards": False}
    assert with_backend_defaults(PipelineConfig(backend="vulkan"))[1] == {"flow": "pt2e", "per_channel": True}
    assert with_backend_defaults(PipelineConfig(flow="pt2e", backend="vulkan", per_channel=True))[1] == {}
    assert with_backend_defaults(PipelineConfig(flow="pt2e", backend="xnnpack"))[1] == {}
    # XNNPACK's and OpenVINO's partitioners refuse the fx flow's programs: the backend alone runs its quantizer's flow
    assert with_backend_defaults(PipelineConfig(backend="xnnpack"))[1] == {"flow": "pt2e"}
    assert with_backend_defaults(PipelineConfig(partitioner="xnnpack"))[1] == {"flow": "pt2e"}
    assert with_backend_defaults(PipelineConfig(backend="openvino"))[1] == {"flow": "pt2e"}
    assert with_backend_defaults(PipelineConfig(backend="coreml"))[1] == {"flow": "pt2e"}
    assert with_backend_defaults(PipelineConfig(flow="fx", backend="coreml"), {"flow"})[1] == {}
    assert {name for b in BACKENDS.values() for name in b.defaults} <= {"flow", "check_guards", "per_channel"}


@pytest.mark.parametrize("config,explicit,expected", [
    # the user chose fx (`--flow fx --backend xnnpack`): kept, though it is PipelineConfig's default
    (PipelineConfig(flow="fx", backend="xnnpack"), {"flow", "backend"}, ("fx", {})),
    (PipelineConfig(flow="fx", backend="openvino"), {"flow"}, ("fx", {})),
    # fx chosen for Arm: the flow stays, and fx reads no check_guards, so nothing else applies either
    (PipelineConfig(flow="fx", backend="arm-tosa"), {"flow"}, ("fx", {})),
    # per-tensor weights chosen for Vulkan (a sidebar toggle switched off): kept; the flow, not chosen, is applied
    (PipelineConfig(backend="vulkan"), {"per_channel"}, ("pt2e", {"flow": "pt2e"})),
    (PipelineConfig(flow="pt2e", backend="arm-tosa"), {"check_guards"}, ("pt2e", {})),
    # a field the backend declares nothing for changes nothing
    (PipelineConfig(backend="xnnpack"), {"per_channel", "mode"}, ("pt2e", {"flow": "pt2e"})),
])
def test_backend_defaults_leave_the_fields_the_user_chose(config, explicit, expected):
    applied, changes = with_backend_defaults(config, explicit)
    assert (applied.flow, changes) == expected
    assert all(getattr(applied, name) == getattr(config, name) for name in explicit)


def test_a_pipeline_keeps_the_users_choices_through_update_and_fork():
    """``Pipeline(..., explicit=...)``: the faces say what the user set; a config change or a fork (the app's next
    configuration, a what-if) keeps them, and a fork may be told the user's new choices."""
    spec = ModelSpec(name="refuses", model=_Refuses().eval(), example_inputs=(torch.ones(1, 3),))
    pipe = Pipeline(spec, PipelineConfig(flow="fx", backend="xnnpack"), explicit={"flow"})
    assert (pipe.config.flow, pipe.backend_defaults, pipe.explicit) == ("fx", {}, frozenset({"flow"}))
    pipe.update(pipe.config.with_changes(mode="dynamic"))
    assert pipe.config.flow == "fx"
    assert pipe.fork(pipe.config.with_changes(mode="static")).config.flow == "fx"
    other = pipe.fork(PipelineConfig(backend="xnnpack"), explicit=frozenset())  # the user's choices, anew: none
    assert (other.config.flow, other.backend_defaults) == ("pt2e", {"flow": "pt2e"})
    assert Pipeline(spec, PipelineConfig(backend="xnnpack")).config.flow == "pt2e"  # the Python face: none given
    assert bare_steps(PipelineConfig(backend="xnnpack"))[0] == "trace"  # pt2e's torch.export
    assert bare_steps(PipelineConfig(backend="xnnpack"), {"flow"})[0] == "prepare"  # fx's prepare_fx
    assert run_bare(spec, PipelineConfig(backend="xnnpack"), explicit={"flow"}).config.flow == "fx"


@pytest.mark.e2e
@pytest.mark.parametrize("backend,name,value,call", [
    ("arm-tosa", "check_guards", False, "ep.module(check_guards=False)"),
    ("vulkan", "per_channel", True, "is_per_channel=True"),
])
def test_default_flags_get_past_prepare_and_delegate_on_mobilenet_v2(backend, name, value, call):
    """``--backend arm-tosa`` / ``--backend vulkan`` and nothing else: the backend's quantizer (pt2e) with what it
    needs, each change said on the stage that reads it."""
    pipe = Pipeline(load_model("sample:mobilenet_v2"), PipelineConfig(backend=backend, until="delegate")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.backend_defaults == {"flow": "pt2e", name: value} and pipe.flow.name == "pt2e"
    assert any(n.startswith(f"flow='pt2e' applied: the {backend} backend needs it") for n in pipe.results["trace"].notes)
    prepare = pipe.results["prepare"]
    assert any(n.startswith(f"{name}={value!r} applied: the {backend} backend needs it") for n in prepare.notes)
    assert call in "\n".join(prepare.calls)
    assert call in reproduce_script("sample:mobilenet_v2", pipe)
    delegate = pipe.results["delegate"].graph
    assert sum(n.kind == "delegate" for n in delegate.nodes) >= 1  # the backend took part of the model


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["xnnpack", "openvino"])
def test_xnnpack_and_openvino_alone_reach_the_runtime_on_mobilenet_v2_under_their_default_flow(backend):
    """``--backend xnnpack`` / ``--backend openvino`` and nothing else: the fx flow's program is refused by their
    partitioners on MobileNetV2 (``--flow fx`` given still runs it: test_known_issue_hints); their declared flow,
    pt2e, delegates the whole model and runs it, said on the trace stage and written in reproduce.py."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    pipe = Pipeline(load_model("sample:mobilenet_v2"), PipelineConfig(backend=backend)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.backend_defaults == {"flow": "pt2e"} and pipe.flow.name == "pt2e" and pipe.config.flow == "pt2e"
    assert any(n.startswith(f"flow='pt2e' applied: the {backend} backend needs it") for n in pipe.results["trace"].notes)
    assert "prepare_pt2e(" in "\n".join(pipe.results["prepare"].calls)
    assert "prepare_pt2e(" in reproduce_script("sample:mobilenet_v2", pipe)
    delegate = pipe.results["delegate"].graph
    assert sum(n.kind == "delegate" for n in delegate.nodes) >= 1
    assert pipe.numerics().float_vs_runtime_sqnr_db > 35  # docs/backends.md: 43.0 (XNNPACK), 43.5 dB (OpenVINO)


class _Refuses(torch.nn.Module):
    """A model torch.export cannot capture: the bare calls stop at their first step, in milliseconds."""

    def forward(self, x):
        raise RuntimeError("not traced")


@pytest.mark.parametrize("backend,expected", [
    ("arm-tosa", {"flow": "pt2e", "check_guards": False}),
    ("vulkan", {"flow": "pt2e", "per_channel": True}),
])
def test_the_bare_calls_run_the_backend_defaults_the_pipeline_runs(backend, expected):
    """``--backend arm-tosa`` alone: the bare side runs what quantviz runs (pt2e, no guards), not the fx flow the
    config names, so a parity row compares the same configuration (it once compared fx with pt2e)."""
    spec = ModelSpec(name="refuses", model=_Refuses().eval(), example_inputs=(torch.ones(1, 3),))
    config = PipelineConfig(backend=backend)
    bare = run_bare(spec, config)
    assert bare.backend_defaults == expected == Pipeline(spec, config).backend_defaults
    assert bare.config == with_backend_defaults(config)[0] and bare.config.flow == "pt2e"
    assert (bare.ok, bare.failed_step, bare.absent) == (False, "trace", "")  # pt2e's first bare call: torch.export
    assert bare_steps(config)[:3] == ("trace", "prepare", "calibrate")
    as_given = run_bare(spec, config, apply_backend_defaults=False)  # the config exactly as given: fx
    assert as_given.config == config and as_given.backend_defaults == {} and as_given.failed_step == "prepare"


def test_sweep_cells_and_recover_sessions_keep_the_flags_given():
    """``quantviz sweep --flow fx,pt2e --backend xnnpack``: each cell carries the fields its flags set, so its fx cell
    runs fx; ``quantviz recover --flow fx --backend xnnpack``: the base and every trial keep fx; without ``--flow``
    both run XNNPACK's pt2e (a worker's kept pipelines are matched against the config that will run)."""
    from quantviz.recover.evaluate import Session
    from quantviz.reuse import PipelineCache
    from quantviz.sweep.grid import build_grid

    cells = build_grid(["sample:conv_add"], {"flow": ["fx", "pt2e"], "backend": ["xnnpack"]})
    assert [(c.config.flow, "flow" in c.explicit) for c in cells] == [("fx", True), ("pt2e", True)]
    assert "flow" not in build_grid(["sample:conv_add"], {"backend": ["xnnpack"]})[0].explicit
    spec, cache = load_model("sample:conv_add"), PipelineCache()
    fx = cache.start(spec, "sample:conv_add", cells[0].config.with_changes(until="trace"), cells[0].explicit)[0]
    assert fx.config.flow == "fx" and fx.explicit >= {"flow"}
    cache.keep_pipeline("sample:conv_add", fx.run())
    pt2e, reused, _ = cache.start(spec, "sample:conv_add", PipelineConfig(backend="xnnpack", until="trace"))
    assert pt2e.config.flow == "pt2e" and reused == []  # fx's trace is not pt2e's
    assert Session("sample:conv_add", PipelineConfig(backend="xnnpack"), explicit={"flow"}).base_config.flow == "fx"
    assert Session("sample:conv_add", PipelineConfig(backend="xnnpack")).base_config.flow == "pt2e"
