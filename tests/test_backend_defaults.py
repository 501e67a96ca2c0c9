"""Defaults that work on every backend: a value a backend needs (``Backend.defaults``: Arm's passes cannot run the
export guards, Vulkan's quantized convolution takes per-channel weights only) is applied where the config keeps
PipelineConfig's default, and shown: a note on the stage that reads it, its API calls, reproduce.py."""
import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.backends import BACKENDS
from quantviz.flows import with_backend_defaults
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
