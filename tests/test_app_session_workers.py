"""The app's session workers (every run in a worker process of its own: quantviz.process_run), through
streamlit.testing.v1.AppTest: a stage that aborts natively (not the run stage) fails only its worker, the page names
the stage, the signal and the process's last line and offers a re-run, which runs in a new worker; a config change
takes the idle worker, whose fork keeps the stages both configs share; ``QUANTVIZ_SESSION_WORKERS=0`` runs threads."""
import os

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.e2e
APP = os.path.join(os.path.dirname(__file__), "..", "app.py")
ABORTING = "tests/fixtures/process_run_models.py"


@pytest.fixture(autouse=True)
def _fresh(fresh_app_store):
    """Each test starts without kept runs and leaves none (their workers closed)."""


def _choice(at: AppTest, key: str, value: str) -> AppTest:
    """Set the sidebar widget ``key`` (a radio or a select box, by how many choices it has) to ``value``."""
    widget = next(w for kind in ("radio", "selectbox") for w in at.sidebar.get(kind) if w.key == key)
    return widget.set_value(value).run()


def _digits_cnn_run(monkeypatch) -> tuple[AppTest, object]:
    """The app opened on sample:digits_cnn, and its one run once it ended (ok)."""
    from ui.runner import pipeline_store

    monkeypatch.setenv("QUANTVIZ_DEFAULT_MODEL", "sample:digits_cnn")
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    assert not at.exception, at.exception
    (run,) = pipeline_store().values()
    assert run.join(600) and run.pipe.ok
    return at, run


def test_a_config_change_takes_the_idle_worker_and_keeps_the_shared_stages(monkeypatch):
    from quantviz.process_run import ProcessRun
    from ui.runner import pipeline_store

    at, first = _digits_cnn_run(monkeypatch)
    assert isinstance(first, ProcessRun)
    pid, pte = first.worker_pid, first.pipe.pte_bytes()
    _choice(at, "fusion", "quantviz")
    assert not at.exception, at.exception
    (changed,) = [r for r in pipeline_store().values() if r is not first]
    assert changed.pipe.config.fusion == "quantviz" and changed.join(600) and changed.pipe.ok
    assert changed.worker_pid == pid and first.worker_pid is None  # the same process, handed over
    names = changed.pipe.stage_names
    shared = names[: names.index("fuse")]
    for s in shared:  # forked in the worker, not run again: the first run's own results
        assert changed.pipe.results[s].seconds == first.pipe.results[s].seconds, s
    assert changed.pipe.pte_bytes() != pte
    _choice(at, "fusion", first.pipe.config.fusion)  # back: the kept pipeline, forked whole, nothing runs
    assert not at.exception, at.exception
    assert first.worker_pid == pid and first.todo() == [] and not first.alive
    assert first.pipe.pte_bytes() == pte


def test_workers_off_runs_threads(monkeypatch):
    from quantviz.background import BackgroundRun

    monkeypatch.setenv("QUANTVIZ_SESSION_WORKERS", "0")
    _, run = _digits_cnn_run(monkeypatch)
    assert isinstance(run, BackgroundRun)
    assert run.pipe.results["trace"].artifact is not None  # the pipeline lives in the app's process


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


def test_a_config_change_never_stops_a_run_another_session_shows():
    """Two sessions on one model (it sleeps 60 s in calibrate: a stage that runs on): B's config change leaves A's
    running stage alone; A's own change stops it."""
    from ui.runner import pipeline_store

    def session() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=600)
        at.run()
        at.sidebar.radio(key="source").set_value("Python file").run()
        at.sidebar.text_input(key="file_path").input(ABORTING)
        at.sidebar.text_input(key="factory").input("make_sleeping").run()
        assert not at.exception, at.exception
        return at

    a = session()
    (run_a,) = [r for (mk, _), r in pipeline_store().items() if ABORTING in mk]
    assert run_a.wait_for("prepare", 600) and run_a.alive
    b = session()  # the same model and config: the same run
    assert [r for (mk, _), r in pipeline_store().items() if ABORTING in mk] == [run_a]
    _choice(b, "observer", "minmax")  # B's own config: A's run goes on
    assert not b.exception, b.exception
    assert run_a.alive and run_a.state().current in ("calibrate", "prepare")
    _choice(a, "observer", "minmax")  # A leaves its run too: no session shows it any more
    assert not a.exception, a.exception
    assert run_a.join(10) and not run_a.alive
