"""A device's own ETDump placed on the stages of a ``quantviz run --out DIR``: its times per pattern beside this
machine's, and (with its debug buffer) its intermediate values against this machine's runtime on the same .pte and
inputs, with the first node that diverges; for a program without delegates also against its lowered program run ahead of
time in PyTorch (the ETRecord's edge program).

``DIR`` holds what ``quantviz run --out`` writes: ``model.pte``, ``etrecord.bin`` (the debug-handle and delegate
maps), ``inputs.pt``, ``latency.json`` (this machine's times) and the stage graphs. The device ran ``model.pte``
(``executor_runner --etdump_path``, an app) and wrote an ``.etdp`` file, and a debug buffer when it logged values.

Example::

    found = read_device_run(Path("out"), Path("device.etdp"), Path("debug.bin"))
    found.patterns[0].label, found.patterns[0].device.median_ms, found.patterns[0].here_ms
    found.first_divergence          # ValueRow(node='...', sqnr_db=3.1, ...) or None
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantviz.graph.model import GraphView
from quantviz.timing.latency import LatencyReport, latency_report
from quantviz.timing.place import Placement, kernel_op, place_events
from quantviz.timing.profile import EtdumpError, Profile, Stat, read_profile

DIVERGES_DB = 30.0  # a value further than this (SQNR) from this machine's runtime on the same .pte diverges


class DeviceInputError(Exception):
    """A device run that cannot be placed: the cause in one line (exit code 1)."""


@dataclass
class DevicePattern:
    """One place (pattern, op, delegate overhead): the device's time beside this machine's."""

    key: str
    label: str
    device: Stat
    here_ms: float | None   # this machine's median (latency.json), None when it had no such place

    @property
    def ratio(self) -> float:
        """device / here (medians)."""
        return self.device.median_ms / self.here_ms if self.here_ms else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "device": self.device.to_dict(),
                "here_median_ms": self.here_ms, "ratio": None if math.isnan(self.ratio) else round(self.ratio, 3)}


@dataclass
class ValueRow:
    """One logged output of the device's run against this machine's runtime on the same program and inputs."""

    index: int              # position among the events that logged a value
    event: str              # the runtime's event name
    node: str | None        # the node it was placed on (a delegate call's node for its outputs)
    label: str              # what the user reads: the op and its module
    sqnr_db: float          # against this machine's runtime on the same .pte and inputs
    max_abs_diff: float
    ahead_of_time_sqnr_db: float | None = None  # against the lowered program run in PyTorch (no delegates only)

    @property
    def diverges(self) -> bool:
        return self.sqnr_db < DIVERGES_DB

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event": self.event, "node": self.node, "label": self.label,
                "sqnr_db": self.sqnr_db, "max_abs_diff": self.max_abs_diff,
                "ahead_of_time_sqnr_db": self.ahead_of_time_sqnr_db, "diverges": self.diverges}


@dataclass
class DeviceRun:
    """What ``quantviz device`` found."""

    report: LatencyReport                  # the device's times, placed
    patterns: list[DevicePattern]          # most device time first
    values: list[ValueRow] = field(default_factory=list)
    values_note: str = ""                  # why there are no values ("" when compared)

    @property
    def first_divergence(self) -> ValueRow | None:
        return next((v for v in self.values if v.diverges), None)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {"device": {**self.report.to_dict(), "measured": {"runs": self.report.profile.runs,
                                                                 "by": "the device's ETDump"}},
                "patterns": [p.to_dict() for p in self.patterns], "values": [v.to_dict() for v in self.values],
                "values_note": self.values_note, "first_divergence": first.to_dict() if first else None}

    def lines(self, top: int = 10) -> list[str]:
        r = self.report
        out = [f"device: {r.total.text()} per run over {r.profile.runs} run(s) in its ETDump"]
        out.append(f"  {'device ms':>10} {'here ms':>9} {'ratio':>6}  place")
        for p in self.patterns[:top]:
            here = f"{p.here_ms:9.3f}" if p.here_ms is not None else f"{'–':>9}"
            ratio = f"{p.ratio:6.2f}" if not math.isnan(p.ratio) else f"{'–':>6}"
            out.append(f"  {p.device.median_ms:10.3f} {here} {ratio}  {p.label}")
        if self.values_note:
            out.append(f"  values: {self.values_note}")
        elif self.values:
            first = self.first_divergence
            out.append(f"  values: {len(self.values)} logged outputs compared with this machine's runtime; " + (
                f"first diverging: {first.label} ({first.event}), {first.sqnr_db:.1f} dB SQNR, max |diff| "
                f"{first.max_abs_diff:.4g}" if first else f"none diverges (all >= {DIVERGES_DB:.0f} dB)"))
            if first is not None and first.ahead_of_time_sqnr_db is not None:
                out[-1] += f"; {first.ahead_of_time_sqnr_db:.1f} dB against the lowered program run in PyTorch"
        return out


def _lowered_graph(out: Path, summary: dict) -> GraphView:
    from quantviz.flows import FLOWS

    flow = FLOWS.get(summary.get("flow", ""))
    stage = flow.roles.get("lowered") if flow is not None else None
    files = sorted((out / "stages").glob(f"*_{stage}.json")) if stage else []
    if not files:
        raise DeviceInputError(f"{out} has no graph of the lowered stage ({stage}): write it with `quantviz run "
                               "... --out DIR`")
    return GraphView.from_dict(json.loads(files[0].read_text()))


def _maps(out: Path) -> tuple[dict[int, list[int]], dict[int, dict]]:
    from executorch.devtools.etrecord import parse_etrecord

    path = out / "etrecord.bin"
    if not path.is_file():
        raise DeviceInputError(f"{out} has no etrecord.bin: `quantviz run ... --out DIR` writes it beside model.pte")
    try:
        record = parse_etrecord(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged ETRecord: one line
        raise DeviceInputError(f"{path} is not a readable ETRecord: {type(exc).__name__}: {exc}") from None
    handles = {int(k): v for k, v in ((record._debug_handle_map or {}).get("forward") or {}).items()}
    delegates = {int(k): v for k, v in ((record._delegate_map or {}).get("forward") or {}).items()}
    return handles, delegates


def _check_same_program(profile: Profile, placement: Placement, graph: GraphView,
                        handles: dict[int, list[int]]) -> None:
    """An ETDump of another program: its delegate calls or kernels do not match this program's."""
    calls = len(profile.of_kind("delegate_call"))
    expected = sum(1 for n in graph.nodes if n.kind == "delegate")
    if calls != expected:
        raise DeviceInputError(f"the ETDump is of another program: it has {calls} delegate call(s) per run, this "
                               f"program {expected}")
    for pl in placement.kernels:
        iid = pl.event.instruction_id
        if pl.node is None or (handles and iid is not None and iid not in handles):
            raise DeviceInputError(f"the ETDump is of another program: its kernel {kernel_op(pl.event.name)} "
                                   f"(instruction {iid}) is not an op of this program")
    unplaced = [p for d in placement.delegates for p in d.inside if p.kind == "delegate_other"]
    if len(unplaced) > max(2, len(placement.all()) // 4):
        raise DeviceInputError(f"the ETDump is of another program: {len(unplaced)} delegate events match no node")


def read_device_run(out: Path, etdump: Path, debug_buffer: Path | None = None) -> DeviceRun:
    """Place the device's ETDump on the stages in ``out``; raises :class:`DeviceInputError` (one line) for
    anything that stops it."""
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        raise DeviceInputError(f"{out} holds no summary.json: give the folder `quantviz run ... --out DIR` wrote")
    if not etdump.is_file():
        raise DeviceInputError(f"no ETDump at {etdump}")
    if debug_buffer is not None and not debug_buffer.is_file():
        raise DeviceInputError(f"no debug buffer at {debug_buffer}")
    summary = json.loads(summary_path.read_text())
    graph = _lowered_graph(out, summary)
    handles, delegates = _maps(out)
    data = etdump.read_bytes()
    try:
        profile = read_profile(data)
    except EtdumpError as exc:
        raise DeviceInputError(f"{etdump}: {exc}") from None
    placement = place_events(profile, graph, handles, delegates)
    _check_same_program(profile, placement, graph, handles)
    report = latency_report(profile, placement)
    here = _here_times(out)
    patterns = [DevicePattern(p.key, p.label, p.time, here.get(p.key)) for p in report.places]
    run = DeviceRun(report, patterns)
    logged = _logs_values(data)
    if not logged:
        run.values_note = "the device logged no intermediate values (run it with a debug buffer to compare them)"
    elif debug_buffer is None:
        run.values_note = ("the ETDump's values live in a debug buffer that was not given: add --debug-buffer FILE "
                           "(the file the device wrote beside the .etdp)")
    else:
        run.values = compare_values(out, data, debug_buffer.read_bytes(), placement)
    return run


def _here_times(out: Path) -> dict[str, float]:
    path = out / "latency.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {p["key"]: p["median_ms"] for p in data.get("top", [])}


def _logs_values(etdump: bytes) -> bool:
    from executorch.devtools.inspector._inspector_utils import gen_etdump_object

    from quantviz.native_stderr import capture_native_stderr

    try:
        with capture_native_stderr([]):
            dump = gen_etdump_object(etdump_data=etdump)
    except Exception:  # noqa: BLE001 - already read once by read_profile
        return False
    return any(ev.debug_event is not None for run in dump.run_data for ev in (run.events or []))


def _value_events(etdump: bytes, debug_buffer: bytes) -> list[tuple[str, int | None, bool, list]]:
    import warnings

    from executorch.devtools import Inspector

    from quantviz.native_stderr import capture_native_stderr

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "debug.bin")
        with open(path, "wb") as fh:
            fh.write(debug_buffer)
        try:
            with warnings.catch_warnings(), capture_native_stderr([]):
                warnings.simplefilter("ignore")
                inspector = Inspector(etdump_data=etdump, debug_buffer_path=path)
        except Exception as exc:  # noqa: BLE001 - a debug buffer of another run, cut short
            raise DeviceInputError(f"the debug buffer does not go with the ETDump (another run, or cut short?): "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    out = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for e in block.events:
            if e.debug_data and e.name not in ("Method::execute", "OPERATOR_CALL"):
                out.append((e.name, e._instruction_id, e.name == "DELEGATE_CALL", list(e.debug_data)))
    return out


def _here_values(out: Path) -> tuple[bytes, bytes]:
    """Run ``model.pte`` on ``inputs.pt`` here with an ETDump and a debug buffer."""
    import torch
    from executorch.extension.pybindings import portable_lib as rt

    import executorch.kernels.quantized  # noqa: F401

    inputs = torch.load(out / "inputs.pt")
    program = (out / "model.pte").read_bytes()  # the runtime reads the bytes it is given: keep them alive
    module = rt._load_for_executorch_from_buffer(program, enable_etdump=True, debug_buffer_size=64 << 20)
    module.forward(tuple(torch.utils._pytree.tree_leaves(tuple(inputs))))  # nested inputs: the leaves
    with tempfile.TemporaryDirectory() as d:
        e, b = os.path.join(d, "e.etdp"), os.path.join(d, "b.bin")
        module.write_etdump_result_to_file(e, b)
        return Path(e).read_bytes(), Path(b).read_bytes()


def compare_values(out: Path, etdump: bytes, debug_buffer: bytes, placement: Placement) -> list[ValueRow]:
    """The device's logged outputs against this machine's runtime on the same .pte and inputs, in order."""
    import torch

    from quantviz.measure.metrics import sqnr_db

    device = _value_events(etdump, debug_buffer)
    here = _value_events(*_here_values(out))
    aot = _ahead_of_time_values(out)
    node_of = {(pl.event.name, pl.event.instruction_id): pl.node for pl in placement.kernels}
    calls = {d.call.instruction_id: d.node for d in placement.delegates}
    rows = []
    for i, ((name, iid, call, dv), (hname, _, _, hv)) in enumerate(zip(device, here)):
        if name != hname:
            raise DeviceInputError(f"the device's logged values are of another program (event {i} is {name}, "
                                   f"here {hname})")
        # a delegate call logs its inputs then its outputs: compare the outputs (the last ones)
        pairs = [(a, b) for a, b in zip(dv, hv) if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)]
        if call:
            pairs = pairs[-1:]
        if not pairs:
            continue
        a, b = pairs[-1]
        if a.shape != b.shape:
            continue
        fa, fb = a.double().flatten(), b.double().flatten()
        node = calls.get(iid) if call else node_of.get((name, iid))
        n = placement.nodes.get(node) if node else None
        label = f"{n.name} ({n.module_path})" if n is not None and n.module_path else (n.name if n else name)
        db = float(sqnr_db(fb, fa)) if fa.numel() else float("inf")
        ref = aot.get(n.name) if n is not None and not call else None
        ref_db = float(sqnr_db(ref.double().flatten(), fa)) if isinstance(ref, torch.Tensor) and \
            ref.shape == a.shape and fa.numel() else None
        rows.append(ValueRow(i, name, node, label, db, float((fa - fb).abs().max()) if fa.numel() else 0.0, ref_db))
    return rows


def _ahead_of_time_values(out: Path) -> dict[str, Any]:
    """Every node's value when the ETRecord's lowered program runs in PyTorch on ``inputs.pt`` (node name ->
    value); empty when the program calls delegates (only the runtime runs those)."""
    import torch
    from executorch.devtools.etrecord import parse_etrecord

    from quantviz.numerics.capture import capture_values
    from quantviz.numerics.kernel_instances import has_delegates

    try:
        program = parse_etrecord(str(out / "etrecord.bin")).edge_dialect_program
        if program is None or has_delegates(program.graph_module):
            return {}
        return capture_values(program.module(), tuple(torch.load(out / "inputs.pt")))
    except Exception:  # noqa: BLE001 - the runtime comparison stands without it
        return {}
