"""Everything `quantviz compare` reports, computed from one finished pipeline, as plain data.

Example::

    pipe = Pipeline(load_model("sample:digits_cnn"), PipelineConfig()).run()
    report = compare(pipe, sensitivity_layers=4)
    report.write(Path("out"))          # numerics.json and one CSV per table
    report.frames()["per_node"]        # pandas DataFrame, worst node first
    report.blame[0]["runtime_local_max_lsb"]   # per quantized pattern: where accuracy is lost (blame.py)
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from quantviz.numerics.blame import BlameRow, blame_table
from quantviz.numerics.kernel_instances import has_delegates, kernel_instances
from quantviz.numerics.levels import LEVELS, LevelOutputs, run_levels
from quantviz.measure.metrics import accuracy, lsb_summary, pair_metrics, sqnr_db
from quantviz.numerics.per_node import per_node_table
from quantviz.pipeline_view import PipelineView
from quantviz.runtime import concat_outputs, load_program, output_scale

if TYPE_CHECKING:
    from quantviz.pipeline import Pipeline

Progress = Callable[[float, str], None]

RUNTIME_INTERMEDIATES_NOTE = (
    "every kernel call's output in the runtime (ETDump with a debug buffer, read by executorch.devtools.Inspector) "
    "against the same node of the fused program run ahead of time, matched by operator and order of execution, "
    "on the first batch; ops inside delegates have no per-op output and are listed as such (with "
    "--delegate-granularity op every delegate is one op, and the blame table reads each one's output)")
BLAME_COLUMNS = list(BlameRow("", "", "", "", 0).to_dict())


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


@dataclass
class NumericsReport:
    model: str
    config: dict[str, Any]
    levels: dict[str, str] = field(default_factory=dict)            # level -> "ok" or why it did not run
    end_to_end: list[dict[str, Any]] = field(default_factory=list)   # one row per (data set, level pair)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # data set -> level -> accuracy
    per_node: list[dict[str, Any]] = field(default_factory=list)
    kernels: list[dict[str, Any]] = field(default_factory=list)
    kernels_note: str = ""
    runtime_intermediates: dict[str, Any] = field(default_factory=dict)  # available, reason, rows
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    blame: list[dict[str, Any]] = field(default_factory=list)     # one row per quantized pattern (blame.BlameRow)
    blame_note: str = ""                                           # what the blame table covers, in one paragraph
    blame_summary: dict[str, Any] = field(default_factory=dict)    # counts, first divergence, ops over 1 LSB
    outputs: list[dict[str, Any]] = field(default_factory=list)   # every leaf of the model's output: compared?
    granularity_check: dict[str, Any] = field(default_factory=dict)  # per-op delegates vs graph ones, end to end
    runtime_reused: bool = False                                   # the run stage's runtime outputs were reused

    def metric(self, data: str, a: str, b: str, name: str = "sqnr_db") -> float | None:
        for row in self.end_to_end:
            if row["data"] == data and row["a"] == a and row["b"] == b:
                return row.get(name)
        return None

    def to_dict(self) -> dict[str, Any]:
        return _clean({k: getattr(self, k) for k in self.__dataclass_fields__})

    def frames(self) -> dict[str, Any]:
        import pandas as pd

        acc = [{"data": d, "level": lvl, "accuracy": a} for d, by in self.accuracy.items() for lvl, a in by.items()]
        kernels = [{**{k: v for k, v in r.items() if k != "histogram"},
                    "histogram": " ".join(f"{k}:{v}" for k, v in r["histogram"].items())} for r in self.kernels]
        return {"end_to_end": pd.DataFrame(self.end_to_end), "accuracy": pd.DataFrame(acc),
                "per_node": pd.DataFrame(self.per_node), "kernels": pd.DataFrame(kernels),
                "runtime_intermediates": pd.DataFrame(self.runtime_intermediates.get("rows", [])),
                "sensitivity": pd.DataFrame(self.sensitivity),
                "blame": pd.DataFrame(self.blame, columns=BLAME_COLUMNS if not self.blame else None),
                "outputs": pd.DataFrame(self.outputs)}

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "numerics.json"]
        written[0].write_text(json.dumps(self.to_dict(), indent=2))
        for name, frame in self.frames().items():
            path = out / f"{name}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
        return written


def data_sets(spec, max_batches: int) -> dict[str, tuple[list[tuple], torch.Tensor | None]]:
    """'calibration' and 'evaluation' inputs (at most ``max_batches`` each) and the evaluation labels."""
    sets: dict[str, tuple[list[tuple], torch.Tensor | None]] = {}
    if spec.calibration_batches:
        sets["calibration"] = (list(spec.calibration_batches)[:max_batches], None)
    if spec.eval_batches:
        chosen = list(spec.eval_batches)[:max_batches]
        labels = None
        if all(lbl is not None for _, lbl in chosen):
            labels = torch.cat([lbl for _, lbl in chosen])
        sets["evaluation"] = ([inp for inp, _ in chosen], labels)
    if not sets:
        sets["example"] = ([tuple(spec.example_inputs)], None)
    return sets


def compare(pipe: "Pipeline", sensitivity_layers: int = 0, max_batches: int = 16, progress: Progress = lambda f, t: None,
            kernels: dict[str, Callable[..., torch.Tensor]] | None = None, blame_batches: int = 1,
            check_granularity: bool = True) -> NumericsReport:
    """Compute every numerics table for a pipeline that has run (as far as it got).

    ``blame_batches``: how many comparison batches the blame table runs on (each is one runtime run with an
    ETDump); ``check_granularity``: with ``delegate_granularity="op"``, also lower with whole-graph delegates and
    compare the two programs' outputs (``NumericsReport.granularity_check``).
    """
    report = NumericsReport(pipe.spec.name, pipe.config.to_dict())
    sets = data_sets(pipe.spec, max_batches)
    fuse = pipe.results.get("fuse")
    scale = output_scale(fuse.artifact) if fuse is not None and fuse.ok else None
    for i, (data, (batches, labels)) in enumerate(sets.items()):
        progress(0.1 + 0.3 * i / len(sets), f"levels on {data} data")
        levels = run_levels(pipe, batches)
        report.runtime_reused = report.runtime_reused or levels.runtime_reused
        if not report.outputs:
            report.outputs = outputs_table(levels)
        for level in LEVELS:
            report.levels[level] = "ok" if level in levels.outputs else levels.unavailable.get(level, "not run")
        for a, b in itertools.combinations([lvl for lvl in LEVELS if lvl in levels.outputs], 2):
            m = pair_metrics(levels.outputs[a], levels.outputs[b], scale if a != "float" else None)
            report.end_to_end.append({"data": data, "a": a, "b": b, **m})
        if labels is not None:
            report.accuracy[data] = {lvl: accuracy(out, labels) for lvl, out in levels.outputs.items()}
    convert = pipe.results.get("convert")
    comparison = next(iter(sets.values()))[0] if "evaluation" not in sets else sets["evaluation"][0]
    if convert is not None and convert.ok:
        progress(0.5, "per-node float vs reference")
        report.per_node = [r.to_dict() for r in per_node_table(pipe, comparison)]
    if fuse is not None and fuse.ok and pipe.config.uses_quantviz_kernels:

        if has_delegates(fuse.artifact.exported_program().graph_module):
            report.kernels_note = "the program calls delegates, which only run in the runtime"
        else:
            progress(0.6, "quantviz kernel instances vs reference")
            report.kernels = [k.to_dict() for k in kernel_instances(fuse.artifact, comparison, kernels)]
            report.kernels_note = f"{len(report.kernels)} quantviz operator instance(s) on the model's own data"
    else:
        report.kernels_note = ("no quantviz operators in this program (fusion is "
                               f"{pipe.config.fusion!r}; use --fusion quantviz or both)")
    emit = pipe.results.get("emit")
    events = None
    if emit is None or not emit.ok or report.levels.get("runtime") != "ok":
        report.runtime_intermediates = {"available": False,
                                        "reason": f"the runtime did not run: {report.levels.get('runtime')}"}
    else:
        from quantviz.numerics.runtime_intermediates import debug_buffer_size, runtime_events, runtime_intermediates

        progress(0.65, "runtime intermediates (ETDump)")
        try:
            events = [runtime_events(emit.artifact.buffer, b, debug_buffer_size(emit.artifact))
                      for b in comparison[:max(blame_batches, 1)]]
            rows = [r.to_dict() for r in runtime_intermediates(pipe, comparison[0], events[0])]
            report.runtime_intermediates = {"available": True, "reason": RUNTIME_INTERMEDIATES_NOTE, "rows": rows}
        except (RuntimeError, ValueError, OSError) as exc:  # the devtools are experimental: keep the rest
            events = None
            report.runtime_intermediates = {"available": False, "reason": f"ETDump could not be read: {exc}"}
    if convert is not None and convert.ok:
        progress(0.68, "blame: where accuracy is lost, node by node")
        try:
            blame_into(report, pipe, comparison[:max(blame_batches, 1)], events)
        except Exception as exc:  # noqa: BLE001 - a model the blame table cannot follow keeps the other tables
            report.blame_note = f"the blame table could not be made: {type(exc).__name__}: {exc}"
    if check_granularity and pipe.config.delegate_granularity == "op" and pipe.config.partitioner != "none" \
            and report.levels.get("runtime") == "ok":
        progress(0.69, "per-op delegates against whole-graph ones")
        report.granularity_check = granularity_check(pipe, comparison, scale)
    if sensitivity_layers and convert is not None and convert.ok:
        from quantviz.numerics.sensitivity import sensitivity

        batches, labels = sets.get("evaluation", next(iter(sets.values())))
        report.sensitivity = [r.to_dict() for r in sensitivity(
            pipe, batches, labels, sensitivity_layers,
            lambda f, t: progress(0.7 + 0.3 * f, t))]
    progress(1.0, "numerics done")
    return report


def blame_into(report: NumericsReport, pipe: PipelineView, batches: list[tuple], events: list | None) -> None:
    """Fill ``report.blame``, ``blame_summary`` and ``blame_note`` (runtime columns from ``events``, one list per
    batch, when the runtime ran and its ETDump was read)."""
    why = "" if events is not None else (
        str(report.levels.get("runtime")) if report.levels.get("runtime") != "ok"
        else report.runtime_intermediates.get("reason", "the ETDump could not be read"))
    rows = [r.to_dict() for r in blame_table(pipe, batches, events, runtime_unavailable=why)]
    report.blame = rows
    report.blame_summary = blame_summary(rows)
    s = report.blame_summary
    first = s["first_divergence"]
    report.blame_note = (
        f"{s['patterns']} quantized pattern(s) on {len(batches)} batch(es); the runtime's value of "
        f"{s['with_runtime']} ({s['delegated_with_runtime']} of {s['delegated']} delegated); "
        + (f"first divergence (runtime > 1 LSB from its reference op given equal inputs): {first}" if first
           else "no runtime value to blame" if not s["with_runtime"]
           else "no runtime op is more than 1 LSB from its reference op given equal inputs")
        + (f"; delegated ops over 1 LSB: {', '.join(o['node'] for o in s['delegate_ops_over_1_lsb'])}"
           if s["delegate_ops_over_1_lsb"] else ""))


def blame_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over blame rows: patterns, with a runtime value, delegated, the first divergence, the delegated ops
    (one delegate each) whose runtime local error exceeds 1 LSB."""
    delegated = [r for r in rows if r["delegate"]]
    over = [{"node": r["node"], "op": r["op"], "runtime_local_max_lsb": r["runtime_local_max_lsb"]}
            for r in rows if r["runtime_source"] == "delegate-op" and r["runtime_local_max_lsb"] > 1]
    return {"patterns": len(rows), "with_runtime": sum(bool(r["runtime_source"]) for r in rows),
            "delegated": len(delegated), "delegated_with_runtime": sum(bool(r["runtime_source"]) for r in delegated),
            "first_divergence": next((r["node"] for r in rows if r["first_divergence"]), ""),
            "delegate_ops_over_1_lsb": over}


