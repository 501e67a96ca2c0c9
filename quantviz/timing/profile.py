"""Time a program in ExecuTorch's runtime with an ETDump: warm repetitions, every event's times per run.

The runtime logs one profiling event per kernel call outside delegates (``native_call_convolution.out``), one per
``DELEGATE_CALL``, and one per operator the delegate itself reports (XNNPACK: ``Convolution (NHWC, QS8) IGEMM #1``,
``Convert (NC) #2``), each with start and end time, on every run. ``executorch.devtools.Inspector`` groups the runs:
an event's ``perf_data.raw`` holds its time in each run, in run order, so the first ``warmup`` entries (cold caches,
XNNPACK's weight packing) are dropped here.

Example::

    prof = profile_program(program.buffer, (x,), repeat=10)
    prof.execute.median_ms, prof.threads          # 0.084, 2
    [e.name for e in prof.events][:2]             # ['Convert (NC) #1', 'Transpose (ND, X8) #1']
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["kernel", "delegate_call", "delegated", "execute"]
# kernel: a kernel call outside any delegate (native_call_*); delegate_call: DELEGATE_CALL (the whole call);
# delegated: an operator the delegate reports inside its call; execute: Method::execute (one run of the program)

_FRAMEWORK = {"OPERATOR_CALL", "Method::init", "Program::load_method"}


class EtdumpError(Exception):
    """An ETDump that cannot be read (truncated, not an ETDump, no run in it): one line, the cause."""


@dataclass
class Stat:
    """Times of one thing over the warm runs, in milliseconds."""

    runs_ms: list[float]  # one value per warm run, in run order

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms) if self.runs_ms else float("nan")

    @property
    def min_ms(self) -> float:
        return min(self.runs_ms) if self.runs_ms else float("nan")

    @property
    def max_ms(self) -> float:
        return max(self.runs_ms) if self.runs_ms else float("nan")

    @classmethod
    def sum(cls, stats: list["Stat"], runs: int) -> "Stat":
        """Run-by-run sum of ``stats`` (each with ``runs`` values): the time of several events together."""
        return cls([sum(s.runs_ms[i] for s in stats) for i in range(runs)])

    def minus(self, other: "Stat") -> "Stat":
        return Stat([a - b for a, b in zip(self.runs_ms, other.runs_ms)])

    def to_dict(self) -> dict[str, float]:
        return {"median_ms": round(self.median_ms, 5), "min_ms": round(self.min_ms, 5),
                "max_ms": round(self.max_ms, 5), "runs": len(self.runs_ms)}

    def text(self) -> str:
        """``0.084 ms (0.078-0.091)``"""
        return f"{self.median_ms:.3f} ms ({self.min_ms:.3f}-{self.max_ms:.3f})"


@dataclass
class TimedEvent:
    """One event of the program's run, with its time in each warm run."""

    name: str                       # "native_call_convolution.out", "DELEGATE_CALL", "Convolution (NHWC, QS8) ..."
    kind: EventKind
    time: Stat
    instruction_id: int | None = None   # the program's instruction (the ETRecord's debug-handle map is keyed by it)
    delegate_id: str | None = None      # the delegate's own identifier for an event inside it


@dataclass
class Machine:
    """Where the times were measured."""

    cpu: str            # /proc/cpuinfo's model name, else platform.processor()
    cores: int          # os.cpu_count()
    load: tuple[float, float, float]  # os.getloadavg() when the timing started (1, 5, 15 minutes)
    system: str         # platform.platform()

    @classmethod
    def here(cls) -> "Machine":
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as fh:
                cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
        except OSError:
            pass
        load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
        return cls(cpu, os.cpu_count() or 1, tuple(round(v, 2) for v in load), platform.platform())

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "cores": self.cores, "load_1_5_15": list(self.load), "system": self.system}

    def text(self) -> str:
        return f"{self.cpu}, {self.cores} cores, load {self.load[0]:.2f}"


