"""Run a sweep's cells as Ray tasks: one task per cell (and per sensitivity layer), each in a worker process with
declared resources, collected in a ``ray.wait`` loop. A task whose process dies (the ExecuTorch runtime aborts
on some programs) is reported as a crashed cell, with the stage it was in, and the others go on.

Example::

    sweep = run_sweep(build_grid(["sample:conv_add"], {"flow": ["fx", "pt2e"]}), on_cell=print)
    sweep.cells[0].ok

Ray starts embedded (this machine's CPUs, no dashboard) unless ``address`` names a running cluster
(``ray start --head`` on one machine). Model files are shipped to the workers in the job's ``working_dir``;
``sample:NAME`` models come with quantviz, which every node must have installed.
"""
from __future__ import annotations

import json
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

GIB = 2 ** 30
CELL_MEMORY_GIB = 1.5   # a worker running one sample cell peaks at 0.53-0.73 GB (bench/sweep.py): room to spare
LAYER_MEMORY_GIB = 1.0
OBJECT_STORE_BYTES = 256 * 2 ** 20  # results are small dicts; keep /dev/shm use small
KV_NAMESPACE = "quantviz_sweep"  # breadcrumbs: "<run>/<cell>" -> {"stage", "since", "started", "worker"}


class RayMissing(RuntimeError):
    """Ray is not installed: ``pip install 'quantviz[sweep]'``."""


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


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissing("sweeps run on Ray, which is not installed: pip install 'quantviz[sweep]'") from None
    return ray


# -- model files travel with the job ---------------------------------------------------------------------------
def stage_model_files(models: list[str], into: Path) -> dict[str, str]:
    """Copy each model file (``file.py:factory``, ``.pt2``) into ``into/models/<n>/``; returns the reference the
    workers use (relative to the job's working_dir) for every model. ``sample:`` references stay as they are."""
    refs: dict[str, str] = {}
    for i, model in enumerate(dict.fromkeys(models)):
        if model.startswith("sample:"):
            refs[model] = model
            continue
        path, sep, factory = model.rpartition(":") if not model.endswith(".pt2") else (model, "", "")
        src = Path(path)
        if not src.is_file():
            refs[model] = model  # the worker reports it as a load failure, in the loader's words
            continue
        dest = into / "models" / str(i)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / src.name)
        refs[model] = f"models/{i}/{src.name}" + (f"{sep}{factory}" if sep else "")
    return refs


def absolute_ref(model: str) -> str:
    """``model`` with its file path made absolute (for workers on this machine)."""
    if model.startswith("sample:"):
        return model
    if model.endswith(".pt2"):
        return str(Path(model).resolve())
    path, sep, factory = model.rpartition(":")
    return f"{Path(path).resolve()}{sep}{factory}" if sep else model


# -- the tasks ---------------------------------------------------------------------------------------------------
def _breadcrumb(key: str, crumb: dict) -> None:
    """Record where a cell is, synchronously in Ray's GCS key-value store: a ``ray.get`` on an actor would do, but
    a task blocked in ``ray.get`` lends its CPU out and Ray starts another worker (torch imported again) for the
    next cell. Best effort: a sweep does not fail for a missing breadcrumb."""
    try:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(key, json.dumps(crumb), overwrite=True, namespace=KV_NAMESPACE)
    except Exception:  # noqa: BLE001
        pass


def read_breadcrumb(key: str) -> dict:
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(key, namespace=KV_NAMESPACE)
        return json.loads(raw) if raw else {}
    except Exception:  # noqa: BLE001
        return {}


def _remote_functions(ray):
    """The Ray task definitions (made once per process, after ``import ray``)."""
    global _REMOTE
    if _REMOTE is not None:
        return _REMOTE

    @ray.remote(num_cpus=1, max_retries=0)
    def cell_task(model: str, ref: str, config: dict, cell: str, label: str, sensitivity: int, key: str) -> dict:
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("torchao").setLevel(logging.ERROR)
        logging.getLogger("executorch").setLevel(logging.ERROR)
        crumb = {"started": time.time(), "worker": f"{socket.gethostname()}:{os.getpid()}"}

        def on_stage(stage: str) -> None:
            crumb.update(stage=stage, since=time.time())
            _breadcrumb(key, crumb)

        result = run_cell(ref, PipelineConfig(**_config_args(config)), cell, label, sensitivity, on_stage=on_stage)
        result.model = model  # the user's reference, not the shipped copy's
        return result.to_dict()

    @ray.remote(num_cpus=1, max_retries=0)
    def layer_task(ref: str, config: dict, layer: str) -> dict:
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("torchao").setLevel(logging.ERROR)
        return run_layer(ref, PipelineConfig(**_config_args(config)), layer)

    _REMOTE = (cell_task, layer_task)
    return _REMOTE


_REMOTE = None


def _config_args(d: dict) -> dict:
    return {**d, "skip_modules": tuple(d.get("skip_modules", ()))}


