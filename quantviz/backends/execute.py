"""Run a lowered program wherever this machine can: in ExecuTorch's runtime, or with its delegates on the backend's
reference model; or say why not. The run stage and the numerics levels both call it::

    done = execute(config, et_program, edge_program, batches)
    done.executed_by    # "the ExecuTorch runtime" or "the TOSA reference model (...)"
    done.leaves[0]      # the first batch's flat outputs
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from quantviz.backends import backend_of
from quantviz.backends.delegate_runs import DelegateRun, run_with_delegates
from quantviz.config import PipelineConfig
from quantviz.model_spec import flat_inputs
from quantviz.runtime import load_program
from quantviz.workers import WorkerError, call_in_worker


class NoRuntimeHere(Exception):
    """The backend has neither a runtime nor a reference model on this machine (not a failure: the .pte is
    written)."""


@dataclass
class Execution:
    """A program's outputs on some batches, and what computed them."""

    leaves: list[list[Any]]  # per batch, the flat outputs (the runtime's output list order)
    executed_by: str  # "the ExecuTorch runtime", or the reference model that ran the delegates
    log: list[str] = field(default_factory=list)  # what native code printed (the runtime's own reasons)
    delegates: DelegateRun | None = None  # reference-model runs: every delegate call, and each one's own check
    report: dict[str, Any] = field(default_factory=dict)  # the backend compiler's report (Vela), when it has one


def execute(config: PipelineConfig, program: Any, lowered: Any, batches: list[Any],
            log: list[str] | None = None, should_stop: Callable[[], bool] | None = None,
            method: str = "forward") -> Execution:
    """Run ``program`` (an ExecutorchProgramManager; ``lowered`` its edge program) on ``batches`` as the config's
    backend allows here. Raises RuntimeError when the runtime fails (what native code printed is in ``log``, when
    given), ``quantviz.workers.WorkerDied`` when it killed its worker process (an abort), ``WorkerCancelled`` when
    ``should_stop()`` turned true, NoRuntimeHere when nothing can run it. The ExecuTorch runtime runs in a worker
    process forked from a warm server (``quantviz.workers``). ``method``: the program's method the batches are for
    (a model shipped with more methods: ``execute(config, program, lowered, decode_batches, method="decode")``);
    a backend's reference model runs forward only (a NoRuntimeHere for another method)."""
    backend = backend_of(config)
    if backend.numbers == "none":
        raise NoRuntimeHere(backend.numbers_note)
    if backend.numbers == "reference-model" and method != "forward":
        raise NoRuntimeHere(f"the {backend.reference_name} runs forward only here, not the method {method!r}")
    if backend.numbers == "reference-model":
        run = run_with_delegates(lowered, batches, backend.reference_dispatch, backend.reference_name)
        report = backend.report(lowered) if backend.report is not None else {}
        return Execution([[t.clone() if isinstance(t, torch.Tensor) else t for t in b] for b in run.outputs],
                         f"the {backend.reference_name} (the program's delegates; the ops outside them in PyTorch)",
                         delegates=run, report=report)
    log = [] if log is None else log
    try:  # in a worker process: an abort in native code ends the worker, not the caller (WorkerDied says how)
        # the runtime takes flat inputs: (args, kwargs) leaves in pytree order, as the program was exported
        leaves = call_in_worker(run_program, bytes(program.buffer), [flat_inputs(b) for b in batches],
                                config.uses_quantviz_kernels, method, what="the ExecuTorch runtime", log=log,
                                should_stop=should_stop)
    except WorkerError as exc:
        raise RuntimeError(exc.message) from exc
    return Execution(leaves, "the ExecuTorch runtime", log)


def run_program(buffer: bytes, batches: list[tuple], quantviz_kernels: bool = False,
                method: str = "forward") -> list[list[Any]]:
    """Load ``buffer`` (a .pte) in ExecuTorch's runtime and run its ``method`` on every batch: per batch, the flat
    outputs. Runs in the worker process (``call_in_worker``); in-process callers may use it too::

        run_program(et_program.buffer, [(token, pos, k, v)], method="decode")
    """
    if quantviz_kernels:
        from quantviz_kernels import load

        load()  # registers quantviz::*.out in this process's runtime
    leaves = []
    module = load_program(buffer)
    for batch in batches:
        # the runtime takes the flat leaves: (ids, {"input_pos": p}) -> (ids, p)
        flat = module.run_method(method, tuple(torch.utils._pytree.tree_leaves(tuple(batch))))
        leaves.append([t.clone() if isinstance(t, torch.Tensor) else t for t in flat])
    return leaves


def program_methods(buffer: bytes) -> list[str]:
    """The method names a ``.pte`` holds, read back by ExecuTorch's runtime: ``["forward", "decode"]``."""
    module = load_program(buffer)
    return list(module.method_names())
