"""Everything `quantviz compare` reports, computed from one finished pipeline, as typed records.

The report keeps every table as records (``LevelComparison``, ``PerNodeRow``, ``KernelInstance``,
``RuntimeOpRow``, ``BlameRow``, ``SensitivityRow``, ``OutputRow``, ...) until its edges: ``to_dict()`` (numerics.json),
``frames()`` (pandas, one CSV each), ``write()`` and ``summary_lines()`` (what ``quantviz compare`` prints).

Example::

    pipe = Pipeline(load_model("sample:digits_cnn"), PipelineConfig()).run()
    report = compare(pipe, sensitivity_layers=4)
    report.write(Path("out"))          # numerics.json and one CSV per table
    report.frames()["per_node"]        # pandas DataFrame, worst node first
    report.blame[0].runtime_local_max_lsb   # per quantized pattern: where accuracy is lost (blame.py)
    print("\n".join(report.summary_lines()))
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import torch

from quantviz.numerics.blame import BlameRow, blame_table
from quantviz.numerics.kernel_instances import KernelInstance, has_delegates, kernel_instances
from quantviz.numerics.levels import LEVELS, LevelOutputs, run_levels
from quantviz.measure.metrics import accuracy, lsb_summary, pair_metrics, sqnr_db
from quantviz.numerics.per_node import PerNodeRow, per_node_table
from quantviz.numerics.runtime_intermediates import (RuntimeIntermediates, debug_buffer_size, runtime_events,
                                                     runtime_intermediates)
from quantviz.numerics.sensitivity import SensitivityRow, sensitivity
from quantviz.numerics.taps import TapRun, tap_runtime
from quantviz.config import PipelineConfig
from quantviz.data import evaluation_data
from quantviz.backends import backend_of
from quantviz.backends.delegate_runs import run_with_delegates
from quantviz.backends.execute import execute
from quantviz.lowering import delegates
from quantviz.numerics.runtime_intermediates import delegate_events
from quantviz.pipeline_view import PipelineView
from quantviz.runtime import concat_outputs, load_program, output_scale

if TYPE_CHECKING:
    import pandas as pd

    from quantviz.pipeline import Pipeline

Progress = Callable[[float, str], None]
LevelName = Literal["float", "reference", "fused", "runtime"]   # levels.LEVELS
DataSet = Literal["calibration", "evaluation", "example"]       # data_sets' names

RUNTIME_INTERMEDIATES_NOTE = (
    "every kernel call's output in the runtime (ETDump with a debug buffer, read by executorch.devtools.Inspector) "
    "against the same node of the fused program run ahead of time, matched by operator and order of execution, "
    "on the first batch; ops inside delegates have no per-op output and are listed as such (with "
    "--delegate-granularity op every delegate is one op, and the blame table reads each one's output)")
BLAME_COLUMNS = list(BlameRow("", "", "", "", 0).to_dict())
NAN = float("nan")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _number(v: float | None) -> bool:
    """A value to print: not None, not NaN."""
    return v is not None and v == v


@dataclass(frozen=True)
class LevelState:
    """Whether one level ran on the report's data (``NumericsReport.levels``)."""

    status: Literal["ok", "unavailable"]
    reason: str = ""    # why it did not run ("" when ok)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str:
        """numerics.json's value: "ok", or why the level did not run."""
        return "ok" if self.ok else self.reason


LEVEL_OK = LevelState("ok")
NOT_RUN = LevelState("unavailable", "not run")


@dataclass
class LevelComparison:
    """Two levels compared end to end on one data set: the model's first floating output (``end_to_end``)."""

    data: DataSet              # the data set the levels ran on
    a: LevelName               # the earlier level: the metrics' reference
    b: LevelName               # the later level, measured against ``a``
    sqnr_db: float             # SQNR of ``b`` against ``a`` (dB; inf when identical)
    cosine: float              # cosine similarity of the flattened outputs
    max_abs_error: float       # max |a - b|
    mean_abs_error: float      # mean |a - b|
    max_lsb: float | None = None         # max |a - b| in LSB of the output scale; None when ``a`` is float or the
    #                                      output has no scale
    share_ge_1_lsb: float | None = None  # share of elements off by at least 1 LSB (None as ``max_lsb``)

    def to_dict(self) -> dict[str, Any]:
        """The numerics.json row: the LSB columns only where they apply."""
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("max_lsb", "share_ge_1_lsb")}

    def summary(self) -> str:
        """``"reference vs runtime: SQNR 58.0 dB, cosine 1.00000, max 1 LSB"``."""
        return (f"{self.a} vs {self.b}: SQNR {self.sqnr_db:.1f} dB, cosine {self.cosine:.5f}"
                + (f", max {self.max_lsb:.0f} LSB" if _number(self.max_lsb) else ""))