@dataclass
class Profile:
    """The events of ``runs`` warm runs of one program (in the order of the first run)."""

    events: list[TimedEvent]
    runs: int                    # warm runs kept
    warmup: int                  # runs dropped before them
    threads: int | None          # the runtime's thread pool size (None: not known, e.g. a device's ETDump)
    machine: Machine | None      # None for a device's ETDump
    execute: Stat = field(default_factory=lambda: Stat([]))  # Method::execute: one run of the whole program

    def of_kind(self, kind: EventKind) -> list[TimedEvent]:
        return [e for e in self.events if e.kind == kind]

    def describe(self) -> str:
        """``10 warm runs (2 dropped), 2 threads, Intel Xeon, 2 cores, load 1.20``"""
        where = self.machine.text() if self.machine else "a device"
        threads = f", {self.threads} threads" if self.threads else ""
        return f"{self.runs} warm runs ({self.warmup} dropped){threads}, {where}"


def profile_program(buffer: bytes, batch: tuple, repeat: int = 10, warmup: int = 2,
                    threads: int | None = None, keep_etdump: bool = False) -> tuple[Profile, bytes | None]:
    """Run the program ``warmup + repeat`` times on ``batch`` with an ETDump; its events with the warm runs' times,
    and the ETDump's bytes when ``keep_etdump``.

    ``threads`` resizes the runtime's thread pool first (XNNPACK's); None keeps it as it is.
    """
    from executorch.extension.pybindings import portable_lib as rt

    import executorch.kernels.quantized  # noqa: F401  the quantized_decomposed kernels programs may call

    if threads is not None:
        rt._unsafe_reset_threadpool(threads)
    machine = Machine.here()
    module = rt._load_for_executorch_from_buffer(buffer, enable_etdump=True)
    for _ in range(warmup + repeat):
        module.forward(tuple(batch))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "run.etdp")
        module.write_etdump_result_to_file(path)
        with open(path, "rb") as fh:
            data = fh.read()
    profile = read_profile(data, drop=warmup)
    profile.threads = rt._threadpool_get_thread_count()
    profile.machine = machine
    return profile, (data if keep_etdump else None)


def read_profile(etdump: bytes, drop: int = 0, debug_buffer: bytes | None = None) -> Profile:
    """The ``Execute`` events of an ETDump's bytes, their first ``drop`` runs left out.

    Raises :class:`EtdumpError` (one line) for bytes that are not a readable ETDump or hold no run.
    """
    import warnings

    from executorch.devtools import Inspector

    from quantviz.native_stderr import capture_native_stderr

    if not etdump:
        raise EtdumpError("the ETDump file is empty")
    flatc: list[str] = []  # Inspector decodes with the flatc binary, which prints its usage on a bad file
    try:
        with warnings.catch_warnings(), capture_native_stderr(flatc):
            warnings.simplefilter("ignore")
            if debug_buffer is not None:
                with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
                    fh.write(debug_buffer)
                    fh.flush()
                    inspector = Inspector(etdump_data=etdump, debug_buffer_path=fh.name)
            else:
                inspector = Inspector(etdump_data=etdump)
    except Exception as exc:  # noqa: BLE001 - flatbuffer parsing fails with many types; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise EtdumpError(f"not a readable ETDump (truncated or another file?): {type(exc).__name__}: {first}") \
            from None
    blocks = [b for b in inspector.event_blocks if b.name == "Execute" and b.events]
    if not blocks:
        raise EtdumpError("the ETDump holds no run of the program (no 'Execute' events): was forward() called "
                          "before the ETDump was written?")
    block = max(blocks, key=lambda b: max((len(e.perf_data.raw) for e in b.events if e.perf_data), default=0))
    total = max((len(e.perf_data.raw) for e in block.events if e.perf_data), default=0)
    drop = drop if total > drop else 0
    events: list[TimedEvent] = []
    execute = Stat([])
    for e in block.events:
        if e.perf_data is None or e.name in _FRAMEWORK:
            continue
        time = Stat([float(v) for v in e.perf_data.raw[drop:]])
        if e.name == "Method::execute":
            execute = time
            continue
        kind: EventKind = "delegate_call" if e.name == "DELEGATE_CALL" else \
            "delegated" if e.is_delegated_op else "kernel"
        ident = None if e.delegate_debug_identifier is None else str(e.delegate_debug_identifier)
        events.append(TimedEvent(e.name, kind, time, e._instruction_id, ident))
    return Profile(events, total - drop, drop, None, None, execute)
