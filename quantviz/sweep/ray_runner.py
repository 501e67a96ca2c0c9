"""Run a sweep's cells on Ray: on warm workers (one actor per CPU, ``quantviz.sweep.actors``) by default, or one
task per cell in a fresh process (``fresh_process``), each with declared resources. A worker whose process dies
(the ExecuTorch runtime aborts on some programs) is reported as a crashed cell, with the stage it was in, and the
others go on.

Example::

    sweep = run_sweep(build_grid(["sample:conv_add"], {"flow": ["fx", "pt2e"]}), on_cell=print)
    sweep.cells[0].ok

Ray starts embedded (this machine's CPUs, no dashboard) unless ``address`` names a running cluster
(``ray start --head`` on one machine). On a cluster, model files are shipped to the workers in the job's
``working_dir``; embedded workers read them where they are. ``sample:NAME`` models come with quantviz, which every
node must have installed.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from quantviz.config import PipelineConfig
from quantviz.sweep.cell import CellResult, finish_sensitivity, run_cell, run_layer
from quantviz.sweep.grid import Cell
from quantviz.sweep.ray_setup import (GIB, KV_NAMESPACE, OBJECT_STORE_BYTES, RayMissing, absolute_ref,  # noqa: F401
                                      breadcrumb, crash_cause, import_ray, init_ray, model_refs,
                                      read_breadcrumb, stage_model_files)

CELL_MEMORY_GIB = 1.5   # a worker running one sample cell peaks at 0.53-0.73 GB (bench/sweep.py): room to spare
LAYER_MEMORY_GIB = 1.0


@dataclass
class Sweep:
    """A finished (or interrupted) sweep: where it ran and every cell's result."""

    cells: list[CellResult]
    engine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.engine, "cells": [c.to_dict() for c in self.cells]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sweep":
        return cls([CellResult.from_dict(c) for c in d.get("cells", [])],
                   {k: v for k, v in d.items() if k != "cells"})


# -- the tasks ---------------------------------------------------------------------------------------------------
def _remote_functions(ray):
    """The Ray task definitions (made once per process, after ``import ray``)."""
    global _REMOTE
    if _REMOTE is not None:
        return _REMOTE

    @ray.remote(num_cpus=1, max_retries=0, max_calls=1)  # a new worker process per task (--fresh-process)
    def cell_task(model: str, ref: str, config: dict, cell: str, label: str, sensitivity: int, key: str,
                  explicit: tuple[str, ...] = ()) -> dict:
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("torchao").setLevel(logging.ERROR)
        logging.getLogger("executorch").setLevel(logging.ERROR)
        crumb = {"started": time.time(), "worker": f"{socket.gethostname()}:{os.getpid()}"}

        def on_stage(stage: str) -> None:
            crumb.update(stage=stage, since=time.time())
            breadcrumb(key, crumb)

        result = run_cell(ref, PipelineConfig(**_config_args(config)), cell, label, sensitivity, on_stage=on_stage,
                          explicit=explicit)
        result.model = model  # the user's reference, not the shipped copy's
        return result.to_dict()

    @ray.remote(num_cpus=1, max_retries=0, max_calls=1)  # a new worker process per task (--fresh-process)
    def layer_task(ref: str, config: dict, layer: str, explicit: tuple[str, ...] = ()) -> dict:
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("torchao").setLevel(logging.ERROR)
        return run_layer(ref, PipelineConfig(**_config_args(config)), layer, explicit=explicit)

    _REMOTE = (cell_task, layer_task)
    return _REMOTE


_REMOTE = None


def _config_args(d: dict) -> dict:
    return {**d, "skip_modules": tuple(d.get("skip_modules", ()))}