@dataclass
class OverLsb:
    """A delegated op (one delegate of its own) whose runtime local error exceeds 1 LSB."""

    node: str                      # the pattern's anchor in the convert graph
    op: str                        # the pattern's ops
    runtime_local_max_lsb: float   # its runtime local error, in LSB


@dataclass
class BlameSummary:
    """Counts over the blame table (``NumericsReport.blame_summary``)."""

    patterns: int = 0                 # rows: quantized patterns of the convert graph
    with_runtime: int = 0             # rows with a runtime value
    delegated: int = 0                # rows computed inside a delegate
    delegated_with_runtime: int = 0   # delegated rows with a runtime value
    first_divergence: str = ""        # the first divergent pattern's node ("" when none)
    delegate_ops_over_1_lsb: list[OverLsb] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OutputRow:
    """One leaf of the model's output (the float model's structure), and whether and how it is compared."""

    path: str                  # "logits", "[1]", "aux[0]"
    dtype: str                 # "float32", "int64", or the leaf's type name when it is not a tensor
    shape: list[int] | None    # None when not a tensor
    compared: bool = False     # a floating tensor: SQNR between every pair of levels
    why_not: str = ""          # why it is not compared, or why some level has no value
    end_to_end: bool = False   # the output the end-to-end table compares (the first floating one)
    sqnr_db: dict[tuple[LevelName, LevelName], float] = field(default_factory=dict)      # (a, b) -> dB
    equal_share: dict[tuple[LevelName, LevelName], float] = field(default_factory=dict)  # integer outputs

    def to_dict(self) -> dict[str, Any]:
        """The numerics.json row: one ``<a>_vs_<b>_sqnr_db`` (or ``..._equal_share``) column per pair."""
        return {"path": self.path, "dtype": self.dtype, "shape": self.shape, "compared": self.compared,
                "why_not": self.why_not, "end_to_end": self.end_to_end,
                **{f"{a}_vs_{b}_equal_share": v for (a, b), v in self.equal_share.items()},
                **{f"{a}_vs_{b}_sqnr_db": v for (a, b), v in self.sqnr_db.items()}}


@dataclass
class GranularityCheck:
    """The per-op program (every op its own delegate) against the whole-graph one, end to end."""

    other: str = "graph"      # the granularity compared against
    error: str = ""           # why the other program could not be lowered ("" when it was)
    batches: int = 0          # batches both programs ran on
    identical: bool = False   # bit-identical outputs
    sqnr_db: float = NAN      # the per-op output against the whole-graph one
    delegate_calls_op: int | None = None     # delegate calls of the per-op program
    delegate_calls_graph: int | None = None  # ... and of the whole-graph one
    max_lsb: float | None = None         # max difference in LSB of the output scale (None without a scale)
    share_ge_1_lsb: float | None = None  # share of elements off by at least 1 LSB (None without a scale)

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"other": self.other, "error": self.error}
        lsb = {k: v for k, v in (("max_lsb", self.max_lsb), ("share_ge_1_lsb", self.share_ge_1_lsb))
               if v is not None}
        return {"other": self.other, "batches": self.batches, "identical": self.identical, "sqnr_db": self.sqnr_db,
                "delegate_calls": {"op": self.delegate_calls_op, "graph": self.delegate_calls_graph}, **lsb}

    def summary(self) -> str:
        """``"identical output"``, ``"SQNR 48.2 dB, max 1 LSB"`` or ``"could not lower: ..."``."""
        if self.error:
            return f"could not lower: {self.error}"
        if self.identical:
            return "identical output"
        return f"SQNR {self.sqnr_db:.1f} dB" + (f", max {self.max_lsb:.0f} LSB" if self.max_lsb is not None else "")


