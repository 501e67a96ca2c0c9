"""A recovery's outputs: ``recover.json`` (every trial, the engine facts), ``recover.csv`` (one row per trial),
``reproduce.py`` (the found configuration as bare calls, printing its SQNR), the Pareto charts (``Chart``: SVG
files for the report, Vega-Lite specs for the app), ``recover.md`` (the README-ready table), and the lines the
CLI prints. Every output names the evaluation data its figures are measured on.

Example::

    write_results(found, Path("out/recover"), "sample:digits_cnn")
    print("\\n".join(summary_lines(found, "sample:digits_cnn")))
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantviz.config import PipelineConfig, config_flags
from quantviz.candidates import merge_rule
from quantviz.recover.search import Recovery
from quantviz.recover.trial import Engine, Trial
from quantviz.render.charts import Chart, to_svg, vega_lite
from quantviz.script import script_from_calls

CSV_COLUMNS = ["key", "phase", "candidates", "changes", "flags", "ok", "meets_target", "crashed", "error",
               "sqnr_db", "float_vs_reference_db", "reference_vs_runtime_db", "float_accuracy", "runtime_accuracy",
               "accuracy_drop_points", "float_perplexity", "runtime_perplexity", "float_layers", "pte_bytes",
               "pte_sha256", "latency_ms", "latency_spread", "seconds", "reused_stages", "saved_seconds", "worker",
               "data"]
COLOURS = {"winner": "#16a34a", "meets the target": "#2563eb", "below the target": "#94a3b8",
           "base (as given)": "#dc2626"}


def config_of(found: Recovery, trial: Trial) -> PipelineConfig:
    """The PipelineConfig a trial ran (its changes applied to the base config)."""
    changes = {k: tuple(v) if merge_rule(k) == "append" else v for k, v in trial.changes.items()}
    return found.base_config.with_changes(**changes)


@dataclass
class RecoverFile:
    """``recover.json``: the recovery of one model and the configuration it chose, typed until ``to_dict()`` (the
    file is the recovery's own dict with the model and the chosen configuration beside it)::

        saved = load_recovery(Path("out/recover"))
        saved.recovery.chosen.sqnr_db, saved.chosen_flags      # 39.2, "--flow pt2e --skip-module conv1"
    """

    model: str  # the model reference the recovery ran
    recovery: Recovery
    chosen_config: PipelineConfig  # the chosen trial's config (the winner's, else the best found's)
    chosen_flags: str  # the same as CLI flags (``config_flags``)

    @classmethod
    def of(cls, found: Recovery, model_ref: str) -> "RecoverFile":
        config = config_of(found, found.chosen)
        return cls(model_ref, found, config, config_flags(config))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **self.recovery.to_dict(), "chosen_config": self.chosen_config.to_dict(),
                "chosen_flags": self.chosen_flags}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecoverFile":
        return cls(d["model"], Recovery.from_dict(d), PipelineConfig.from_dict(d["chosen_config"]), d["chosen_flags"])


def quantizer_code(found: Recovery, trial: Trial | None = None) -> list[str]:
    """The quantizer code a user pastes for the chosen trial, as its quantizing stage called it: the pt2e
    quantizer (``SkipModulesQuantizer`` around XNNPACKQuantizer for layers kept float), the fx QConfigMapping
    (``set_module_name(name, None)``), or torchao's ``quantize_`` calls with their ``filter_fn``."""
    trial = trial or found.chosen
    for stage in ("prepare", "quantize"):
        if stage in trial.calls:
            return list(trial.calls[stage])
    return []


def reproduce(found: Recovery, model_ref: str, trial: Trial | None = None) -> str:
    """reproduce.py for the chosen trial (the winner, else the best found): its stages' calls, with the change
    set, the flags and the target in the docstring; it prints the SQNR it measures."""
    trial = trial or found.chosen
    config = config_of(found, trial)
    status = "meets" if found.target.met(trial) else "does not meet"
    header = "\n".join([
        f"quantviz recover: the change set {trial.key!r} {status} the target {found.target.describe()}",
        f"({found.target.reached(trial)} on {trial.data}).",
        "", f"CLI flags: {config_flags(config) or '(the defaults)'}", f"PipelineConfig: {config!r}"])
    return script_from_calls(model_ref, config, trial.calls, header=header, measure=True)


def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return format(v, fmt)


def csv_row(found: Recovery, t: Trial) -> dict[str, Any]:
    return {"key": t.key, "phase": t.phase, "candidates": ";".join(t.candidates),
            "changes": json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in t.changes.items()}),
            "flags": t.flags, "ok": t.ok, "meets_target": found.target.met(t), "crashed": t.crashed,
            "error": t.error, "sqnr_db": t.sqnr_db, "float_vs_reference_db": t.float_vs_reference_db,
            "reference_vs_runtime_db": t.reference_vs_runtime_db, "float_accuracy": t.float_accuracy,
            "runtime_accuracy": t.runtime_accuracy, "accuracy_drop_points": t.accuracy_drop_points,
            "float_perplexity": t.float_perplexity, "runtime_perplexity": t.runtime_perplexity,
            "float_layers": t.float_layers, "pte_bytes": t.pte_bytes, "pte_sha256": t.pte_sha256,
            "latency_ms": t.latency_ms, "latency_spread": t.latency_spread, "seconds": round(t.seconds, 3),
            "reused_stages": ";".join(t.reused),
            "saved_seconds": round(t.saved_seconds, 3), "worker": t.worker, "data": t.data}