# -- running -----------------------------------------------------------------------------------------------------
def run_sweep(cells: list[Cell], sensitivity: int = 0, address: str | None = None, num_cpus: int | None = None,
              cell_memory_gib: float = CELL_MEMORY_GIB, on_cell: Callable[[CellResult, int, int], None] | None = None,
              on_layers: Callable[[CellResult], None] | None = None, shutdown: bool = True,
              fresh_process: bool = False, workers: int | None = None) -> Sweep:
    """Run every cell on Ray and return the results in grid order.

    ``on_cell(result, done, total)`` is called as each cell finishes (crashed ones included); ``on_layers(result)``
    when a cell's sensitivity layers are all back. Ray is shut down at the end when this call started it and
    ``shutdown`` is true.

    By default the cells go to warm workers (``quantviz.sweep.actors``: one Ray actor per CPU, or ``workers``,
    each with the libraries imported and export warmed up before the first cell; a worker keeps the model it
    loaded and its last pipelines, so a cell of the same model forks the stages it shares); a worker that dies
    takes only its own cell with it and is replaced. ``fresh_process`` runs every cell as a Ray task in a new
    worker process instead (``max_calls=1``), which pays the imports and the warm-up for every cell.
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    t_start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix="quantviz_sweep_"))
    try:
        if started_here:  # a cluster gets the model files shipped; an embedded Ray reads them where they are
            refs, working_dir = model_refs([c.model for c in cells], address, staging)
            init_seconds = init_ray(address, num_cpus, working_dir)
        else:  # the caller's Ray: its job's working_dir is set already; files by absolute path (same machine)
            refs, init_seconds = {c.model: absolute_ref(c.model) for c in cells}, 0.0
        engine = _engine_info(ray, address, init_seconds)
        engine["workers"] = "fresh process per cell" if fresh_process else "warm actors"
        progress = _Progress(cells, on_cell, on_layers)
        try:
            if fresh_process:
                _run_tasks(ray, cells, refs, sensitivity, cell_memory_gib, progress)
            else:
                engine.update(_run_actors(cells, refs, sensitivity, cell_memory_gib, progress, workers))
        finally:
            engine["wall_seconds"] = round(time.perf_counter() - t_start, 3)
        ordered = [progress.results[c.id] for c in cells if c.id in progress.results]
        return Sweep(ordered, engine)
    finally:
        if started_here and shutdown and ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(staging, ignore_errors=True)


class _Progress:
    """The cells' results as they come back, and the sensitivity rows per cell."""

    def __init__(self, cells: list[Cell], on_cell, on_layers) -> None:
        self.total, self.on_cell, self.on_layers = len(cells), on_cell, on_layers
        self.results: dict[str, CellResult] = {}
        self.layer_rows: dict[str, list[dict]] = {}

    def cell(self, c: Cell, result: CellResult) -> list[str]:
        """Record a cell's result; the sensitivity layers to run for it."""
        self.results[c.id] = result
        self.layer_rows[c.id] = []
        if self.on_cell:
            self.on_cell(result, len(self.results), self.total)
        if not result.sensitivity_layers:
            return []
        return list(result.sensitivity_layers)

    def layer(self, c: Cell, row: dict) -> None:
        rows = self.layer_rows[c.id]
        rows.append(row)
        if len(rows) == len(self.results[c.id].sensitivity_layers):
            finish_sensitivity(self.results[c.id], rows)
            if self.on_layers:
                self.on_layers(self.results[c.id])


def _run_actors(cells: list[Cell], refs: dict[str, str], sensitivity: int, cell_memory_gib: float,
                progress: _Progress, workers: int | None) -> dict[str, Any]:
    """The cells (and their sensitivity layers) on warm actors; the pool's facts for the engine record."""
    from quantviz.sweep.actors import Crash, Job, WarmPool

    pool = WarmPool(workers, memory_gib=cell_memory_gib)
    by_id = {c.id: c for c in cells}
    for c in cells:  # one worker keeps a model's pipelines of one flow: cells of both share their stages
        pool.submit(Job(f"cell/{c.id}", "quantviz.sweep.cell:run_cell_job", (
            c.model, refs[c.model], c.config.to_dict(), c.id, c.label, sensitivity, c.explicit),
            affinity=f"{refs[c.model]} {c.config.flow}", label=c.id))
    try:
        for job, value in pool.results():
            kind, cid, *layer = job.key.split("/", 2)
            c = by_id[cid]
            if kind == "cell":
                result = CellResult.from_dict(value) if not isinstance(value, Crash) else _crashed_cell(c, value)
                for name in progress.cell(c, result):
                    pool.submit(Job(f"layer/{c.id}/{name}", "quantviz.sweep.cell:run_layer_job",
                                    (refs[c.model], c.config.to_dict(), name, c.explicit),
                                    affinity=f"{refs[c.model]} {c.config.flow}", crumbs=False))
            else:
                progress.layer(c, value if not isinstance(value, Crash) else
                               {"layer": layer[0], "sqnr_db": None, "accuracy": None, "error": value.cause})
        info = pool.info()
        return {"workers_started": pool.size + pool.replaced + pool.warm_deaths, "workers_replaced": pool.replaced,
                "warm_seconds": [w["warm_seconds"] for w in info],
                "worker_cpu_seconds": {w["worker"]: w["cpu_seconds"] for w in info}}
    finally:
        pool.shutdown()


