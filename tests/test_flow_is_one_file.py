"""A flow is one file: a new flow lists existing stage variants in its own module, and the registry, the config's
options, the CLI's choices and the pipeline take it from there. The toy flow here lives in a temporary package (no
file of the project is touched): pt2e's observer steps without the fuse stage, lowered to the backend its record
declares (``default_backend``: XNNPACK), numbers from the runtime."""
import dataclasses
import importlib
import pkgutil
import sys
import textwrap

import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz import backends, flows
from quantviz.backends import backend_name
from quantviz.config import config_flags
from quantviz.flows import applies_to, choices_of, describe_config, discover, flow_of

TOY = '''
"""toy: pt2e's stages without fusion, a flow made of existing stage variants only."""
from quantviz.config import PipelineConfig
from quantviz.flows.base import Absent, Flow
from quantviz.stages import (calibrate_pt2e, capture, convert_pt2e, delegate, edge, emit, prepare_pt2e, run,
                             trace_export)


def calibrates(config: PipelineConfig) -> bool:
    return config.mode == "static"

FLOW = Flow("toy", "export, prepare_pt2e, calibrate, convert_pt2e, export, lower; nothing fused",
            slots=(trace_export.STAGE, prepare_pt2e.STAGE, calibrate_pt2e.STAGE, convert_pt2e.STAGE, capture.STAGE,
                   edge.STAGE, delegate.STAGE, Absent("fuse", "the toy flow fuses nothing"), emit.STAGE, run.STAGE),
            roles={"float_graph": "trace", "reference": "convert", "delegated": "delegate", "lowered": "delegate",
                   "program": "emit", "runtime": "run"},
            default_backend="xnnpack", calibration=calibrates)
'''

NO_BACKEND = '''
from quantviz.flows.base import Flow
from quantviz.stages import capture, edge, emit, run, trace_export

FLOW = Flow("nowhere", "export and run on a backend that is not one", slots=(trace_export.STAGE, capture.STAGE,
            edge.STAGE, emit.STAGE, run.STAGE), roles={"program": "emit", "runtime": "run"}, default_backend="tpu")
'''

NO_RUNTIME = '''
from quantviz.flows.base import Flow
from quantviz.stages import capture, edge, emit, run, trace_export

FLOW = Flow("quiet", "export and run, with no runtime role", slots=(trace_export.STAGE, capture.STAGE, edge.STAGE,
            emit.STAGE, run.STAGE), roles={"float_graph": "trace", "program": "emit"})
'''


@pytest.fixture
def flow_package(tmp_path, monkeypatch):
    """``flow_package(name, **modules)``: a package ``name`` in ``tmp_path`` with one module per keyword (its
    source), on the import path; the test's end forgets the package and its modules (``sys.modules``)."""
    imported: list[str] = []

    def make(name: str, **modules: str):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        for module, source in modules.items():
            (package / f"{module}.py").write_text(textwrap.dedent(source))
        imported.extend([name, *(f"{name}.{module}" for module in modules)])
        return importlib.import_module(name)

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for key in imported:
        sys.modules.pop(key, None)


@pytest.fixture
def toy(flow_package, monkeypatch):
    monkeypatch.setattr(backends, "FLOW_DEFAULTS", dict(backends.FLOW_DEFAULTS))  # discover registers the toy's
    found = discover(flow_package("toyflows", toy=TOY))
    monkeypatch.setattr(flows, "FLOWS", {**flows.FLOWS, **found})
    return found["toy"]


def test_the_flow_registry_is_the_flow_files():
    files = {m.name for m in pkgutil.iter_modules(flows.__path__)} - {"base"}
    assert set(flows.FLOWS) == files  # one file each, nothing registered elsewhere
    assert list(flows.FLOWS)[:4] == ["fx", "pt2e", "torchao", "recipe"]  # by rank: the observer flows first
    assert {"export_llm", "qat"} <= set(flows.FLOWS)
    # each flow lists its own variants of the shared slots
    assert [s.variant for s in flows.FLOWS["fx"].stages][:4] == ["trace_fx", "prepare_fx", "calibrate_fx",
                                                                  "convert_fx"]
    assert [s.variant for s in flows.FLOWS["pt2e"].stages][:4] == ["trace_export", "prepare_pt2e",
                                                                    "calibrate_pt2e", "convert_pt2e"]


