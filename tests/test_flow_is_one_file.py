"""A flow is one file: a new flow lists existing stage variants in its own module, and the registry, the config's
options, the CLI's choices and the pipeline take it from there. The toy flow here lives in a temporary package (no
file of the project is touched): pt2e's observer steps without the fuse stage, numbers from the runtime."""
import dataclasses
import importlib
import pkgutil
import sys
import textwrap

import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz import flows
from quantviz.flows import applies_to, choices_of, discover, flow_of

TOY = '''
"""toy: pt2e's stages without fusion, a flow made of existing stage variants only."""
from quantviz.flows.base import Absent, Flow
from quantviz.stages import (calibrate_pt2e, capture, convert_pt2e, delegate, edge, emit, prepare_pt2e, run,
                             trace_export)

FLOW = Flow("toy", "export, prepare_pt2e, calibrate, convert_pt2e, export, lower; nothing fused",
            slots=(trace_export.STAGE, prepare_pt2e.STAGE, calibrate_pt2e.STAGE, convert_pt2e.STAGE, capture.STAGE,
                   edge.STAGE, delegate.STAGE, Absent("fuse", "the toy flow fuses nothing"), emit.STAGE, run.STAGE),
            roles={"float_graph": "trace", "reference": "convert", "delegated": "delegate", "lowered": "delegate",
                   "program": "emit", "runtime": "run"})
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    package = tmp_path / "toyflows"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "toy.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover(importlib.import_module("toyflows"))
    monkeypatch.setattr(flows, "FLOWS", {**flows.FLOWS, **found})
    yield found["toy"]
    sys.modules.pop("toyflows.toy", None)
    sys.modules.pop("toyflows", None)


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
    numbers = pipe.numerics()  # the run of the flow's "runtime" role
    assert numbers.float_vs_reference_sqnr_db > 20  # quantized, and close to float
    assert numbers.reference_vs_runtime_sqnr_db > 20  # the runtime ran the program it lowered
    # a change to what a stage reads re-runs from that stage (calibrate observes in place: from prepare), not trace
    assert pipe.update(config.with_changes(calibration_batches=2))[:2] == ["prepare", "calibrate"]
