"""Defaults that work on every backend: a value a backend needs (``Backend.defaults``: Arm's passes cannot run the
export guards, Vulkan's quantized convolution takes per-channel weights only) is applied where the config keeps
PipelineConfig's default, and shown: a note on the stage that reads it, its API calls, reproduce.py."""
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
    assert with_backend_defaults(PipelineConfig(backend="xnnpack"))[1] == {}  # fx to XNNPACK stays fx
    assert {name for b in BACKENDS.values() for name in b.defaults} <= {"flow", "check_guards", "per_channel"}


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