@dataclass
class NumericsReport:
    model: str
    config: PipelineConfig                                           # the run's (to_dict at the edge)
    levels: dict[LevelName, LevelState] = field(default_factory=dict)  # ran, or why not
    end_to_end: list[LevelComparison] = field(default_factory=list)  # one row per (data set, level pair)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # data set -> level -> accuracy
    per_node: list[PerNodeRow] = field(default_factory=list)         # float vs reference, worst first
    kernels: list[KernelInstance] = field(default_factory=list)      # quantviz kernel instances, worst first
    kernels_note: str = ""
    runtime_intermediates: RuntimeIntermediates = field(default_factory=RuntimeIntermediates)
    sensitivity: list[SensitivityRow] = field(default_factory=list)  # most sensitive layer first
    blame: list[BlameRow] = field(default_factory=list)              # one row per quantized pattern
    blame_note: str = ""                                              # what the blame table covers, in one paragraph
    blame_summary: BlameSummary | None = None                         # None when there is no blame table
    outputs: list[OutputRow] = field(default_factory=list)           # every leaf of the model's output: compared?
    granularity_check: GranularityCheck | None = None                 # per-op delegates vs graph ones (when run)
    taps: TapRun | None = None                                        # values inside delegates, by taps (when run)
    runtime_reused: bool = False                                      # the run stage's runtime outputs were reused
    data: dict[str, str] = field(default_factory=dict)                # data set -> what it is (evaluation, ...)

    def level(self, name: str) -> LevelState:
        """One level's state (``NOT_RUN`` when the report does not know it)."""
        return self.levels.get(name, NOT_RUN)  # type: ignore[call-overload]

    def metric(self, data: str, a: str, b: str, name: str = "sqnr_db") -> float | None:
        for row in self.end_to_end:
            if row.data == data and row.a == a and row.b == b:
                return getattr(row, name, None)
        return None

    def main_data(self) -> str:
        """The data set the summary and ``--fail-below-sqnr`` read: synthetic held-out when asked for, else
        evaluation, else the first (calibration: said so in the summary's first line)."""
        for name in ("synthetic held-out", "evaluation"):
            if name in self.data or any(r.data == name for r in self.end_to_end):
                return name
        if self.end_to_end:
            return self.end_to_end[0].data
        return next(iter(self.data), "")

    def to_dict(self) -> dict[str, Any]:
        """numerics.json: plain data, infinities as "inf"/"-inf", NaN as null."""
        return _clean({
            "model": self.model, "config": self.config.to_dict(), "data": dict(self.data),
            "levels": {k: v.text for k, v in self.levels.items()},
            "end_to_end": [r.to_dict() for r in self.end_to_end],
            "accuracy": {d: dict(by) for d, by in self.accuracy.items()},
            "per_node": [r.to_dict() for r in self.per_node],
            "kernels": [r.to_dict() for r in self.kernels],
            "kernels_note": self.kernels_note,
            "runtime_intermediates": self.runtime_intermediates.to_dict(),
            "sensitivity": [r.to_dict() for r in self.sensitivity],
            "blame": [r.to_dict() for r in self.blame],
            "blame_note": self.blame_note,
            "blame_summary": self.blame_summary.to_dict() if self.blame_summary is not None else {},
            "outputs": [r.to_dict() for r in self.outputs],
            "granularity_check": self.granularity_check.to_dict() if self.granularity_check is not None else {},
            "taps": self.taps.to_dict() if self.taps is not None else {},
            "runtime_reused": self.runtime_reused})

    def frames(self) -> dict[str, pd.DataFrame]:
        """One pandas DataFrame per table (the CSV files), values as computed (inf and NaN kept)."""
        import pandas as pd

        acc = [{"data": d, "level": lvl, "accuracy": a} for d, by in self.accuracy.items() for lvl, a in by.items()]
        kernels = [{**{k: v for k, v in r.to_dict().items() if k != "histogram"},
                    "histogram": " ".join(f"{k}:{v}" for k, v in r.histogram.items())} for r in self.kernels]
        return {"end_to_end": pd.DataFrame([r.to_dict() for r in self.end_to_end]), "accuracy": pd.DataFrame(acc),
                "per_node": pd.DataFrame([r.to_dict() for r in self.per_node]), "kernels": pd.DataFrame(kernels),
                "runtime_intermediates": pd.DataFrame([r.to_dict() for r in self.runtime_intermediates.rows]
                                                      if self.runtime_intermediates.available else []),
                "sensitivity": pd.DataFrame([r.to_dict() for r in self.sensitivity]),
                "blame": pd.DataFrame([r.to_dict() for r in self.blame],
                                      columns=BLAME_COLUMNS if not self.blame else None),
                "outputs": pd.DataFrame([r.to_dict() for r in self.outputs])}

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "numerics.json"]
        written[0].write_text(json.dumps(self.to_dict(), indent=2))
        for name, frame in self.frames().items():
            path = out / f"{name}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
        return written

    def summary_lines(self) -> list[str]:
        """What ``quantviz compare`` prints (each line indented there): every level, the end-to-end pairs on the
        main data set, the worst node, the worst kernel instance, the runtime intermediates, the blame note, the
        granularity check, the outputs not compared and whether the run stage's outputs were reused.

            report.summary_lines()[:2]   # ['float     ok', 'reference ok']
        """
        data = self.main_data()
        lines = [f"measured on {self.data[data]}"] if data in self.data else []
        lines += [f"{level:<9} {'ok' if state.ok else 'unavailable: ' + state.text}"
                  for level, state in self.levels.items()]
        lines += [row.summary() for row in self.end_to_end if row.data == data]
        if self.per_node:
            worst = self.per_node[0]
            lines.append(f"worst node: {worst.node} ({worst.sqnr_db:.1f} dB float vs reference)")
        if self.kernels:
            lines.append(f"quantviz kernels: worst instance {self.kernels[0].node} "
                         f"{self.kernels[0].max_lsb} LSB off the reference")
        ri = self.runtime_intermediates
        if ri.available:
            compared, hidden = ri.compared(), ri.inside_delegates()
            worst_diff = max((r.max_abs_diff for r in compared), default=0.0)
            lines.append(f"runtime intermediates: {len(compared)} kernel call(s) compared with the fused program, "
                         f"max difference {worst_diff:g}"
                         + (f"; {len(hidden)} op(s) inside delegates" if hidden else ""))
        else:
            lines.append(f"runtime intermediates: unavailable ({ri.reason})")
        if self.blame_note:
            lines.append(f"blame: {self.blame_note}")
        if self.taps is not None:
            lines.append("inside delegates: " + self.taps.summary())
        if self.granularity_check is not None:
            lines.append("per-op delegates vs whole-graph ones: " + self.granularity_check.summary())
        not_compared = [o.path for o in self.outputs if not o.compared]
        if not_compared:
            lines.append(f"outputs not compared: {', '.join(not_compared)} (see outputs.csv)")
        if self.runtime_reused:
            lines.append("runtime outputs reused from the run stage")
        return lines


