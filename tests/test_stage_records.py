"""A stage is one record: a new Stage put in a flow is all it needs. The pipeline runs it in order and hands the next
stage its artifact, resumes from it when a field it reads changes, words its failure with its own remedy; the bare
flow runs its bare call; `quantviz stages` and the app's worker list it; the app holds the torch lock for its page."""
import dataclasses

import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.background import BackgroundRun
from quantviz.bare_flow import bare_steps, run_bare
from quantviz.flows import FLOWS
from quantviz.stages.base import Remedy, Stage, StageOutput

pytestmark = pytest.mark.e2e
SEEN: list[str] = []


def probe_run(ctx):
    SEEN.append(type(ctx.previous()).__name__)
    if ctx.config.held_out == 3:
        raise ValueError("probe does not like three")
    return StageOutput(ctx.previous(), notes=[f"probe saw held_out={ctx.config.held_out}"])


def probe_bare(spec, config, state):
    state["probed"] = True


PROBE = Stage("probe", probe_run, "looks at the captured program", "A stage a test adds.", reads=("held_out",),
              remedy=Remedy("try another held-out count", ({"held_out": 2},)), page_runs_torch=True, bare=probe_bare)


@pytest.fixture
def with_probe(monkeypatch):
    pt2e = FLOWS["pt2e"]
    slots = list(pt2e.slots)
    slots.insert([s.name for s in slots].index("capture") + 1, PROBE)
    monkeypatch.setitem(FLOWS, "pt2e", dataclasses.replace(pt2e, slots=tuple(slots)))
    SEEN.clear()


def test_a_new_stage_record_is_all_a_stage_needs(with_probe, capsys):
    from quantviz.cli import cmd_stages

    config = PipelineConfig(flow="pt2e", until="emit")
    pipe = Pipeline(load_model("sample:conv_add"), config).run()
    assert pipe.ok and list(pipe.results)[4:7] == ["capture", "probe", "edge"]
    assert SEEN == ["ExportedProgram"] and pipe.results["probe"].notes == ["probe saw held_out=0"]
    # a change to what it reads re-runs from it, not before it
    assert pipe.update(config.with_changes(held_out=1)) == ["probe", "edge", "delegate", "fuse", "emit"]
    pipe.run()
    assert pipe.ok and SEEN == ["ExportedProgram", "ExportedProgram"]
    # its failure carries its own remedy
    pipe.update(config.with_changes(held_out=3))
    pipe.run()
    err = pipe.results["probe"].error
    assert "probe does not like three" in err.message and err.hint == "try another held-out count"
    assert err.fix == {"held_out": 2}
    # the bare flow, `quantviz stages`, the app's worker and its lock read the same record
    assert "probe" in bare_steps(config)
    assert run_bare(load_model("sample:conv_add"), config).seconds.get("probe") is not None
    cmd_stages("pt2e")
    assert " probe      looks at the captured program" in capsys.readouterr().out
    run = BackgroundRun(Pipeline(load_model("sample:conv_add"), config))
    assert "probe" in run.state().states and "probe" in run.todo()
    assert run.pipe.stage("probe").page_runs_torch
