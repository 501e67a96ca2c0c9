"""The Device page through AppTest: an ETDump written by the runtime from the .pte alone (as a device would) is
uploaded; the page shows device ms beside this machine's per pattern and that no value diverges; a truncated file
gets one line. And ``write_device_dir``: the folder ``quantviz device`` reads."""
import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.e2e
PAGE = os.path.join(os.path.dirname(__file__), "..", "pages", "device.py")


def _device_files(pte: bytes, inputs: tuple) -> tuple[bytes, bytes]:
    """What a device writes: 3 runs of the .pte with an ETDump and a debug buffer."""
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    import executorch.kernels.quantized  # noqa: F401

    module = _load_for_executorch_from_buffer(pte, enable_etdump=True, debug_buffer_size=16 << 20)
    for _ in range(3):
        module.forward(inputs)
    with tempfile.TemporaryDirectory() as d:
        e, b = os.path.join(d, "run.etdp"), os.path.join(d, "debug.bin")
        module.write_etdump_result_to_file(e, b)
        return Path(e).read_bytes(), Path(b).read_bytes()


def _example_inputs(pipe) -> tuple:
    """The runtime's inputs of ``pipe``'s model (asked of the session worker that holds it)."""
    from quantviz.timing.measure import runtime_inputs

    return runtime_inputs(pipe.spec.example_inputs)


def test_device_page_places_an_uploaded_etdump_and_names_a_truncated_one(fresh_app_store):
    from quantviz.process_run import on_worker
    from ui.runner import pipeline_store

    os.environ["QUANTVIZ_DEFAULT_MODEL"] = "sample:digits_cnn"  # the fx flow (tests' default) reaches the runtime
    at = AppTest.from_file(PAGE, default_timeout=600)
    at.run()
    assert not at.exception, at.exception
    shown = [e.value for e in [*at.info, *at.error, *at.caption]]
    assert at.title[0].value == "Device" and len(at.file_uploader) == 2, shown
    (run,) = pipeline_store().values()  # the page's run
    etdp, debug = _device_files(run.pipe.pte_bytes(), on_worker(run.pipe, _example_inputs))  # the run's model

    at.file_uploader(key="device_etdump").upload("run.etdp", etdp).run()
    at.file_uploader(key="device_debug").upload("debug.bin", debug).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert float(at.metric[0].value) > 0
    places = at.dataframe[0].value
    convs = places[places["place"].str.contains("convolution")]
    assert len(convs) >= 1 and (convs["device ms"] > 0).all() and (convs["here ms"] > 0).all()
    assert (convs["device / here"] > 0).all()
    assert "3 run(s)" in " ".join(c.value for c in at.caption)
    assert at.success and "diverges" in at.success[0].value  # the same program and inputs: no divergence
    assert len(at.dataframe[1].value) > 0

    at.file_uploader(key="device_etdump").upload("cut.etdp", etdp[: len(etdp) // 3]).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value and "Traceback" not in at.error[0].value
    assert not at.dataframe
    assert at.error[0].value.startswith("cut.etdp: not a readable ETDump")  # the user's file name, not a temp path


def test_write_device_dir_writes_what_quantviz_device_reads(tmp_path):
    from quantviz import Pipeline, PipelineConfig, load_model
    from quantviz.timing.device import read_device_run
    from quantviz.timing.outputs import measure_for_summary, write_device_dir

    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e"))
    pipe.run()
    timing, latency = measure_for_summary(pipe, 3, with_float=False)
    out = write_device_dir(pipe, tmp_path / "run", timing, latency)
    names = {p.name for p in out.iterdir()}
    assert {"summary.json", "model.pte", "etrecord.bin", "inputs.pt", "latency.json", "stages"} <= names
    assert json.loads((out / "summary.json").read_text())["latency"]["total"]["median_ms"] > 0
    etdp, _ = _device_files((out / "model.pte").read_bytes(), tuple(torch.load(out / "inputs.pt")))
    (tmp_path / "run.etdp").write_bytes(etdp)
    found = read_device_run(out, tmp_path / "run.etdp")
    here = {p["key"]: p["median_ms"] for p in json.loads((out / "latency.json").read_text())["top"]}
    convs = [p for p in found.patterns if "convolution" in p.label]
    assert len(convs) == 2 and all(p.here_ms == here[p.key] > 0 and p.device.median_ms > 0 for p in convs)