# -- the Pareto charts -------------------------------------------------------------------------------------------
def _value(found: Recovery, t: Trial) -> float | None:
    if not t.ok:
        return None
    if found.target.kind == "accuracy_drop":
        return t.runtime_accuracy
    if found.target.kind == "ppl_increase":
        return t.runtime_perplexity
    return t.sqnr_db if t.sqnr_db is not None and math.isfinite(t.sqnr_db) else None


def pareto_front(points: list[tuple[float, float]]) -> set[int]:
    """Indices of the points no other point beats: as small an x and as large a y (ties kept once each)::

        pareto_front([(0, 30.0), (1, 35.0), (1, 33.0), (2, 34.0)])   # {0, 1}
    """
    front = set()
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i):
            if not any(points[j] == (x, y) for j in front):
                front.add(i)
    return front


def pareto_charts(found: Recovery) -> list[Chart]:
    """The measured trials against the cost of their change: float layers, and .pte size; the Pareto front of
    each joined, the target a rule, the winner marked."""
    accuracy = found.target.kind == "accuracy_drop"
    ppl = found.target.kind == "ppl_increase"
    y_title = "runtime accuracy" if accuracy else "runtime perplexity (lower is better)" if ppl else \
        "SQNR float vs runtime (dB)"
    trials = [t for t in found.trials if _value(found, t) is not None and t.pte_bytes]
    if not trials:
        return []
    threshold = None
    if accuracy and found.base.float_accuracy is not None:
        threshold = found.base.float_accuracy - found.target.value / 100
    elif ppl:
        threshold = found.base.float_perplexity * (1 + found.target.value / 100) \
            if found.base.float_perplexity is not None else None
    elif not accuracy:
        threshold = found.target.value
    charts = []
    axes = [("pareto_float_layers", "float_layers", "layers kept float"), ("pareto_pte", "pte_kb", ".pte size (KB)")]
    if all(t.latency_ms is not None for t in trials):  # every trial timed here: latency is an axis too
        axes.append(("pareto_latency", "latency_ms", "runtime latency here (ms, median)"))
    for name, x, x_title in axes:
        rows = []
        for t in trials:
            series = "winner" if found.winner is t else "base (as given)" if t.phase == "base" else \
                "meets the target" if found.target.met(t) else "below the target"
            rows.append({"label": t.key, "phase": t.phase, "float_layers": t.float_layers,
                         "pte_kb": round(t.pte_bytes / 1024, 2), "latency_ms": t.latency_ms,
                         "value": round(_value(found, t), 4),
                         "series": series, "flags": t.flags})
        front = pareto_front([(r[x], -r["value"] if ppl else r["value"]) for r in rows])
        for i, r in enumerate(rows):
            r["front"] = i in front
        order = [s for s in COLOURS if any(r["series"] == s for r in rows)]
        rows.sort(key=lambda r: order.index(r["series"]))
        charts.append(Chart(name, f"{y_title} against {x_title}", "scatter", rows, x, "value", "series", x_title,
                            y_title, note=f"every trial run to the runtime, measured on {found.base.data}; the dashed "
                                          "step line is the Pareto front", value_format=".2%" if accuracy else ".2f",
                            threshold=threshold, threshold_label=f"target: {found.target.describe()}",
                            colours=COLOURS))
    return charts


# -- what the CLI prints and the README table ----------------------------------------------------------------------
def figures(t: Trial) -> str:
    """One trial's runtime figures in a line: SQNR, accuracy, .pte size."""
    parts = [f"SQNR float vs runtime {_f(t.sqnr_db, '.2f') or '-'} dB"]
    if t.runtime_accuracy is not None:
        parts.append(f"runtime accuracy {t.runtime_accuracy:.2%} (float {t.float_accuracy:.2%})")
    if t.runtime_perplexity is not None and t.float_perplexity is not None:
        parts.append(f"runtime perplexity {t.runtime_perplexity:.3f} (float {t.float_perplexity:.3f})")
    if t.pte_bytes:
        parts.append(f".pte {t.pte_bytes:,} B")
    if t.latency_ms is not None:
        parts.append(f"latency {t.latency_ms:.3f} ms")
    return ", ".join(parts)