def data_sets(spec, max_batches: int, config: PipelineConfig | None = None
              ) -> dict[str, tuple[list[tuple], torch.Tensor | None]]:
    """'calibration', 'evaluation' and (``config.held_out``) 'synthetic held-out' inputs, at most ``max_batches``
    each, with their labels (synthetic batches have none)."""
    sets: dict[str, tuple[list[tuple], torch.Tensor | None]] = {}
    if config is not None and config.held_out:
        sets["synthetic held-out"] = (evaluation_data(spec, config).batches[:max_batches], None)
    if spec.calibration_batches:
        sets["calibration"] = ([spec.arranged(b) for b in spec.calibration_batches][:max_batches], None)
    if spec.eval_batches:
        chosen = list(spec.eval_batches)[:max_batches]
        labels = None
        if all(lbl is not None for _, lbl in chosen):
            labels = torch.cat([lbl for _, lbl in chosen])
        sets["evaluation"] = ([spec.arranged(inp) for inp, _ in chosen], labels)
    if not sets:
        sets["example"] = ([spec.example], None)
    return sets


def _describe_set(name: str, pipe: "Pipeline", n: int) -> str:
    """What a data set of ``compare`` is, in words (as ``quantviz.data.EvaluationData.describe`` says it)."""
    if name == "synthetic held-out":
        return evaluation_data(pipe.spec, pipe.config).describe()
    if name == "evaluation":
        return f"evaluation data: {n} batch(es) from the factory, not used for calibration"
    if name == "calibration" and not pipe.spec.eval_batches and not pipe.config.held_out \
            and not pipe.flow.calibrates(pipe.config):
        return (f"the factory's calibration batches ({n} batch(es); it gave no evaluation data): this flow "
                "calibrates nothing, so they are not flattered")
    if name == "calibration" and not pipe.spec.eval_batches and not pipe.config.held_out:
        return (f"calibration data ({n} batch(es)): the factory gave no evaluation data, so these figures are "
                "measured on the data the observers saw and flatter the model (--held-out N draws synthetic "
                "held-out batches)")
    return f"{name} data ({n} batch(es))"


