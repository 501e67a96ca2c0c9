"""Run a lowered program where the backend has no runtime here but a reference model: the edge program runs in
PyTorch and every delegate call is handed to the backend's reference model (Arm's TOSA reference model), recorded
with the inputs it received and the outputs it gave.

Each delegate is also checked on its own: the same inputs through the delegate's edge subgraph in PyTorch (the
q/dq ops it was lowered from), so a delegate that computes something else is named even when the end-to-end
figure hides it::

    run = run_with_delegates(edge, batches, TosaReferenceModelDispatch, "TOSA reference model")
    run.outputs[0]            # the program's flat outputs on the first batch
    run.checks[0].bit_exact   # the first delegate against its own edge subgraph
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from quantviz.measure.metrics import sqnr_db
from quantviz.model_spec import call

# a TorchFunctionMode that runs every delegate call on the backend's reference model (Arm's TosaReferenceModelDispatch)
ReferenceDispatch = Callable[[], TorchFunctionMode]


@dataclass
class DelegateCall:
    """One delegate call during one batch."""

    index: int  # k-th delegate call of the program (execution order)
    backend: str  # the lowered module's backend id, e.g. "TOSABackend"
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]
    module: Any = field(repr=False, default=None)  # the LoweredBackendModule


@dataclass
class DelegateCheck:
    """A delegate's reference-model outputs against its own edge subgraph in PyTorch, on the same inputs."""

    index: int  # the delegate call (execution order)
    backend: str
    bit_exact: bool
    max_abs_diff: float  # in the outputs' own units (integer steps for int outputs)
    mismatching: int  # elements that differ
    elements: int
    sqnr_db: float  # of the reference-model output against the edge subgraph's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """e.g. "delegate 0 (TOSABackend): bit-exact with its edge subgraph" or "... 1463 of 2048 elements differ,
        up to 88 (SQNR 1.2 dB): it computes something else"."""
        head = f"delegate {self.index} ({self.backend})"
        if self.bit_exact:
            return f"{head}: bit-exact with its edge subgraph run in PyTorch on the same inputs"
        return (f"{head}: {self.mismatching} of {self.elements} output elements differ from its edge subgraph "
                f"on the same inputs, by up to {self.max_abs_diff:g} (SQNR {self.sqnr_db:.1f} dB)")


@dataclass
class DelegateRun:
    """The program run on every batch with its delegates on a reference model."""

    outputs: list[list[Any]]  # per batch, the program's flat outputs (the order of the runtime's output list)
    calls: list[list[DelegateCall]]  # per batch, every delegate call
    checks: list[DelegateCheck]  # per delegate call of the first batch
    runner: str  # what ran the delegates, e.g. "TOSA reference model"


class _Recorder(TorchFunctionMode):
    """Records every ``executorch_call_delegate`` (inputs, outputs); the outer mode, the backend's reference
    dispatch, computes it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[DelegateCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch._higher_order_ops.executorch_call_delegate:
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            self.calls.append(DelegateCall(len(self.calls), args[0].backend_id, list(args[1:]), outs, args[0]))
        return out


def run_with_delegates(program: Any, batches: list[tuple], dispatch: ReferenceDispatch,
                       runner_name: str) -> DelegateRun:
    """Run the edge ``program`` (an EdgeProgramManager) on ``batches`` with every delegate on the backend's
    reference model (``dispatch()``), recording each call; check each delegate of the first batch on its own."""
    module = program.exported_program().module()
    outputs, calls = [], []
    for batch in batches:
        recorder = _Recorder()
        with torch.no_grad(), dispatch(), recorder:
            out = call(module, batch)
        outputs.append([t for t in torch.utils._pytree.tree_leaves(out)])
        calls.append(recorder.calls)
    checks = [check_delegate(c) for c in calls[0]] if calls else []
    return DelegateRun(outputs, calls, checks, runner_name)


def check_delegate(call: DelegateCall) -> DelegateCheck:
    """``call``'s outputs against the delegate's edge subgraph run in PyTorch on the same inputs."""
    with torch.no_grad():
        expected = call.module.original_module.module()(*call.inputs)
    expected = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    diffs, mismatching, elements = [], 0, 0
    got_all, want_all = [], []
    for got, want in zip(call.outputs, expected):
        got, want = got.reshape(want.shape), want
        d = (got.double() - want.double()).abs()
        diffs.append(float(d.max()) if d.numel() else 0.0)
        mismatching += int((d > 0).sum())
        elements += want.numel()
        got_all.append(got.double().flatten())
        want_all.append(want.double().flatten())
    worst = max(diffs, default=0.0)
    sqnr = sqnr_db(torch.cat(want_all), torch.cat(got_all)) if want_all else float("nan")
    return DelegateCheck(call.index, call.backend, worst == 0.0, worst, mismatching, elements, sqnr)