def crash_cause(exc: Exception, stage: str | None) -> str:
    """A worker that died, in words: which Ray error, and the stage it was in."""
    import ray.exceptions as rex

    where = f" during stage '{stage}'" if stage else ""
    if isinstance(exc, rex.OutOfMemoryError):
        return f"the worker process was killed by Ray's memory monitor (out of memory){where}"
    if isinstance(exc, rex.WorkerCrashedError):
        return (f"the worker process died{where} (aborted, crashed or killed: {type(exc).__name__}); "
                "the other cells went on")
    if isinstance(exc, rex.TaskCancelledError):
        return f"cancelled{where}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}: {first}"


# -- running -----------------------------------------------------------------------------------------------------
def init_ray(address: str | None = None, num_cpus: int | None = None, working_dir: Path | None = None) -> float:
    """Start Ray embedded (``num_cpus``, default this machine's) or join ``address``; returns the seconds it took.
    Does nothing (0 s) when Ray is already initialised in this process."""
    ray = import_ray()
    if ray.is_initialized():
        return 0.0
    runtime_env: dict[str, Any] = {"env_vars": {"PYTHONWARNINGS": "ignore"}}
    if working_dir is not None:
        runtime_env["working_dir"] = str(working_dir)
    t0 = time.perf_counter()
    common = {"runtime_env": runtime_env, "logging_level": logging.ERROR, "log_to_driver": False,
              "configure_logging": True}
    if address:
        ray.init(address=address, **common)
    else:
        # address="local": a new Ray in this process even when `ray start` or RAY_ADDRESS names another one
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 object_store_memory=OBJECT_STORE_BYTES, **common)
    return time.perf_counter() - t0


def run_sweep(cells: list[Cell], sensitivity: int = 0, address: str | None = None, num_cpus: int | None = None,
              cell_memory_gib: float = CELL_MEMORY_GIB, on_cell: Callable[[CellResult, int, int], None] | None = None,
              on_layers: Callable[[CellResult], None] | None = None, shutdown: bool = True,
              fresh_process: bool = False) -> Sweep:
    """Run every cell as a Ray task and return the results in grid order.

    ``on_cell(result, done, total)`` is called as each cell's task finishes (crashed ones included);
    ``on_layers(result)`` when a cell's sensitivity layers are all back. Ray is shut down at the end when this
    call started it and ``shutdown`` is true.

    Workers are reused from cell to cell (torch and executorch are imported once per worker; a worker that dies
    takes only its own cell with it); ``fresh_process`` gives every cell a new worker process instead
    (``max_calls=1``), which pays those imports for every cell.
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    t_start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix="quantviz_sweep_"))
    try:
        if started_here:
            refs = stage_model_files([c.model for c in cells], staging)
            shipped = any(r != m for m, r in refs.items())
            init_seconds = init_ray(address, num_cpus, staging if shipped else None)
        else:  # the caller's Ray: its job's working_dir is set already; files by absolute path (same machine)
            refs, init_seconds = {c.model: absolute_ref(c.model) for c in cells}, 0.0
        cell_task, layer_task = _remote_functions(ray)
        run_id = uuid.uuid4().hex[:12]
        engine = _engine_info(ray, address, init_seconds)
        results: dict[str, CellResult] = {}
        layer_rows: dict[str, list[dict]] = {}
        pending: dict[Any, tuple[str, Cell, str | None]] = {}  # ObjectRef -> (kind, cell, layer)
        memory = int(cell_memory_gib * GIB)
        for c in cells:
            options: dict[str, Any] = {"memory": memory, "name": f"cell {c.id} {c.model}"}
            if fresh_process:
                options["max_calls"] = 1
            ref = cell_task.options(**options).remote(
                c.model, refs[c.model], c.config.to_dict(), c.id, c.label, sensitivity, f"{run_id}/{c.id}")
            pending[ref] = ("cell", c, None)
        done = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    kind, c, layer = pending.pop(ref)
                    if kind == "cell":
                        result = _collect_cell(ray, ref, c, f"{run_id}/{c.id}")
                        results[c.id] = result
                        done += 1
                        if on_cell:
                            on_cell(result, done, len(cells))
                        layer_rows[c.id] = []
                        for name in result.sensitivity_layers:
                            lref = layer_task.options(memory=int(LAYER_MEMORY_GIB * GIB),
                                                      name=f"sensitivity {c.id} {name}").remote(
                                refs[c.model], c.config.to_dict(), name)
                            pending[lref] = ("layer", c, name)
                    else:
                        layer_rows[c.id].append(_collect_layer(ray, ref, layer))
                        if len(layer_rows[c.id]) == len(results[c.id].sensitivity_layers):
                            finish_sensitivity(results[c.id], layer_rows[c.id])
                            if on_layers:
                                on_layers(results[c.id])
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            engine["wall_seconds"] = round(time.perf_counter() - t_start, 3)
            try:  # a cluster outlives the sweep: leave no breadcrumbs behind
                from ray.experimental.internal_kv import _internal_kv_del

                _internal_kv_del(f"{run_id}/", del_by_prefix=True, namespace=KV_NAMESPACE)
            except Exception:  # noqa: BLE001
                pass
        ordered = [results[c.id] for c in cells if c.id in results]
        return Sweep(ordered, engine)
    finally:
        if started_here and shutdown and ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(staging, ignore_errors=True)


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