def test_a_toy_flow_from_existing_variants_runs_end_to_end(toy):
    config = PipelineConfig(flow="toy")
    flow_field = next(f for f in dataclasses.fields(PipelineConfig) if f.name == "flow")
    assert flow_of(config) is toy and "toy" in choices_of(flow_field)  # the CLI's, app's and sweep's choices
    # its options are what its stages read: the pt2e quantizer's, no fusion, no torchao scheme
    assert applies_to("check_guards", "toy") and applies_to("calibration_batches", "toy")
    assert not applies_to("fusion", "toy") and not applies_to("scheme", "toy")
    pipe = Pipeline(load_model("sample:conv_add"), config).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert list(pipe.results) == ["trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "emit",
                                  "run"]
    assert "prepare_pt2e" in "\n".join(pipe.results["prepare"].calls)
    # backend="auto" is the backend the toy's record declares (default_backend): XNNPACK takes the program, while
    # the user's choice stays "auto" where it is shown as theirs (summary.json's config, reproduce.py's flags)
    assert backend_name(config) == pipe.backend.name == "xnnpack"
    assert "XnnpackPartitioner()" in "\n".join(pipe.results["delegate"].calls)
    assert pipe.config.backend == "auto" and config_flags(pipe.config) == "--flow toy"
    assert "backend xnnpack, partitioner xnnpack" in describe_config(pipe.config)
    # what the code around a flow asks of it are its record's fields: the toy says it calibrates, in static mode
    assert toy.calibrates(config) and not toy.calibrates(config.with_changes(mode="dynamic"))
    assert pipe.results["run"].artifact.data.calibrated  # the run's data is worded by the toy's own answer
    assert toy.precision(config).activations == "int8" and toy.own_model is None and toy.app_start is None
    numbers = pipe.numerics()  # the run of the flow's "runtime" role
    assert numbers.float_vs_reference_sqnr_db > 20  # quantized, and close to float
    assert numbers.reference_vs_runtime_sqnr_db > 20  # the runtime ran the program it lowered
    # a change to what a stage reads re-runs from that stage (calibrate observes in place: from prepare), not trace
    assert pipe.update(config.with_changes(calibration_batches=2))[:2] == ["prepare", "calibrate"]


def test_a_flow_without_a_runtime_role_is_refused_where_it_is_registered(flow_package):
    """Pipeline.numerics() reads the run of the stage playing ``runtime``: a flow that forgets the role would show
    no figures, silently; discover refuses it, naming the module and what to declare."""
    package = flow_package("quietflows", quiet=NO_RUNTIME)
    with pytest.raises(flows.FlowRecordError, match=r"flow 'quiet' \(quietflows.quiet\): it declares no "
                                                     r"'runtime' role.*'runtime': 'run'"):
        discover(package)
    assert all(not f.problems() and f.roles.get("runtime", "run") == "run" for f in flows.FLOWS.values())


def test_a_flow_whose_default_backend_is_no_backend_is_refused_where_it_is_registered(flow_package, monkeypatch):
    monkeypatch.setattr(backends, "FLOW_DEFAULTS", dict(backends.FLOW_DEFAULTS))
    package = flow_package("nowhereflows", nowhere=NO_BACKEND)
    with pytest.raises(flows.FlowRecordError, match=r"flow 'nowhere' \(nowhereflows.nowhere\): its "
                                                     r"default_backend 'tpu' is not a backend: portable, xnnpack"):
        discover(package)
    assert "nowhere" not in backends.FLOW_DEFAULTS  # refused before it is registered


def test_a_role_must_name_a_running_stage_and_a_resolved_flow_is_checked_too():
    from quantviz.flows.base import Flow
    from quantviz.stages import emit, run, trace_export

    slots = (trace_export.STAGE, emit.STAGE, run.STAGE)
    wrong = Flow("wrong", "a role naming no stage", slots=slots, roles={"reference": "convert", "runtime": "run"})
    assert wrong.problems() == ["its 'reference' role names 'convert', which is not one of its running stages "
                                "(trace, emit, run)"]
    resolving = Flow("late", "stages per config", slots=(run.STAGE,),
                     resolve=lambda config: Flow("late", "resolved", slots=slots, roles={"program": "emit"}))
    assert resolving.problems() == []  # its stages are the config's: checked when resolved
    with pytest.raises(flows.FlowRecordError, match="flow 'late': it declares no 'runtime' role"):
        resolving.for_config(PipelineConfig())


def test_the_app_opens_on_the_flow_whose_record_says_so(monkeypatch):
    from ui.sidebar import app_defaults

    opening = [f.name for f in flows.FLOWS.values() if f.app_start is not None]
    assert opening == ["pt2e"]  # one flow's record declares the app's first values
    monkeypatch.setenv("QUANTVIZ_DEFAULT_FLOW", "")
    assert app_defaults() == {"flow": "pt2e", "backend": "xnnpack"}
    monkeypatch.setenv("QUANTVIZ_DEFAULT_FLOW", "fx")  # a class starting from fx
    assert app_defaults() == {"flow": "fx"}
    monkeypatch.setenv("QUANTVIZ_DEFAULT_FLOW", "no-such-flow")
    assert app_defaults() == {"flow": "pt2e", "backend": "xnnpack"}