def _crashed_cell(c: Cell, crash) -> CellResult:
    return CellResult(c.id, c.model, c.config.to_dict(), c.label, ok=False, failed_stage=crash.stage,
                      cause=crash.cause, crashed=crash.crashed, worker=crash.worker, seconds=crash.seconds,
                      hint="run this cell alone with `quantviz run` to see the process's own last words")


def _run_tasks(ray, cells: list[Cell], refs: dict[str, str], sensitivity: int, cell_memory_gib: float,
               progress: _Progress) -> None:
    """``--fresh-process``: every cell (and sensitivity layer) a Ray task in a new worker process."""
    cell_task, layer_task = _remote_functions(ray)
    run_id = uuid.uuid4().hex[:12]
    pending: dict[Any, tuple[str, Cell, str | None]] = {}  # ObjectRef -> (kind, cell, layer)
    memory = int(cell_memory_gib * GIB)
    for c in cells:
        ref = cell_task.options(memory=memory, name=f"cell {c.id} {c.model}").remote(
            c.model, refs[c.model], c.config.to_dict(), c.id, c.label, sensitivity, f"{run_id}/{c.id}", c.explicit)
        pending[ref] = ("cell", c, None)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                kind, c, layer = pending.pop(ref)
                if kind == "cell":
                    for name in progress.cell(c, _collect_cell(ray, ref, c, f"{run_id}/{c.id}")):
                        lref = layer_task.options(memory=int(LAYER_MEMORY_GIB * GIB),
                                                  name=f"sensitivity {c.id} {name}").remote(
                            refs[c.model], c.config.to_dict(), name, c.explicit)
                        pending[lref] = ("layer", c, name)
                else:
                    progress.layer(c, _collect_layer(ray, ref, layer))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        try:  # a cluster outlives the sweep: leave no breadcrumbs behind
            from ray.experimental.internal_kv import _internal_kv_del

            _internal_kv_del(f"{run_id}/", del_by_prefix=True, namespace=KV_NAMESPACE)
        except Exception:  # noqa: BLE001
            pass


def _collect_cell(ray, ref, c: Cell, key: str) -> CellResult:
    from ray.exceptions import RayError

    try:
        return CellResult.from_dict(ray.get(ref))
    except RayError as exc:
        crumb = read_breadcrumb(key)
        stage = crumb.get("stage")
        return CellResult(c.id, c.model, c.config.to_dict(), c.label, ok=False, failed_stage=stage or "",
                          cause=crash_cause(exc, stage), crashed=True, worker=crumb.get("worker", ""),
                          seconds=time.time() - crumb["started"] if "started" in crumb else 0.0,
                          hint="run this cell alone with `quantviz run` to see the process's own last words")


def _collect_layer(ray, ref, layer: str) -> dict:
    from ray.exceptions import RayError

    try:
        return ray.get(ref)
    except RayError as exc:
        return {"layer": layer, "sqnr_db": None, "accuracy": None, "error": crash_cause(exc, "convert")}


def _engine_info(ray, address: str | None, init_seconds: float) -> dict[str, Any]:
    resources = ray.cluster_resources()
    return {"engine": "ray", "ray_version": ray.__version__, "address": address or "embedded",
            "cluster_cpus": int(resources.get("CPU", 0)), "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "ray_init_seconds": round(init_seconds, 3)}
