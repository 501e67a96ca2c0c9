"""One model across every installed backend, side by side: quantizer, delegated share, the ops each leaves out and
why, q/dq patterns, .pte size, lowering seconds, SQNR against float and against its own reference where numbers
exist here, and how they were obtained (the runtime, a reference model, or none)::

    rows = compare_backends("sample:mobilenet_v2")          # every installed backend, in this process
    rows = compare_backends("sample:mobilenet_v2", ray=True)  # one Ray task a backend (local, or --address)
    write_backend_table(rows, Path("out/backends"))          # backends.csv, backends.json, backends.html
"""
from __future__ import annotations

import csv
import html
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from quantviz.backends import BACKENDS, backend_of
from quantviz.config import PipelineConfig
from quantviz.pipeline import Pipeline

Progress = Callable[["BackendRow", int, int], None]


@dataclass
class BackendRow:
    """One backend on one model."""

    backend: str
    model: str
    config: str  # the CLI flags of the run
    ok: bool  # every stage ran (a backend with no runtime here still ends ok: the .pte is written)
    failed_stage: str = ""  # the stage that failed, with its cause
    cause: str = ""
    quantizer: str = ""  # the quantizer's class
    delegates: int = 0  # delegate calls in the program
    delegated_ops: int = 0  # operator nodes inside the delegates
    outside_ops: int = 0  # operator nodes left outside (q/dq at the boundary included)
    left_out: dict[str, str] = field(default_factory=dict)  # op -> the partitioner's first reason (and how many)
    patterns: int = 0  # q/dq patterns of the reference model
    pte_bytes: int = 0
    latency_ms: float | None = None  # the .pte's median run time here (ETDump), where a runtime runs it here
    latency_spread: str = ""  # its spread, runs, threads, machine and load; or why it was not timed
    lowering_seconds: float = 0.0  # edge + delegate stages
    seconds: float = 0.0  # the whole flow
    numbers: str = ""  # what computed the figures: "the ExecuTorch runtime", "the TOSA reference model ...", or why none
    float_vs_reference_sqnr_db: float | None = None  # quantization error, on ``data``
    float_vs_backend_sqnr_db: float | None = None  # the backend's output against float
    reference_vs_backend_sqnr_db: float | None = None  # against its own reference q/dq model
    data: str = ""  # what the figures were measured on
    report: dict[str, Any] = field(default_factory=dict)  # the backend compiler's summary (Vela)

    @property
    def delegated_share(self) -> float:
        total = self.delegated_ops + self.outside_ops
        return self.delegated_ops / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delegated_share": round(self.delegated_share, 4)}


def backend_row(model_ref: str, config: PipelineConfig) -> BackendRow:
    """Run ``config`` on ``model_ref`` and read its row."""
    from quantviz.loading import load_model

    spec = load_model(model_ref)
    t0 = time.perf_counter()
    pipe = Pipeline(spec, config).run()
    return row_of(pipe, model_ref, time.perf_counter() - t0)


