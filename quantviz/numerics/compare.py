"""Everything `quantviz compare` reports, computed from one finished pipeline, as plain data.

Example::

    pipe = Pipeline(load_model("sample:digits_cnn"), PipelineConfig()).run()
    report = compare(pipe, sensitivity_layers=4)
    report.write(Path("out"))          # numerics.json and one CSV per table
    report.frames()["per_node"]        # pandas DataFrame, worst node first
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from quantviz.numerics.levels import LEVELS, run_levels
from quantviz.numerics.metrics import accuracy, pair_metrics

Progress = Callable[[float, str], None]

RUNTIME_INTERMEDIATES_NOTE = (
    "every kernel call's output in the runtime (ETDump with a debug buffer, read by executorch.devtools.Inspector) "
    "against the same node of the fused program run ahead of time, matched by operator and order of execution, "
    "on the first batch; ops inside delegates have no per-op output and are listed as such")


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
                "sensitivity": pd.DataFrame(self.sensitivity)}

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


def compare(pipe, sensitivity_layers: int = 0, max_batches: int = 16, progress: Progress = lambda f, t: None,
            kernels: dict[str, Callable[..., torch.Tensor]] | None = None) -> NumericsReport:
    """Compute every numerics table for a pipeline that has run (as far as it got)."""
    from quantviz.numerics.kernel_instances import kernel_instances
    from quantviz.numerics.per_node import per_node_table
    from quantviz.runtime import output_scale

    report = NumericsReport(pipe.spec.name, pipe.config.to_dict())
    sets = data_sets(pipe.spec, max_batches)
    fuse = pipe.results.get("fuse")
    scale = output_scale(fuse.artifact) if fuse is not None and fuse.ok else None
    for i, (data, (batches, labels)) in enumerate(sets.items()):
        progress(0.1 + 0.3 * i / len(sets), f"levels on {data} data")
        levels = run_levels(pipe, batches)
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
        from quantviz.numerics.kernel_instances import has_delegates

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
    if emit is None or not emit.ok or report.levels.get("runtime") != "ok":
        report.runtime_intermediates = {"available": False,
                                        "reason": f"the runtime did not run: {report.levels.get('runtime')}"}
    else:
        from quantviz.numerics.runtime_intermediates import runtime_intermediates

        progress(0.65, "runtime intermediates (ETDump)")
        try:
            rows = [r.to_dict() for r in runtime_intermediates(pipe, comparison[0])]
            report.runtime_intermediates = {"available": True, "reason": RUNTIME_INTERMEDIATES_NOTE, "rows": rows}
        except (RuntimeError, ValueError, OSError) as exc:  # the devtools are experimental: keep the rest
            report.runtime_intermediates = {"available": False, "reason": f"ETDump could not be read: {exc}"}
    if sensitivity_layers and convert is not None and convert.ok:
        from quantviz.numerics.sensitivity import sensitivity

        batches, labels = sets.get("evaluation", next(iter(sets.values())))
        report.sensitivity = [r.to_dict() for r in sensitivity(
            pipe, batches, labels, sensitivity_layers,
            lambda f, t: progress(0.7 + 0.3 * f, t))]
    progress(1.0, "numerics done")
    return report
