"""Ray for quantviz's sweeps and recoveries: starting or joining it, shipping model files to the workers, the
breadcrumbs a job leaves in Ray's key-value store (so a crash can name its stage), and a dead worker in words.

Example::

    init_ray()                         # embedded, this machine's CPUs
    refs = stage_model_files(["net.py:make"], staging)   # {"net.py:make": "models/0/net.py:make"}, for a cluster
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

GIB = 2 ** 30
OBJECT_STORE_BYTES = 256 * 2 ** 20  # results are small dicts; keep /dev/shm use small
KV_NAMESPACE = "quantviz_sweep"  # breadcrumbs: "<run>/<job>" -> {"stage", "since", "started", "worker"}


class RayMissing(RuntimeError):
    """Ray is not installed: ``pip install 'quantviz[sweep]'``."""


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


# -- breadcrumbs and crashes ------------------------------------------------------------------------------------
def breadcrumb(key: str, crumb: dict) -> None:
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


def crash_cause(exc: Exception, stage: str | None) -> str:
    """A worker that died, in words: which Ray error, and the stage it was in."""
    import ray.exceptions as rex

    where = f" during stage '{stage}'" if stage else ""
    if isinstance(exc, rex.OutOfMemoryError):
        return f"the worker process was killed by Ray's memory monitor (out of memory){where}"
    if isinstance(exc, (rex.WorkerCrashedError, rex.RayActorError)):
        return (f"the worker process died{where} (aborted, crashed or killed: {type(exc).__name__}); "
                "the other cells went on")
    if isinstance(exc, rex.TaskCancelledError):
        return f"cancelled{where}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}: {first}"


# -- starting Ray ------------------------------------------------------------------------------------------------
def model_refs(models: list[str], address: str | None, into: Path) -> tuple[dict[str, str], Path | None]:
    """How the workers name each model, and the job's working_dir (None: nothing shipped). A cluster
    (``address``) gets the files shipped in ``into`` (:func:`stage_model_files`); an embedded Ray runs on this
    machine and reads them where they are (:func:`absolute_ref`), so it needs no working_dir."""
    if not address:
        return {m: absolute_ref(m) for m in models}, None
    refs = stage_model_files(models, into)
    return refs, into if any(r != absolute_ref(m) for m, r in refs.items()) else None


def _worker_env() -> dict[str, str]:
    """What the workers' environment must add to this process's: no warnings at import, and this process's
    PYTHONPATH with absolute entries (a job's working_dir is the workers' cwd)."""
    env = {"PYTHONWARNINGS": "ignore"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)
    return env


def init_ray(address: str | None = None, num_cpus: int | None = None, working_dir: Path | None = None) -> float:
    """Start Ray embedded (``num_cpus``, default this machine's) or join ``address``; returns the seconds it took.
    Does nothing (0 s) when Ray is already initialised in this process.

    An embedded Ray inherits its environment from this process (set for the length of ``ray.init``), not from a
    runtime_env: the worker processes Ray starts with it then match the actors' environment and become the warm
    workers (a runtime_env makes Ray start new processes for them, 1.2 s later and a Python start-up more each).
    A cluster gets the environment and ``working_dir`` as the job's runtime_env."""
    ray = import_ray()
    if ray.is_initialized():
        return 0.0
    common = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    t0 = time.perf_counter()
    if address:
        runtime_env: dict[str, Any] = {"env_vars": _worker_env()}
        if working_dir is not None:
            runtime_env["working_dir"] = str(working_dir)
        ray.init(address=address, runtime_env=runtime_env, **common)
        return time.perf_counter() - t0
    env = _worker_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        # address="local": a new Ray in this process even when `ray start` or RAY_ADDRESS names another one
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 object_store_memory=OBJECT_STORE_BYTES, **common)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return time.perf_counter() - t0