def row_of(pipe: Pipeline, model_ref: str, seconds: float) -> BackendRow:
    from quantviz.config import config_flags

    config = pipe.config
    backend = backend_of(config)
    row = BackendRow(backend.name, model_ref, config_flags(config), pipe.ok, seconds=round(seconds, 2))
    failed = pipe.failed
    if failed is not None:
        row.failed_stage, row.cause = failed.name, failed.error.message[:400]
    prepare = pipe.results.get("prepare")
    if prepare is not None and prepare.ok:
        row.quantizer = next((c.split("=", 1)[1].split("(")[0].strip() for c in prepare.calls
                              if c.startswith("quantizer = ")), "")
    reference = pipe.results.get(pipe.role("reference") or "")
    if reference is not None and reference.ok and reference.graph is not None:
        row.patterns = len(reference.graph.patterns)
    delegate = pipe.result_of("delegated")
    if delegate is not None and delegate.ok and delegate.graph is not None:
        g = delegate.graph
        row.delegates = sum(n.kind == "delegate" for n in g.nodes)
        row.delegated_ops = g.delegated_node_count()
        outside = [n for n in g.nodes if n.kind in ("float_op", "quantize", "dequantize", "quantized_op",
                                                     "choose_qparams")]
        row.outside_ops = len(outside)
        by_op = Counter(n.target.split(".")[1] if n.target.count(".") >= 2 else n.target for n in outside
                        if n.kind == "float_op")
        reasons = delegate.diagnostics.partition_reasons
        for n in outside:
            if n.kind != "float_op":
                continue
            op = n.target.split(".")[1] if n.target.count(".") >= 2 else n.target
            why = (reasons.get(n.id) or reasons.get(n.name) or ["no reason given by the partitioner"])[0]
            row.left_out.setdefault(op, f"{by_op[op]}×: {why}")
        edge = pipe.results[pipe.flow.before(delegate.name) or delegate.name]  # to_edge_transform_and_lower's first step
        row.lowering_seconds = round(delegate.seconds + edge.seconds, 2)
    row.pte_bytes = len(pipe.pte_bytes() or b"")
    run = pipe.result_of("runtime")
    numbers = pipe.numerics()
    row.float_vs_reference_sqnr_db = numbers.float_vs_reference_sqnr_db
    row.float_vs_backend_sqnr_db = numbers.float_vs_runtime_sqnr_db
    row.reference_vs_backend_sqnr_db = numbers.reference_vs_runtime_sqnr_db
    if run is not None and run.ok:
        r = run.artifact
        row.numbers = r.not_run or r.executed_by
        row.data = r.data.source if r.data is not None else ""
        row.report = {k: v for k, v in (r.report.get("delegates") or [{}])[0].items() if k != "per_layer"} \
            if r.report else {}
    elif backend.numbers != "runtime":
        row.numbers = backend.numbers_note
    if pipe.ok:
        from quantviz.timing.measure import quick_latency

        row.latency_ms, row.latency_spread = quick_latency(pipe)
    return row


def installed_backends() -> list[str]:
    """Every backend whose packages are installed here, the portable kernels first."""
    return [name for name, b in BACKENDS.items() if not b.missing()]


def backend_config(base: PipelineConfig, backend: str) -> PipelineConfig:
    """``base`` for ``backend``: pt2e with its own partitioner, and the values the backend needs
    (``Backend.defaults``: Vulkan's quantized convolution takes per-channel weights, Arm's passes no export
    guards)."""
    config = base.with_changes(flow="pt2e", backend=backend, partitioner="auto", recipe="")
    return config.with_changes(**BACKENDS[backend].defaults)


def compare_backends(model_ref: str, backends: list[str] | None = None, base: PipelineConfig | None = None,
                     ray: bool = False, address: str | None = None, progress: Progress | None = None,
                     in_workers: bool = False) -> list[BackendRow]:
    """Every backend (default: the installed ones) on ``model_ref``, one row each; on Ray one task a backend;
    ``in_workers``: each backend in a worker process of its own, one after the other (the app: its process runs no
    torch, and a backend that aborts its process is a row)."""
    base = base or PipelineConfig(flow="pt2e", per_channel=True)
    names = backends or installed_backends()
    configs = [backend_config(base, b) for b in names]
    rows: list[BackendRow] = []
    if not ray:
        for i, config in enumerate(configs):
            rows.append(_row_in_worker(model_ref, config) if in_workers else backend_row(model_ref, config))
            if progress is not None:
                progress(rows[-1], i + 1, len(configs))
        return rows
    import ray as ray_lib

    if not ray_lib.is_initialized():
        ray_lib.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray_lib.remote(num_cpus=1, max_retries=0)(backend_row)
    pending = {task.remote(model_ref, c): c for c in configs}
    while pending:
        done, _ = ray_lib.wait(list(pending), num_returns=1)
        config = pending.pop(done[0])
        try:
            row = ray_lib.get(done[0])
        except Exception as exc:  # noqa: BLE001 - a crashed worker (the runtime aborts on some programs) is a row
            row = _crashed_row(model_ref, config, repr(exc))
        rows.append(row)
        if progress is not None:
            progress(row, len(rows), len(configs))
    order = {c.backend: i for i, c in enumerate(configs)}
    return sorted(rows, key=lambda r: order.get(r.backend, 99))


def _row_in_worker(model_ref: str, config: PipelineConfig) -> BackendRow:
    """``backend_row`` in a process forked from the warm server; a process that dies is a row that says how."""
    from quantviz.workers import WorkerDied, WorkerError, call_in_worker

    try:
        return call_in_worker(backend_row, model_ref, config, what=f"the {config.backend} row")
    except (WorkerDied, WorkerError) as exc:
        return _crashed_row(model_ref, config, str(exc))


