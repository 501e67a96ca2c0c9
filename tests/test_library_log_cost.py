"""What quantviz adds around a stage must not make the libraries do more work: the handler that keeps the
libraries' WARNING lines (``capture_library_log``) stays off torch's structured trace log, since torch formats every
dynamo graph, guard and stack for that log as soon as it has any handler (on export_llm's strict torch.export 2,259
records, 11.3 s of a profiled 6-layer SmolLM2 run: docs/benchmarks.md)."""
from __future__ import annotations

import logging

import torch
from torch._logging import _internal

from quantviz.pipeline import NEVER_HANDLED, capture_library_log


def test_capturing_library_logs_leaves_torch_structured_tracing_off(monkeypatch):
    # torch's own lazy trace handler removes itself at the first record when TORCH_TRACE is unset; start without it
    monkeypatch.setattr(_internal.trace_log, "handlers", [])
    assert "torch.__trace" in NEVER_HANDLED and _internal.trace_log.name == "torch.__trace"
    assert not _internal.trace_log.propagate  # the reason it would be picked: a torch logger that does not propagate
    payloads: list[str] = []

    def payload() -> str:
        payloads.append("formatted")
        return "a graph"

    lines: list[str] = []
    with capture_library_log(lines):
        assert _internal.trace_log.handlers == []
        torch._logging.trace_structured("artifact", lambda: {"name": "quantviz_test", "encoding": "string"},
                                        payload_fn=payload)
        logging.getLogger("torch._dynamo").warning("still kept: %s", "a warning")
        logging.getLogger("torch._dynamo").debug("not kept: below WARNING")
    assert payloads == []  # torch built no trace record
    assert lines == ["WARNING torch._dynamo: still kept: a warning"]
    assert _internal.trace_log.handlers == []


def test_other_non_propagating_torch_loggers_still_get_the_handler():
    quiet = logging.getLogger("torch.quantviz_test_quiet")
    quiet.propagate = False
    try:
        lines: list[str] = []
        with capture_library_log(lines):
            quiet.error("the lowering failed on %s", "aten.t.default")
        assert lines == ["ERROR torch.quantviz_test_quiet: the lowering failed on aten.t.default"]
        assert quiet.handlers == []
    finally:
        quiet.propagate = True