def _aligned(leaves: list[tuple[str, Any]], base: list[tuple[str, Any]], i: int) -> Any:
    """Leaf ``i`` of ``base``'s structure in another level's leaves (the runtime's flat list may hold the tensors
    only)."""
    if len(leaves) == len(base):
        return leaves[i][1]
    tensors = [k for k, (_, v) in enumerate(base) if isinstance(v, torch.Tensor)]
    if len(leaves) == len(tensors) and i in tensors:
        return leaves[tensors.index(i)][1]
    return None


def outputs_table(levels: LevelOutputs) -> list[dict[str, Any]]:
    """One row per leaf of the model's output (the float model's structure): its path (``logits``, ``[1]``,
    ``aux[0]``), dtype and shape, whether it is compared and why not (not a tensor; an integer tensor, where SQNR
    does not apply: the share of equal elements is given instead), and SQNR between every pair of levels.
    ``end_to_end`` marks the output the end-to-end table compares (the first floating output).

    Example::

        outputs_table(run_levels(pipe, batches))[0]
        # {'path': 'logits', 'dtype': 'float32', 'compared': True, 'float_vs_runtime_sqnr_db': 31.2, ...}
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
        row: dict[str, Any] = {"path": path, "dtype": str(leaf.dtype).removeprefix("torch.") if tensor
                               else type(leaf).__name__, "shape": list(leaf.shape) if tensor else None,
                               "compared": False, "why_not": "", "end_to_end": i == first}
        values: dict[str, torch.Tensor] = {}
        for level in LEVELS:
            got = [_aligned(b, bb, i) for b, bb in zip(levels.leaves.get(level, []), base_batches)]
            if got and all(isinstance(g, torch.Tensor) for g in got):
                values[level] = torch.cat([g.detach().flatten() for g in got])
        if not tensor:
            row["why_not"] = f"not a tensor ({type(leaf).__name__})"
        elif not leaf.dtype.is_floating_point:
            row["why_not"] = f"integer tensor ({row['dtype']}): SQNR does not apply; equal share given instead"
            for a, b in itertools.combinations(values, 2):
                if values[a].numel() == values[b].numel():
                    row[f"{a}_vs_{b}_equal_share"] = float((values[a] == values[b]).double().mean())
        else:
            row["compared"] = True
            for a, b in itertools.combinations(values, 2):
                if values[a].numel() == values[b].numel():
                    row[f"{a}_vs_{b}_sqnr_db"] = sqnr_db(values[a], values[b])
            missing = [lvl for lvl in levels.leaves if lvl not in values]
            if missing:
                row["why_not"] = f"no value at level(s) {', '.join(missing)} (a different number of outputs)"
        rows.append(row)
    return rows


def granularity_check(pipe: "Pipeline", batches: list[tuple], scale: float | None) -> dict[str, Any]:
    """The per-op program (every op its own delegate) against the whole-graph one, end to end on ``batches``: the
    same output, or how far apart (SQNR, max LSB of the output scale). Lowers a fork of ``pipe`` with
    ``delegate_granularity="graph"`` (from the edge stage on).

    Example::

        granularity_check(pipe, batches, 0.05)   # {'identical': True, 'sqnr_db': inf, 'max_lsb': 0.0, ...}
    """
    other = pipe.fork(pipe.config.with_changes(delegate_granularity="graph", until="emit"))
    other.on_event = lambda event: None  # the caller's progress lines are for its own pipeline
    other.run()
    if not other.ok:
        return {"other": "graph", "error": str(other.failed.error)}
    per_op, graph = pipe.results["emit"].artifact, other.results["emit"].artifact
    outs = {}
    for name, program in (("op", per_op), ("graph", graph)):
        buffer = program.buffer  # kept referenced while the module lives
        module = load_program(buffer)
        outs[name] = concat_outputs([module.forward(tuple(b)) for b in batches])
    a, b = outs["graph"], outs["op"]
    result = {"other": "graph", "batches": len(batches), "identical": bool(torch.equal(a, b)),
              "sqnr_db": sqnr_db(a, b),
              "delegate_calls": {"op": pipe.results["delegate"].metrics.get("delegate_calls"),
                                 "graph": other.results["delegate"].metrics.get("delegate_calls")}}
    if scale:
        result.update({f"{k}": v for k, v in lsb_summary(a, b, scale).items()})
    return result