def compare(pipe: "Pipeline", sensitivity_layers: int = 0, max_batches: int = 16, progress: Progress = lambda f, t: None,
            kernels: dict[str, Callable[..., torch.Tensor]] | None = None, blame_batches: int = 1,
            check_granularity: bool = True, taps: bool = True) -> NumericsReport:
    """Compute every numerics table for a pipeline that has run (as far as it got).

    ``blame_batches``: how many comparison batches the blame table runs on (each is one runtime run with an
    ETDump); ``check_granularity``: with ``delegate_granularity="op"``, also lower with whole-graph delegates and
    compare the two programs' outputs (``NumericsReport.granularity_check``); ``taps``: where delegates hold several
    patterns, also run the program with every quantize tapped (``taps.tap_runtime``) so the blame table has the
    runtime's value inside them (``NumericsReport.taps``).
    """
    report = NumericsReport(pipe.spec.name, pipe.config)
    sets = data_sets(pipe.spec, max_batches, pipe.config)
    report.data = {name: _describe_set(name, pipe, len(b)) for name, (b, _) in sets.items()}
    fuse = pipe.results.get(pipe.role("lowered") or "")
    scale = output_scale(fuse.artifact) if fuse is not None and fuse.ok else None
    for i, (data, (batches, labels)) in enumerate(sets.items()):
        progress(0.1 + 0.3 * i / len(sets), f"levels on {data} data")
        levels = run_levels(pipe, batches)
        report.runtime_reused = report.runtime_reused or levels.runtime_reused
        if not report.outputs:
            report.outputs = outputs_table(levels)
        for level in LEVELS:
            report.levels[level] = LEVEL_OK if level in levels.outputs else \
                LevelState("unavailable", levels.unavailable.get(level, NOT_RUN.reason))
        for a, b in itertools.combinations([lvl for lvl in LEVELS if lvl in levels.outputs], 2):
            m = pair_metrics(levels.outputs[a], levels.outputs[b], scale if a != "float" else None)
            report.end_to_end.append(LevelComparison(data, a, b, m.sqnr_db, m.cosine, m.max_abs_error,
                                                     m.mean_abs_error, m.max_lsb, m.share_ge_1_lsb))
        if labels is not None:
            report.accuracy[data] = {lvl: accuracy(out, labels) for lvl, out in levels.outputs.items()}
    comparison = sets[report.main_data()][0] if report.main_data() in sets else next(iter(sets.values()))[0]
    has_reference = pipe.reference_module() is not None
    if has_reference:
        progress(0.5, "per-node float vs reference")
        report.per_node = per_node_table(pipe, comparison)
    if fuse is not None and fuse.ok and pipe.flow.uses_quantviz_kernels(pipe.config):

        if has_delegates(fuse.artifact.exported_program().graph_module):
            report.kernels_note = "the program calls delegates, which only run in the runtime"
        else:
            progress(0.6, "quantviz kernel instances vs reference")
            report.kernels = kernel_instances(fuse.artifact, comparison, kernels)
            report.kernels_note = f"{len(report.kernels)} quantviz operator instance(s) on the model's own data"
    else:
        report.kernels_note = ("no quantviz operators in this program (fusion is "
                               f"{pipe.config.fusion!r}; use --fusion quantviz or both)")
    emit = pipe.results.get(pipe.role("program") or "")
    events = None
    if emit is None or not emit.ok or not report.level("runtime").ok:
        report.runtime_intermediates = RuntimeIntermediates(
            False, f"the runtime did not run: {report.level('runtime').text}")
    elif backend_of(pipe.config).numbers == "reference-model":  # the delegate calls the reference model ran
        backend = backend_of(pipe.config)
        lowered = pipe.results[pipe.role("lowered")].artifact
        run = run_with_delegates(lowered, comparison[:max(blame_batches, 1)], backend.reference_dispatch,
                                 backend.reference_name)
        events = [delegate_events(calls) for calls in run.calls]
        report.runtime_intermediates = RuntimeIntermediates(
            False, f"the {backend.reference_name} runs each delegate as a whole: its outputs are compared (blame "
                   "table), not the ops inside it")
    else:
        progress(0.65, "runtime intermediates (ETDump)")
        try:
            events = [runtime_events(emit.artifact.buffer, b, debug_buffer_size(emit.artifact))
                      for b in comparison[:max(blame_batches, 1)]]
            rows = runtime_intermediates(pipe, comparison[0], events[0])
            report.runtime_intermediates = RuntimeIntermediates(True, RUNTIME_INTERMEDIATES_NOTE, rows)
        except (RuntimeError, ValueError, OSError) as exc:  # the devtools are experimental: keep the rest
            events = None
            report.runtime_intermediates = RuntimeIntermediates(False, f"ETDump could not be read: {exc}")
    if has_reference:
        progress(0.68, "blame: where accuracy is lost, node by node")
        try:
            tapped = None
            if taps and events is not None and pipe.config.delegate_granularity != "op":
                progress(0.67, "intermediate-output taps inside delegates")
                report.taps = tap_runtime(pipe, comparison[:max(blame_batches, 1)])
                tapped = report.taps.values if report.taps.available else None
            blame_into(report, pipe, comparison[:max(blame_batches, 1)], events, tapped)
        except Exception as exc:  # noqa: BLE001 - a model the blame table cannot follow keeps the other tables
            report.blame_note = f"the blame table could not be made: {type(exc).__name__}: {exc}"
    if check_granularity and pipe.config.delegate_granularity == "op" and delegates(pipe.config) \
            and report.level("runtime").ok:
        progress(0.69, "per-op delegates against whole-graph ones")
        report.granularity_check = granularity_check(pipe, comparison, scale)
    if sensitivity_layers and has_reference:
        batches, labels = sets.get(report.main_data(), next(iter(sets.values())))
        report.sensitivity = sensitivity(pipe, batches, labels, sensitivity_layers,
                                         lambda f, t: progress(0.7 + 0.3 * f, t))
    progress(1.0, "numerics done")
    return report


