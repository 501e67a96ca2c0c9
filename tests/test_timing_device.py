"""`quantviz device`: an ETDump written by a separate process that has only the .pte and inputs (as a device would),
placed on the stages of `quantviz run --out`; a planted slow kernel and a planted wrong value are named; bad
inputs get one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quantviz.cli import main

# the "device": only the runtime, the .pte and the inputs; 3 runs, values in a debug buffer
DEVICE = """
import sys, torch
from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer
import executorch.kernels.quantized
pte, inputs, etdp, dbg = sys.argv[1:5]
program = open(pte, "rb").read()
module = _load_for_executorch_from_buffer(program, enable_etdump=True, debug_buffer_size=16 << 20)
x = torch.load(inputs)
for _ in range(3):
    module.forward(tuple(x))
module.write_etdump_result_to_file(etdp, dbg)
"""


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "sample:conv_add", "--flow", "pt2e", "--out", str(out), "--no-svg", "--repeat", "3",
                 "--no-float-timing"]) == 0
    dev = tmp_path_factory.mktemp("device")
    pte, inputs = dev / "model.pte", dev / "inputs.pt"  # the device gets copies, nothing else
    pte.write_bytes((out / "model.pte").read_bytes())
    inputs.write_bytes((out / "inputs.pt").read_bytes())
    done = subprocess.run([sys.executable, "-c", DEVICE, str(pte), str(inputs), str(dev / "run.etdp"),
                           str(dev / "debug.bin")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, dev


def _device(out: Path, *args: str) -> tuple[int, dict | None]:
    code = main(["device", str(out), *args, "--out", str(out / "device.json")])
    return code, json.loads((out / "device.json").read_text()) if code == 0 else None


def test_device_times_per_pattern_beside_this_machine_and_values_agree(device_run):
    out, dev = device_run
    code, data = _device(out, "--etdump", str(dev / "run.etdp"), "--debug-buffer", str(dev / "debug.bin"))
    assert code == 0
    assert data["device"]["measured"]["runs"] == 3
    convs = [p for p in data["patterns"] if "convolution" in p["label"]]
    assert len(convs) == 2 and all(p["device"]["median_ms"] > 0 and p["here_median_ms"] > 0 for p in convs)
    assert data["values"] and data["first_divergence"] is None  # the same program and inputs: the same values


def _plant(dev: Path, tmp_path: Path, *, slow: bool = False, wrong: bool = False) -> Path:
    """Rewrite the device's files as a device with a slow second convolution, or a wrong output of it, would."""
    import numpy as np
    from executorch.devtools.etdump.serialize import deserialize_from_etdump_flatcc, serialize_to_etdump_flatcc

    dump = deserialize_from_etdump_flatcc((dev / "run.etdp").read_bytes())
    buffer = bytearray((dev / "debug.bin").read_bytes())
    for run in dump.run_data:
        convs = [e for e in run.events or [] if e.profile_event and e.profile_event.name ==
                 "native_call_convolution.out"]
        if len(convs) < 2:
            continue
        second = convs[1].profile_event
        if slow:
            second.end_time = second.start_time + 50 * (second.end_time - second.start_time) + 5_000_000
        if wrong:  # the debug event logged for the same instruction: its tensor's bytes
            debug = next(e.debug_event for e in run.events if e.debug_event and
                         e.debug_event.instruction_id == second.instruction_id)
            t = debug.debug_entry.tensor
            n = int(np.prod(t.sizes))
            values = np.frombuffer(bytes(buffer[t.offset:t.offset + 4 * n]), dtype=np.float32) + 7.0
            buffer[t.offset:t.offset + 4 * n] = values.astype(np.float32).tobytes()
    planted = tmp_path / "planted"
    planted.mkdir()
    data = serialize_to_etdump_flatcc(dump)  # flatc writes it bare; the runtime writes it size-prefixed
    (planted / "run.etdp").write_bytes(len(data).to_bytes(4, "little") + data)
    (planted / "debug.bin").write_bytes(bytes(buffer))
    return planted


def test_planted_slow_kernel_is_named(device_run, tmp_path):
    out, dev = device_run
    planted = _plant(dev, tmp_path, slow=True)
    code, data = _device(out, "--etdump", str(planted / "run.etdp"))
    assert code == 0
    top = data["patterns"][0]
    assert top["label"] == "dq → convolution → q (conv2)" and top["device"]["median_ms"] >= 5
    assert top["ratio"] > 10  # against this machine's time for the same pattern
    assert "debug buffer" in data["values_note"]  # values were logged, the buffer was not given


def test_planted_wrong_value_is_the_first_diverging_node(device_run, tmp_path):
    out, dev = device_run
    planted = _plant(dev, tmp_path, wrong=True)
    code, data = _device(out, "--etdump", str(planted / "run.etdp"), "--debug-buffer", str(planted / "debug.bin"))
    assert code == 0
    first = data["first_divergence"]
    assert first is not None and first["event"] == "native_call_convolution.out"
    assert "conv2" in first["label"] and first["sqnr_db"] < 30
    assert sum(v["diverges"] for v in data["values"]) == 1  # only the planted output
    # against the lowered program run ahead of time in PyTorch (no delegates here): the planted output is far off,
    # and an output of the same program the device computed right is close
    assert first["ahead_of_time_sqnr_db"] is not None and first["ahead_of_time_sqnr_db"] < 30
    right = [v for v in data["values"] if not v["diverges"] and v["ahead_of_time_sqnr_db"] is not None]
    assert right and max(v["ahead_of_time_sqnr_db"] for v in right) > 30


def test_bad_device_files_get_one_line(device_run, flow, tmp_path, capsys):
    out, dev = device_run
    truncated = tmp_path / "cut.etdp"
    truncated.write_bytes((dev / "run.etdp").read_bytes()[:300])
    assert main(["device", str(out), "--etdump", str(truncated)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("quantviz: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["device", str(out), "--etdump", str(dev / "run.etdp"), "--debug-buffer",
                 str(tmp_path / "missing.bin")]) == 1
    assert "no debug buffer at" in capsys.readouterr().err
    # an ETDump of another program: digits_cnn lowered to XNNPACK, run by the same "device"
    import torch

    pipe = flow("sample:digits_cnn", flow="pt2e", backend="xnnpack")
    (tmp_path / "other.pte").write_bytes(pipe.pte_bytes())
    torch.save(tuple(pipe.spec.example_inputs), tmp_path / "other.pt")
    done = subprocess.run([sys.executable, "-c", DEVICE, str(tmp_path / "other.pte"), str(tmp_path / "other.pt"),
                           str(tmp_path / "o.etdp"), str(tmp_path / "o.bin")], capture_output=True, timeout=300)
    assert done.returncode == 0
    capsys.readouterr()
    assert main(["device", str(out), "--etdump", str(tmp_path / "o.etdp")]) == 1
    err = capsys.readouterr().err.strip()
    assert "another program" in err and len(err.splitlines()) == 1
