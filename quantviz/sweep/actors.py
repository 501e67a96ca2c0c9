"""Warm Ray workers: one actor per CPU, each with torch, torchao and executorch imported, ``torch.export``
warmed up and (given a ``warm`` function) the model built once, before the first job arrives. Jobs (a sweep's
cells, a recovery's change sets) are sent to whichever worker is idle, preferring the one that ran the last job
of the same ``affinity`` (the same model: it keeps the pipelines to fork from).

A worker whose process dies (the ExecuTorch runtime aborts on some programs) loses only the job it was running:
that job comes back as a :class:`Crash` (with the stage it was in, from its breadcrumb), a new worker takes the
dead one's place, and the other jobs go on. A job that raises comes back as a ``Crash`` with ``crashed=False``
and its worker stays.

Example::

    pool = WarmPool(size=2)   # each worker runs warm_libraries first
    pool.submit(Job("c000", "quantviz.sweep.cell:run_cell_job", ("sample:conv_add", "sample:conv_add", config,
                                                                "c000", "", 0)))
    for job, outcome in pool.results():
        print(job.key, outcome)
    pool.shutdown()
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from quantviz.sweep.ray_setup import GIB, KV_NAMESPACE, breadcrumb, crash_cause, import_ray, read_breadcrumb


def quiet_worker() -> None:
    """The pinned libraries' known noise off the workers' logs (as the CLI does for its own)."""
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("torchao", "executorch", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def warm_libraries(flows: tuple[str, ...] | None = None) -> float:
    """Pay once what a process otherwise pays in its first job, and nothing more: import torch, torchao,
    executorch (the edge, emit and runtime modules included) and quantviz's stages, and run the one-time parts of
    ``flows`` on a tiny model, up to each flow's ``warm_until`` stage (pt2e: ``torch.export``'s first call and
    XNNPACKQuantizer's pattern graphs, ``quantviz.quantizers.pattern_cache``; fx has none beyond its imports). A process's first cell still costs
    more than its later ones (measured on this 2-core machine: 3.8 s against 1.7 s for a cell without a delegate,
    8.0 s against 3.3 s with XNNPACK, whose lowering passes build their pattern graphs on first use, about 3.6 s);
    warming those here would only move that time, not save it. Returns the seconds it took."""
    t0 = time.perf_counter()
    quiet_worker()
    import executorch.exir  # noqa: F401  to_edge, to_executorch
    import executorch.extension.pybindings.portable_lib  # noqa: F401  the runtime
    import executorch.kernels.quantized  # noqa: F401  quantized_decomposed kernels
    import torch

    from quantviz.config import PipelineConfig
    from quantviz.flows import FLOWS  # every flow's stage modules
    from quantviz.model_spec import ModelSpec
    from quantviz.pipeline import Pipeline

    for name in dict.fromkeys(FLOWS if flows is None else flows):  # None: every flow
        until = FLOWS[name].warm_until if name in FLOWS else ""
        if not until:
            continue
        gen = torch.Generator().manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                    torch.nn.Linear(8, 2)).eval()
        x = torch.randn(1, 1, 4, 4, generator=gen)
        Pipeline(ModelSpec("warm-up", model, (x,), calibration_batches=[(x,)]),
                 PipelineConfig(flow=name, until=until)).run()
    return time.perf_counter() - t0


Function = Callable[..., Any] | str  # a module-level function, or its "module:name" (resolved in the worker)


def resolve(fn: Function) -> Callable[..., Any]:
    """``resolve("quantviz.sweep.cell:run_cell_job")`` is that function; a callable is itself. Jobs name their
    function as a string when the driver should not import what it imports (torch, executorch)."""
    if callable(fn):
        return fn
    import importlib

    module, _, name = fn.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class Job:
    """One unit of work: ``fn(*args)`` in a worker (``fn`` a module-level function, pickled by reference, or its
    "module:name"), with ``on_stage=`` a breadcrumb callback when ``crumbs`` is set."""

    key: str  # unique within the pool's run (the breadcrumb's name)
    fn: Function
    args: tuple = ()
    affinity: str = ""  # e.g. the model reference: jobs of one affinity prefer the worker that ran the last one
    crumbs: bool = True
    label: str = ""


@dataclass
class Crash:
    """A job that did not return: its worker died (``crashed``), or the job raised (the worker lives on)."""

    cause: str
    stage: str = ""
    worker: str = ""
    seconds: float = 0.0
    crashed: bool = True


class WarmWorker:
    """The actor (made remote by the pool): warms up once, then runs jobs one at a time."""

    def __init__(self, warm: Function | None, warm_args: tuple, run_id: str) -> None:
        self.run_id = run_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.warm_error = ""
        self.warm_result: Any = None
        t0 = time.perf_counter()
        quiet_worker()
        if warm is not None:
            try:
                self.warm_result = resolve(warm)(*warm_args)
            except Exception as exc:  # noqa: BLE001 - a job will meet the same error and report it
                self.warm_error = f"{type(exc).__name__}: {exc}"
        self.warm_seconds = time.perf_counter() - t0

    def info(self) -> dict[str, Any]:
        t = os.times()
        return {"worker": self.worker, "warm_seconds": round(self.warm_seconds, 3), "warm_error": self.warm_error,
                "warm_result": self.warm_result, "cpu_seconds": round(t.user + t.system, 3)}

    def run(self, key: str, fn: Function, args: tuple, crumbs: bool) -> Any:
        fn = resolve(fn)
        crumb: dict[str, Any] = {"started": time.time(), "worker": self.worker}
        name = f"{self.run_id}/{key}"
        breadcrumb(name, crumb)
        if not crumbs:
            return fn(*args)

        def on_stage(stage: str) -> None:
            crumb.update(stage=stage, since=time.time())
            breadcrumb(name, crumb)

        return fn(*args, on_stage=on_stage)


class WorkersKeepDying(RuntimeError):
    """Workers die before running any job (while warming up): something is wrong with every one of them."""


@dataclass
class _Slot:
    actor: Any
    affinity: str = ""
    busy: bool = False
    jobs: int = 0


class WarmPool:
    """``size`` warm workers (default: the cluster's CPUs), the queue of jobs, and the replacement of dead ones.

    Ray must be initialised (``quantviz.sweep.ray_runner.init_ray``)."""

    def __init__(self, size: int | None = None, warm: Function | None = "quantviz.sweep.actors:warm_libraries",
                 warm_args: tuple = (), memory_gib: float | None = None) -> None:
        self.ray = import_ray()
        self.size = size or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self.warm, self.warm_args = warm, warm_args
        self.memory = int(memory_gib * GIB) if memory_gib else None
        self.run_id = uuid.uuid4().hex[:12]
        self._cls = self.ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(WarmWorker)
        self.slots = [_Slot(self._new()) for _ in range(self.size)]
        self.queue: list[Job] = []
        self.inflight: dict[Any, tuple[int, Job]] = {}
        self.replaced = 0  # workers that died running a job and were replaced
        self.warm_deaths = 0  # workers that died before their first job
        self.started = time.perf_counter()

    def _new(self) -> Any:
        options: dict[str, Any] = {}
        if self.memory:
            options["memory"] = self.memory
        return self._cls.options(**options).remote(self.warm, self.warm_args, self.run_id)

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    @property
    def pending(self) -> int:
        return len(self.queue) + len(self.inflight)

    def _dispatch(self) -> None:
        for i, slot in enumerate(self.slots):
            if slot.busy or not self.queue:
                continue
            # a job of this worker's affinity (it kept that model's pipelines), else one no other worker holds the
            # affinity of (those wait for their worker while it is busy), else the first: no worker stays idle
            pick = next((j for j in self.queue if slot.affinity and j.affinity == slot.affinity), None)
            if pick is None:
                held = {s.affinity for k, s in enumerate(self.slots) if k != i and s.affinity}
                pick = next((j for j in self.queue if j.affinity not in held), self.queue[0])
            self.queue.remove(pick)
            ref = slot.actor.run.remote(pick.key, pick.fn, pick.args, pick.crumbs)
            self.inflight[ref] = (i, pick)
            slot.busy, slot.affinity = True, pick.affinity

    def results(self) -> Iterator[tuple[Job, Any]]:
        """Each job's return value (or its :class:`Crash`) as it finishes; jobs submitted meanwhile are run too."""
        from ray.exceptions import RayActorError, RayError, RayTaskError

        while self.queue or self.inflight:
            self._dispatch()
            ready, _ = self.ray.wait(list(self.inflight), num_returns=1)
            i, job = self.inflight.pop(ready[0])
            slot = self.slots[i]
            slot.busy = False
            try:
                value: Any = self.ray.get(ready[0])
                slot.jobs += 1
            except RayTaskError as exc:  # the job raised: its worker is fine
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                value = Crash(f"{type(cause).__name__}: {first}", crashed=False)
            except (RayActorError, RayError) as exc:  # the worker died
                crumb = read_breadcrumb(f"{self.run_id}/{job.key}")
                self._replace(i)
                if not crumb:  # it died before it started this job (warming up): the job goes back in the queue
                    self.warm_deaths += 1
                    if self.warm_deaths > 2 * self.size + 2:
                        raise WorkersKeepDying(f"{self.warm_deaths} workers died before running a job: "
                                               f"{crash_cause(exc, None)}") from exc
                    self.queue.insert(0, job)
                    continue
                self.replaced += 1
                value = Crash(crash_cause(exc, crumb.get("stage")), crumb.get("stage", ""), crumb.get("worker", ""),
                              time.time() - crumb.get("started", time.time()))
            yield job, value

    def _replace(self, i: int) -> None:
        try:
            self.ray.kill(self.slots[i].actor)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        self.slots[i] = _Slot(self._new())

    def info(self) -> list[dict[str, Any]]:
        """Each live worker's host:pid, warm-up seconds, what its ``warm`` returned, its warm-up error, and the CPU
        time its process used so far."""
        return self.ray.get([s.actor.info.remote() for s in self.slots])

    def first_info(self) -> dict[str, Any]:
        """The info of the first worker to finish warming up (waits for it); a dead one is replaced and waited
        for again."""
        from ray.exceptions import RayError

        for _ in range(2 * self.size + 2):
            refs = {s.actor.info.remote(): i for i, s in enumerate(self.slots)}
            ready, _ = self.ray.wait(list(refs), num_returns=1)
            try:
                return self.ray.get(ready[0])
            except RayError as exc:
                self.warm_deaths += 1
                self._replace(refs[ready[0]])
                last = exc
        raise WorkersKeepDying(f"{self.warm_deaths} workers died warming up: {crash_cause(last, None)}")

    def shutdown(self) -> None:
        for s in self.slots:
            try:
                self.ray.kill(s.actor)
            except Exception:  # noqa: BLE001
                pass
        try:
            from ray.experimental.internal_kv import _internal_kv_del

            _internal_kv_del(f"{self.run_id}/", del_by_prefix=True, namespace=KV_NAMESPACE)
        except Exception:  # noqa: BLE001
            pass