def blame_into(report: NumericsReport, pipe: PipelineView, batches: list[tuple], events: list | None,
               tapped: list[dict[str, torch.Tensor]] | None = None) -> None:
    """Fill ``report.blame``, ``blame_summary`` and ``blame_note`` (runtime columns from ``events``, one list per
    batch, when the runtime ran and its ETDump was read; ``tapped``: values inside delegates, by taps)."""
    runtime = report.level("runtime")
    why = "" if events is not None else (
        runtime.text if not runtime.ok else report.runtime_intermediates.reason or "the ETDump could not be read")
    rows = blame_table(pipe, batches, events, runtime_unavailable=why, tapped=tapped)
    report.blame = rows
    report.blame_summary = s = blame_summary(rows)
    first = s.first_divergence
    report.blame_note = (
        f"{s.patterns} quantized pattern(s) on {len(batches)} batch(es); the runtime's value of "
        f"{s.with_runtime} ({s.delegated_with_runtime} of {s.delegated} delegated); "
        + (f"first divergence (runtime > 1 LSB from its reference op given equal inputs): {first}" if first
           else "no runtime value to blame" if not s.with_runtime
           else "no runtime op is more than 1 LSB from its reference op given equal inputs")
        + (f"; delegated ops over 1 LSB: {', '.join(o.node for o in s.delegate_ops_over_1_lsb)}"
           if s.delegate_ops_over_1_lsb else ""))


def blame_summary(rows: list[BlameRow]) -> BlameSummary:
    """Counts over blame rows: patterns, with a runtime value, delegated, the first divergence, the delegated ops
    (one delegate each) whose runtime local error exceeds 1 LSB."""
    delegated = [r for r in rows if r.delegate]
    over = [OverLsb(r.node, r.op, r.runtime_local_max_lsb)
            for r in rows if r.runtime_source in ("delegate-op", "tap") and r.runtime_local_max_lsb > 1]
    return BlameSummary(len(rows), sum(bool(r.runtime_source) for r in rows), len(delegated),
                        sum(bool(r.runtime_source) for r in delegated),
                        next((r.node for r in rows if r.first_divergence), ""), over)


def _aligned(leaves: list[tuple[str, Any]], base: list[tuple[str, Any]], i: int) -> Any:
    """Leaf ``i`` of ``base``'s structure in another level's leaves (the runtime's flat list may hold the tensors
    only)."""
    if len(leaves) == len(base):
        return leaves[i][1]
    tensors = [k for k, (_, v) in enumerate(base) if isinstance(v, torch.Tensor)]
    if len(leaves) == len(tensors) and i in tensors:
        return leaves[tensors.index(i)][1]
    return None