def summary_lines(found: Recovery, model_ref: str) -> list[str]:
    """What ``quantviz recover`` prints at the end."""
    chosen, target = found.chosen, found.target
    config = config_of(found, chosen)
    e = found.engine
    lines = [f"measured on {found.base.data}",
             f"target {target.describe()}: {'MET' if found.met else 'NOT MET'} after {len(found.trials) - 1} of "
             f"{found.budget} trial(s)",
             f"before (as given): {figures(found.base)}"]
    what = "winner" if found.met else "best found"
    lines.append(f"{what}: {chosen.key} -> {target.reached(chosen)}; {figures(chosen)}")
    if chosen.latency_ms is not None and found.base.latency_ms is not None:
        lines.append(f"latency: {chosen.latency_spread or f'{chosen.latency_ms:.3f} ms'} against "
                     f"{found.base.latency_ms:.3f} ms as given ({chosen.latency_ms / found.base.latency_ms:.2f}x)")
    if not found.met:
        lines.append(f"the target was not met within --budget {found.budget}: the best found reaches "
                     f"{target.reached(chosen)}; raise --budget, or relax the target")
    lines += [f"  changes: {'; '.join(found.candidate(c).description for c in chosen.candidates) or 'none'}",
              f"  flags:   quantviz run {model_ref} {config_flags(config)}".rstrip(),
              f"  config:  {config!r}"]
    code = quantizer_code(found, chosen)
    if code:
        lines.append("  quantizer code (also in reproduce.py):")
        lines += [f"    {c}" for c in code]
    if e:
        reused, run = e.stage_seconds_reused or 0, e.stage_seconds_run or 0
        lines.append(f"engine {e.engine or '?'}: {e.workers if e.workers is not None else '?'} worker(s), wall "
                     f"{e.wall_seconds or 0:.1f} s; stage reuse saved {e.reuse_share or 0:.0%} of the "
                     f"stage work ({reused:.1f} of {reused + run:.1f} stage-seconds)")
        hint = startup_hint(e)
        if hint:
            lines.append(hint)
    return lines


def startup_hint(engine: Engine, remedy: str = "--in-process") -> str | None:
    """When Ray's start-up (``ray.init`` and the slowest worker's warm-up, paid once per worker) took half the
    recovery's wall time or more, say so: a search that short is as fast in one process (``remedy``: the CLI's
    flag, or the app's toggle)."""
    if engine.engine != "ray" or (engine.address or "embedded") != "embedded":
        return None
    init, warm = float(engine.ray_init_seconds or 0.0), max(engine.warm_seconds or [0.0])
    wall = float(engine.wall_seconds or 0.0)
    if not wall or init + warm < wall / 2:
        return None
    return (f"Ray's start-up took {init + warm:.1f} of the {wall:.1f} s (ray.init {init:.1f} s, workers warming "
            f"{warm:.1f} s, once per worker): a search this short is as fast with {remedy}")


def markdown_table(found: Recovery, model_ref: str) -> str:
    """One row for the README: the model, flow, data, target, the runtime's figures before and after, the
    change set."""
    b, c = found.base, found.chosen
    config = config_of(found, c)

    def acc(t: Trial) -> str:
        return f"{t.runtime_accuracy:.2%}" if t.runtime_accuracy is not None else "–"

    head = ("| model | config | data | target | met | SQNR before → after (dB) | accuracy before → after | "
            ".pte before → after (B) | change set (flags) | trials |")
    row = (f"| {model_ref} | {config_flags(found.base_config) or 'defaults'} | {b.data.split(':')[0]} | "
           f"{found.target.describe()} | {'yes' if found.met else 'no'} | {_f(b.sqnr_db, '.2f')} → "
           f"{_f(c.sqnr_db, '.2f')} | {acc(b)} → {acc(c)} | {b.pte_bytes or '–'} → {c.pte_bytes or '–'} | "
           f"`{config_flags(config, found.base_config)}` | {len(found.trials) - 1} |")
    return "\n".join([head, "|" + "---|" * 10, row])


def write_results(found: Recovery, out: Path, model_ref: str) -> list[Path]:
    """recover.json, recover.csv, reproduce.py, recover.md, and the Pareto charts (pareto_*.svg, pareto.vl.json)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("recover.json", "recover.csv", "reproduce.py", "recover.md")}
    paths["recover.json"].write_text(json.dumps(RecoverFile.of(found, model_ref).to_dict(), indent=1))
    with paths["recover.csv"].open("w", newline="") as fh:
        w = csv.DictWriter(fh, CSV_COLUMNS)
        w.writeheader()
        for t in found.trials:
            w.writerow(csv_row(found, t))
    paths["reproduce.py"].write_text(reproduce(found, model_ref))
    paths["recover.md"].write_text(markdown_table(found, model_ref) + "\n")
    written = list(paths.values())
    charts = pareto_charts(found)
    for chart in charts:
        path = out / f"{chart.name}.svg"
        path.write_text(to_svg(chart))
        written.append(path)
    if charts:
        path = out / "pareto.vl.json"
        path.write_text(json.dumps([vega_lite(c) for c in charts], indent=1))
        written.append(path)
    return written


def load_recovery(path: Path) -> RecoverFile:
    """A recover.json (or the folder holding one), typed (the app's Recover page reads it)."""
    path = Path(path)
    return RecoverFile.from_dict(json.loads((path / "recover.json" if path.is_dir() else path).read_text()))
