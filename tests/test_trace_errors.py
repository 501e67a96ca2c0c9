"""A module symbolic tracing cannot follow: the error names it and its line; skipping it works."""
import pytest

from quantviz import PipelineConfig, load_model, Pipeline
from sample_models import not_traceable

import inspect

BRANCH_LINE = next(i for i, line in enumerate(inspect.getsource(not_traceable).splitlines(), 1)
                   if "if x.shape[-1] % 2" in line)


def test_trace_names_the_module_the_line_and_the_skip(flow):
    pipe = flow("sample:not_traceable")
    assert list(pipe.results) == ["trace"]
    err = pipe.results["trace"].error
    assert err.stage == "trace"
    assert "module 'pad' (PadToEven)" in err.message
    assert f"not_traceable.py:{BRANCH_LINE}" in err.message
    assert "--skip-module pad" in err.hint and "non_traceable_module_names" in err.hint
    assert "Traceback" in err.details


def test_unknown_skip_name_lists_real_submodules():
    pipe = Pipeline(load_model("sample:not_traceable"), PipelineConfig(skip_modules=("padd",))).run()
    err = pipe.results["trace"].error
    assert "padd" in err.message and "pad" in err.hint and "conv" in err.hint


@pytest.mark.e2e
@pytest.mark.parametrize("flow_name", ["fx", "pt2e"])
def test_skipping_the_module_runs_to_the_runtime(flow, flow_name):
    pipe = flow("sample:not_traceable", flow=flow_name, skip_modules=("pad",))
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.numerics()["float_vs_runtime_sqnr_db"] > 20
    # the skipped module stays float: its pad op is not inside any quantized pattern
    convert = pipe.results["convert"].graph
    assert not any("pad" in (p.module_path or "") for p in convert.patterns)


def test_the_error_offers_skip_untraceable_which_skips_the_module(flow):
    err = flow("sample:not_traceable").results["trace"].error
    assert err.fix == {"skip_untraceable": True} and "--skip-untraceable" in err.hint
    pipe = flow("sample:not_traceable", skip_untraceable=True, until="convert")
    assert pipe.ok, pipe.failed and pipe.failed.error
    sites = pipe.results["trace"].diagnostics.untraceable
    assert [(s.action, s.module, s.module_class, s.line) for s in sites] == [("skip", "pad", "PadToEven", BRANCH_LINE)]
    assert "set_non_traceable_module_names(['pad'])" in "\n".join(pipe.results["prepare"].calls)
    assert not any("pad" in (p.module_path or "") for p in pipe.results["convert"].graph.patterns)
