"""The app with ``QUANTVIZ_SESSION_WORKERS=1`` (every run in a worker process of its own: quantviz.process_run),
through streamlit.testing.v1.AppTest: a stage that aborts natively (not the run stage) fails only its worker, the page
names the stage, the signal and the process's last line and offers a re-run, which runs in a new worker."""
import os

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.e2e
APP = os.path.join(os.path.dirname(__file__), "..", "app.py")
ABORTING = "tests/fixtures/process_run_models.py"


@pytest.fixture(autouse=True)
def _session_workers(monkeypatch):
    """The variable for this module's tests; their runs leave the app's store after them (a later test without the
    variable must not find a worker's run for its model)."""
    from quantviz.process_run import ProcessRun
    from ui.runner import pipeline_store

    monkeypatch.setenv("QUANTVIZ_SESSION_WORKERS", "1")
    yield
    store = pipeline_store()
    for key, run in list(store.items()):
        if isinstance(run, ProcessRun):
            run.close()
            del store[key]


def test_an_abort_in_calibrate_is_named_on_its_page_and_offered_again():
    from ui.runner import pipeline_store

    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.sidebar.radio(key="source").set_value("Python file").run()
    at.sidebar.text_input(key="file_path").input(ABORTING)
    at.sidebar.text_input(key="factory").input("make_aborting").run()
    assert not at.exception, at.exception
    at.session_state.stage = "calibrate"
    at.run()  # waits for calibrate's result
    assert not at.exception, at.exception
    assert at.subheader[0].value == "3. calibrate"
    banner = " ".join(e.value for e in at.error)
    assert "Stage 'calibrate' failed: the worker process running the calibrate stage aborted (SIGABRT)" in banner
    assert "native check failed: calibration batch refused" in banner  # its last words
    assert any("WorkerDied: SIGABRT" in m.value for m in at.markdown)  # the chained causes
    runs = [r for (mk, _), r in pipeline_store().items() if ABORTING in mk]
    assert len(runs) == 1 and runs[0].worker_pid is None and runs[0].pipe.results["trace"].ok
    again = next(b for b in at.button if b.label == "Run this stage again")
    again.click().run()  # a new worker makes trace and prepare again, then calibrate aborts it again
    runs[0].join(600)
    at.run()
    assert not at.exception, at.exception
    assert runs[0].state().states["calibrate"] == "failed" and runs[0].died.signal_name == "SIGABRT"
    assert "aborted (SIGABRT)" in " ".join(e.value for e in at.error)