def _crashed_row(model_ref: str, config: PipelineConfig, how: str) -> BackendRow:
    """The row of a backend whose process died or raised outside its pipeline (Ray's task, a worker process)."""
    return BackendRow(config.backend, model_ref, "", False, failed_stage="?", cause=f"crashed: {how}"[:400])


COLUMNS = ("backend", "ok", "quantizer", "delegates", "delegated_share", "patterns", "pte_bytes", "latency_ms",
           "latency_spread", "lowering_seconds", "float_vs_reference_sqnr_db", "float_vs_backend_sqnr_db",
           "reference_vs_backend_sqnr_db", "numbers", "data", "left_out", "failed_stage", "cause")


def write_backend_table(rows: list[BackendRow], out: Path) -> list[Path]:
    """``backends.json``, ``backends.csv`` and a standalone ``backends.html`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data = [r.to_dict() for r in rows]
    (out / "backends.json").write_text(json.dumps(data, indent=1, default=str))
    with (out / "backends.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for d in data:
            writer.writerow({**d, "left_out": "; ".join(f"{k} ({v})" for k, v in d["left_out"].items())})
    (out / "backends.html").write_text(backend_html(rows))
    return [out / "backends.json", out / "backends.csv", out / "backends.html"]


def _db(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "∞" if x == math.inf else f"{x:.1f}"


def table_lines(rows: list[BackendRow]) -> list[str]:
    """The comparison as Markdown table rows (what the CLI prints and the README's backend table uses)."""
    lines = ["| backend | ok | delegated | patterns | .pte | lowering s | SQNR vs float | vs own reference | numbers "
             "from | ms here |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = "ok" if r.ok else f"✗ {r.failed_stage}: {r.cause[:80]}"
        lines.append(f"| {r.backend} | {ok} | {r.delegates} delegate(s), {r.delegated_share:.0%} | {r.patterns} | "
                     f"{r.pte_bytes:,} B | {r.lowering_seconds:.1f} | {_db(r.float_vs_backend_sqnr_db)} | "
                     f"{_db(r.reference_vs_backend_sqnr_db)} | {r.numbers.split(':')[0][:60]} | "
                     f"{f'{r.latency_ms:.3f}' if r.latency_ms is not None else '–'} |")
    return lines


def backend_html(rows: list[BackendRow]) -> str:
    """A standalone page: the table, each backend's ops left out with the reason, and bars of SQNR and .pte size."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("backend", "ok", "quantizer", "delegated", "patterns",
                                                          ".pte bytes", "lowering s", "SQNR vs float",
                                                          "vs own reference", "numbers from", "left out"))
    body = []
    best = max([r.float_vs_backend_sqnr_db for r in rows if r.float_vs_backend_sqnr_db not in (None, math.inf)]
               or [1.0])
    for r in rows:
        width = 0 if r.float_vs_backend_sqnr_db in (None,) else min(100, 100 * max(0.0, min(
            r.float_vs_backend_sqnr_db, best)) / best)
        bar = f'<div style="background:#2563eb;height:8px;width:{width:.0f}px"></div>'
        left = "<br>".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in r.left_out.items()) or "–"
        body.append(
            f"<tr><td>{html.escape(r.backend)}</td><td>{'ok' if r.ok else html.escape(r.failed_stage + ': ' + r.cause)}"
            f"</td><td>{html.escape(r.quantizer)}</td><td>{r.delegates} ({r.delegated_share:.0%})</td>"
            f"<td>{r.patterns}</td><td>{r.pte_bytes:,}</td><td>{r.lowering_seconds:.1f}</td>"
            f"<td>{_db(r.float_vs_backend_sqnr_db)}{bar}</td><td>{_db(r.reference_vs_backend_sqnr_db)}</td>"
            f"<td>{html.escape(r.numbers)}</td><td>{left}</td></tr>")
    model = html.escape(rows[0].model) if rows else ""
    data = html.escape(next((r.data for r in rows if r.data), ""))
    return (f"<!doctype html><meta charset='utf-8'><title>quantviz backends: {model}</title>"
            "<style>body{font:14px system-ui;margin:2em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;"
            "vertical-align:top;text-align:left}</style>"
            f"<h1>{model} on every backend</h1><p>Figures measured on {data or 'the evaluation'} data; "
            "SQNR vs float is the backend's output against the float model, vs own reference against the q/dq "
            "model that backend's quantizer made.</p>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>")