def outputs_table(levels: LevelOutputs) -> list[OutputRow]:
    """One row per leaf of the model's output (the float model's structure): its path (``logits``, ``[1]``,
    ``aux[0]``), dtype and shape, whether it is compared and why not (not a tensor; an integer tensor, where SQNR
    does not apply: the share of equal elements is given instead), and SQNR between every pair of levels.
    ``end_to_end`` marks the output the end-to-end table compares (the first floating output).

    Example::

        outputs_table(run_levels(pipe, batches))[0]
        # OutputRow(path='logits', dtype='float32', compared=True, sqnr_db={('float', 'runtime'): 31.2, ...})
    """
    base_batches = levels.leaves.get("float") or []
    if not base_batches:
        return []
    base = base_batches[0]
    first = next((i for i, (_, v) in enumerate(base) if isinstance(v, torch.Tensor) and v.dtype.is_floating_point),
                 None)
    rows = []
    for i, (path, leaf) in enumerate(base):
        tensor = isinstance(leaf, torch.Tensor)
        row = OutputRow(path, str(leaf.dtype).removeprefix("torch.") if tensor else type(leaf).__name__,
                        list(leaf.shape) if tensor else None, end_to_end=i == first)
        values: dict[str, torch.Tensor] = {}
        for level in LEVELS:
            got = [_aligned(b, bb, i) for b, bb in zip(levels.leaves.get(level, []), base_batches)]
            if got and all(isinstance(g, torch.Tensor) for g in got):
                values[level] = torch.cat([g.detach().flatten() for g in got])
        if not tensor:
            row.why_not = f"not a tensor ({type(leaf).__name__})"
        elif not leaf.dtype.is_floating_point:
            row.why_not = f"integer tensor ({row.dtype}): SQNR does not apply; equal share given instead"
            for a, b in itertools.combinations(values, 2):
                if values[a].numel() == values[b].numel():
                    row.equal_share[a, b] = float((values[a] == values[b]).double().mean())
        else:
            row.compared = True
            for a, b in itertools.combinations(values, 2):
                if values[a].numel() == values[b].numel():
                    row.sqnr_db[a, b] = sqnr_db(values[a], values[b])
            missing = [lvl for lvl in levels.leaves if lvl not in values]
            if missing:
                row.why_not = f"no value at level(s) {', '.join(missing)} (a different number of outputs)"
        rows.append(row)
    return rows


def granularity_check(pipe: "Pipeline", batches: list[tuple], scale: float | None) -> GranularityCheck:
    """The per-op program (every op its own delegate) against the whole-graph one, end to end on ``batches``: the
    same output, or how far apart (SQNR, max LSB of the output scale). Lowers a fork of ``pipe`` with
    ``delegate_granularity="graph"`` (from the edge stage on).

    Example::

        granularity_check(pipe, batches, 0.05)   # GranularityCheck(identical=True, sqnr_db=inf, max_lsb=0.0, ...)
    """
    other = pipe.fork(pipe.config.with_changes(delegate_granularity="graph", until=pipe.role("program")))
    other.on_event = lambda event: None  # the caller's progress lines are for its own pipeline
    other.run()
    if not other.ok:
        return GranularityCheck(error=str(other.failed.error))
    program, lowered = pipe.role("program"), pipe.role("lowered")
    outs = {}
    for name, p in (("op", pipe), ("graph", other)):  # the runtime, or the backend's reference model
        done = execute(p.config, p.results[program].artifact, p.results[lowered].artifact, batches)
        outs[name] = concat_outputs(done.leaves)
    a, b = outs["graph"], outs["op"]
    result = GranularityCheck(batches=len(batches), identical=bool(torch.equal(a, b)), sqnr_db=sqnr_db(a, b),
                              delegate_calls_op=pipe.result_of("delegated").metrics.get("delegate_calls"),
                              delegate_calls_graph=other.result_of("delegated").metrics.get("delegate_calls"))
    if scale:
        lsb = lsb_summary(a, b, scale)
        result.max_lsb, result.share_ge_1_lsb = lsb["max_lsb"], lsb["share_ge_1_lsb"]
    return result
