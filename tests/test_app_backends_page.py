"""The Backends page through AppTest: each backend's row is made in a worker process of its own (the app's process
runs no torch for it), and the rows are the ones ``backend_row`` makes in-process on the same model and config."""
import os

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.e2e
PAGE = os.path.join(os.path.dirname(__file__), "..", "pages", "backends.py")


def test_the_rows_come_from_worker_processes_and_match_an_in_process_row(monkeypatch):
    from quantviz import PipelineConfig
    from quantviz.backend_table import backend_config, backend_row

    expected = backend_row("sample:conv_add", backend_config(PipelineConfig(flow="pt2e", per_channel=True),
                                                              "xnnpack"))  # made here, by the same function

    import quantviz.workers

    asked: list[tuple[str, str]] = []
    real = quantviz.workers.call_in_worker

    def spied(fn, *args, **kwargs):
        asked.append((fn.__name__, args[1].backend))
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(quantviz.workers, "call_in_worker", spied)
    at = AppTest.from_file(PAGE, default_timeout=600)
    at.run()
    at.selectbox[0].select("conv_add")
    at.multiselect[0].set_value(["xnnpack", "portable"])
    next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception, at.exception
    assert asked == [("backend_row", "xnnpack"), ("backend_row", "portable")]  # each row made by a worker process
    frame = at.dataframe[0].value
    assert list(frame["backend"]) == ["xnnpack", "portable"] and list(frame["ok"]) == ["ok", "ok"]
    row = frame[frame["backend"] == "xnnpack"].iloc[0]
    assert row[".pte bytes"] == expected.pte_bytes and row["delegates"] == expected.delegates == 1


def test_a_row_whose_process_aborts_says_so():
    from quantviz import PipelineConfig
    from quantviz.backend_table import _row_in_worker, backend_config

    ref = "tests/fixtures/process_run_models.py:make_aborting"  # aborts its process inside calibrate
    row = _row_in_worker(ref, backend_config(PipelineConfig(flow="pt2e"), "xnnpack"))
    assert not row.ok and row.failed_stage == "?" and row.cause.startswith("crashed:") and "SIGABRT" in row.cause
