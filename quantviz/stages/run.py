"""run: load the .pte in ExecuTorch's runtime (portable_lib), run it, compare with float and reference
(``run_fx.py``: the variant whose failure hints know the fx flow's uint8 activations)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from quantviz.config import PipelineConfig
from quantviz.data import EvaluationData, evaluation_data
from quantviz.backends import Backend
from quantviz.backends.delegate_runs import DelegateCall, DelegateCheck
from quantviz.backends.execute import NoRuntimeHere, execute
from quantviz.errors import StageError
from quantviz.known_issues import runtime_preflight
from quantviz.lowering import delegates
from quantviz.measure.language import LanguageFigures, language_figures
from quantviz.measure.metrics import accuracy, lsb_summary, sqnr_db
from quantviz.measure.run_numerics import RunNumerics
from quantviz.measure.verdict import RuntimeVerdict, judge
from quantviz.model_spec import Batch, Method, ModelSpec, call, flat_inputs
from quantviz.runtime import as_module, first_output, output_scale
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.workers import WorkerDied

DESCRIPTION = "load the .pte in the ExecuTorch runtime, run it, and compare with float and reference"
EXPLANATION = (
    "Loads the .pte in ExecuTorch's runtime (portable kernels plus delegates) and runs it on the "
    'evaluation data; the outputs are compared with the float model and the reference quantized model.'
)


@dataclass
class MethodRun:
    """One method of a model shipped with several in one ``.pte`` (forward, decode): what the runtime ran it on and
    how its first output compares, float vs runtime and reference vs runtime, over its batches::

        MethodRun("decode", [[(1, 1), (1,), (1, 24, 64), (1, 24, 64)]], [(1, 1, 64)], 22.6, 48.1, 22.7).line()
        # 'decode: 1 batch(es), inputs (1, 1) (1,) (1, 24, 64) (1, 24, 64) -> (1, 1, 64); SQNR float vs runtime ...'
    """

    name: str
    input_shapes: list[list[tuple[int, ...]]]  # per batch, every input leaf's shape (the runtime's flat order)
    output_shapes: list[tuple[int, ...]]  # per batch, the first output's shape (the one compared)
    float_vs_runtime_sqnr_db: float
    reference_vs_runtime_sqnr_db: float
    float_vs_reference_sqnr_db: float

    def line(self) -> str:
        shapes = "; ".join(" ".join(str(s) for s in inputs) + f" -> {out}"
                           for inputs, out in zip(self.input_shapes, self.output_shapes))
        return (f"method {self.name}: {len(self.input_shapes)} batch(es), inputs {shapes}; SQNR float vs runtime "
                f"{self.float_vs_runtime_sqnr_db:.1f} dB, reference vs runtime {self.reference_vs_runtime_sqnr_db:.1f} dB")

    def to_dict(self) -> dict:
        """The summary.json entry (``"methods": {name: ...}``)."""
        return {"batches": len(self.input_shapes), "input_shapes": [[list(s) for s in b] for b in self.input_shapes],
                "output_shapes": [list(s) for s in self.output_shapes],
                "float_vs_runtime_sqnr_db": self.float_vs_runtime_sqnr_db,
                "reference_vs_runtime_sqnr_db": self.reference_vs_runtime_sqnr_db,
                "float_vs_reference_sqnr_db": self.float_vs_reference_sqnr_db}


def _shapes(batch) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in flat_inputs(batch) if isinstance(t, torch.Tensor)]


@dataclass
class RuntimeRun:
    """Outputs of the three levels on the comparison batches, and the metrics between them."""

    float_outputs: list[torch.Tensor]
    reference_outputs: list[torch.Tensor]
    runtime_outputs: list[torch.Tensor]
    numerics: RunNumerics = field(default_factory=RunNumerics)
    runtime_log: list[str] = field(default_factory=list)
    verdict: RuntimeVerdict | None = None  # drift (reported) or wrong (the stage failed instead)
    batches: list[tuple] = field(default_factory=list)  # the comparison batches the runtime ran on
    runtime_leaves: list[list] = field(default_factory=list)  # per batch, the runtime's whole flat output list
    data: EvaluationData | None = None  # what the batches are (evaluation, calibration or synthetic held-out)
    executed_by: str = "the ExecuTorch runtime"  # or the backend's reference model; "" when nothing ran here
    delegate_checks: list[DelegateCheck] = field(default_factory=list)  # reference-model runs: each delegate alone
    delegate_calls: list[list[DelegateCall]] = field(default_factory=list)  # per batch, every delegate call
    report: dict = field(default_factory=dict)  # the backend compiler's report (Vela), when it has one
    not_run: str = ""  # why nothing ran the program here (no runtime for the backend): not a failure
    language: LanguageFigures | None = None  # a language model's perplexity, agreement and generation
    # a model shipped with more methods (ModelSpec.methods): each method's run, forward first; [] for one method
    methods: list[MethodRun] = field(default_factory=list)

    def outputs_for(self, batches: list[tuple]) -> list[list] | None:
        """The runtime's flat outputs when ``batches`` are the ones this run used (equal tensors), else None, so
        ``quantviz compare`` does not run the runtime again::

            leaves = pipe.results["run"].artifact.outputs_for(batches)
        """
        if len(batches) != len(self.batches) or len(self.runtime_leaves) != len(self.batches):
            return None
        for a, b in zip(self.batches, batches):
            a, b = flat_inputs(a), flat_inputs(b)  # a tuple, or a Batch with keyword inputs: its leaves
            if len(a) != len(b) or not all(
                    torch.equal(x, y) if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
                    and x.shape == y.shape else (x is y or (not isinstance(x, torch.Tensor) and x == y))
                    for x, y in zip(a, b)):
                return None
        return self.runtime_leaves

    def agreement(self) -> str:
        """One line: how the runtime compares with the reference model, e.g. 'runtime has an SQNR of 13.5 dB
        against the reference (max 7 LSB of the output scale): rounding drift ...'."""
        if self.not_run:
            return self.not_run
        if self.verdict is None:
            return ""
        who = "runtime" if self.executed_by in ("", "the ExecuTorch runtime") else \
            self.executed_by.removeprefix("the ").split(" (")[0]
        line = f"{who} {self.verdict.summary()}: {self.verdict.reason}"
        return line if self.verdict.excess_db == -float("inf") else line + "; `quantviz compare` shows where"


def check_comparison_batches(spec: ModelSpec, batches: list) -> None:
    """Every comparison batch must fit the program: the example's shapes (positional specs, the words they always
    had), or ``ModelSpec.mismatch`` with keyword inputs or declared dynamic dimensions."""
    if spec.structured or any(isinstance(b, Batch) for b in batches):
        for i, batch in enumerate(batches):
            why = spec.mismatch(batch)
            if why:
                raise StageError("run", f"comparison batch {i}: {why}",
                                 "give evaluation batches the example inputs' structure and shapes, except along the "
                                 "dimensions dynamic_shapes declares (pad the last batch)")
        return
    expected = [tuple(t.shape) for t in spec.example_inputs if isinstance(t, torch.Tensor)]
    for i, batch in enumerate(batches):
        got = [tuple(t.shape) for t in batch if isinstance(t, torch.Tensor)]
        if got != expected:
            raise StageError("run", f"comparison batch {i} has shapes {got}, the program was built for {expected}",
                             "give evaluation batches the example inputs' shapes (pad the last batch)")


def run(ctx: StageContext, uint8_activations: bool = False) -> StageOutput:
    """``uint8_activations``: the flow makes uint8 asymmetric activations with int8 weights (``run_fx.py``), a mix
    the XNNPACK delegate does not compute correctly, which the failure hints say."""
    program = ctx.previous()
    calibrated = ctx.flow.calibrates(ctx.config) if ctx.flow is not None else True  # the flow's answer words the data
    data = evaluation_data(ctx.spec, ctx.config, calibrated)
    batches = data.batches
    check_comparison_batches(ctx.spec, batches)

    lowered = ctx.role("lowered")
    known_abort = runtime_preflight(lowered)  # a program known to abort the runtime: its cause and fix, if it does
    if ctx.flow is not None and ctx.flow.uses_quantviz_kernels(ctx.config):
        from quantviz_kernels import load

        load()  # registers quantviz::*.out in the runtime (a no-op when the fuse stage already did)
    log: list[str] = []
    try:
        done = execute(ctx.config, program, lowered, batches, log, should_stop=ctx.should_stop)
    except NoRuntimeHere as why:
        return _not_run_here(ctx, data, str(why))
    except WorkerDied as died:
        raise died_error(died, known_abort, ctx.config) from died
    except RuntimeError as exc:
        message, hint, fix = explain_runtime_failure(exc, log, ctx, uint8_activations)
        raise StageError("run", message, hint, details="\n".join(log), fix=fix) from exc
    runtime_leaves = done.leaves
    runtime_outputs = [first_output(leaves) for leaves in runtime_leaves]
    ctx.progress(1.0, f"{len(batches)} batch(es) run by {done.executed_by}")
    reference, float_model = as_module(ctx.role("reference")), ctx.spec.model
    with torch.no_grad():
        float_outputs = [first_output(call(float_model, b)) for b in batches]
        reference_outputs = [first_output(call(reference, b)) for b in batches]
    cat = torch.cat
    f, r, rt = cat([o.flatten() for o in float_outputs]), cat([o.flatten() for o in reference_outputs]), \
        cat([o.flatten() for o in runtime_outputs])
    numerics = {"float_vs_reference_sqnr_db": sqnr_db(f, r), "float_vs_runtime_sqnr_db": sqnr_db(f, rt),
                "reference_vs_runtime_sqnr_db": sqnr_db(r, rt)}
    scale = output_scale(lowered)
    if scale is not None:
        lsb = lsb_summary(r, rt, scale)
        numerics["reference_vs_runtime_max_lsb"] = lsb["max_lsb"]
        numerics["reference_vs_runtime_share_ge_1_lsb"] = lsb["share_ge_1_lsb"]
    if data.labelled:
        labels = cat(data.labels)
        numerics["float_accuracy"] = accuracy(cat(float_outputs), labels)
        numerics["runtime_accuracy"] = accuracy(cat(runtime_outputs), labels)
    language = None
    if ctx.spec.language_model is not None and data.labelled:
        language = _language_figures(ctx, data, float_outputs, reference_outputs, runtime_outputs, reference,
                                     program, lowered)
        numerics.update(language.metrics())
    methods: list[MethodRun] = []
    if ctx.spec.methods:
        methods = [MethodRun("forward", [_shapes(b) for b in batches], [tuple(o.shape) for o in runtime_outputs],
                             numerics["float_vs_runtime_sqnr_db"], numerics["reference_vs_runtime_sqnr_db"],
                             numerics["float_vs_reference_sqnr_db"])]
        methods += [_run_method(ctx, m, program, lowered, log, known_abort, uint8_activations)
                     for m in ctx.spec.methods]
        for m in methods[1:]:
            numerics.update({f"{m.name}_float_vs_runtime_sqnr_db": m.float_vs_runtime_sqnr_db,
                             f"{m.name}_reference_vs_runtime_sqnr_db": m.reference_vs_runtime_sqnr_db,
                             f"{m.name}_float_vs_reference_sqnr_db": m.float_vs_reference_sqnr_db})
    verdict = judge(f, r, rt, scale)
    numerics["runtime_error_over_quantization_error_db"] = verdict.excess_db
    if verdict.wrong:
        hint, fix = _mismatch_hint(ctx, uint8_activations)
        raise StageError(
            "run", f"the runtime's output does not match the reference quantized model: it {verdict.summary()}, "
                   f"and {verdict.reason}", hint, details="\n".join(log), metrics=numerics, fix=fix)
    result = RuntimeRun(float_outputs, reference_outputs, runtime_outputs, RunNumerics.from_dict(numerics), log,
                        verdict, batches=list(batches), runtime_leaves=runtime_leaves, data=data,
                        executed_by=done.executed_by, delegate_checks=done.delegates.checks if done.delegates else [],
                        delegate_calls=done.delegates.calls if done.delegates else [], report=done.report,
                        language=language, methods=methods)
    notes = [f"measured on {data.describe()}", f"ran {len(batches)} batch(es) on {done.executed_by}",
             result.agreement(), *(language.notes() if language is not None else []), *(m.line() for m in methods)]
    notes += [check.line() for check in result.delegate_checks]
    notes += [vela_line(done.report.get("target", ""), rep) for rep in done.report.get("delegates", [])]
    calls = run_calls(ctx.backend) + [f"{m.name}_outputs = module.run_method({m.name!r}, "
                                      f"spec.method({m.name!r}).flat(spec.method({m.name!r}).example))"
                                      for m in ctx.spec.methods]
    return StageOutput(result, graph_source=False, metrics=numerics, calls=calls, notes=notes)


def _run_method(ctx: StageContext, method: Method, program, lowered, log: list[str], known_abort,
                uint8_activations: bool) -> MethodRun:
    """Run the ``.pte``'s ``method`` on its batches in the runtime and compare its first output with the float
    model's same method and the reference program of that method (the reference stage's, ``ctx.role_methods``)."""
    batches = method.comparison_batches()
    for i, batch in enumerate(batches):
        why = method.mismatch(ctx.spec.model, batch)
        if why:
            raise StageError("run", f"method {method.name}, comparison batch {i}: {why}",
                             f"give the method's batches its example's structure and shapes, except along the "
                             f"dimensions its dynamic_shapes declares (Method({method.name!r}, batches=...))")
    try:
        done = execute(ctx.config, program, lowered, batches, log, should_stop=ctx.should_stop, method=method.name)
    except WorkerDied as died:
        raise died_error(died, known_abort, ctx.config) from died
    except RuntimeError as exc:
        message, hint, fix = explain_runtime_failure(exc, log, ctx, uint8_activations)
        raise StageError("run", f"method {method.name}: {message}", hint, details="\n".join(log), fix=fix) from exc
    runtime = [first_output(leaves) for leaves in done.leaves]
    reference_program = ctx.role_methods("reference").get(method.name)
    if reference_program is None:
        raise StageError("run", f"no reference program of the method {method.name!r}: the reference stage kept none",
                         "run the pipeline from its capture stage again")
    reference = as_module(reference_program)
    with torch.no_grad():
        floats = [first_output(method.call(ctx.spec.model, b)) for b in batches]
        references = [first_output(call(reference, b)) for b in batches]
    f, r, rt = (torch.cat([o.flatten() for o in outs]) for outs in (floats, references, runtime))
    ctx.progress(1.0, f"method {method.name}: {len(batches)} batch(es) run by {done.executed_by}")
    return MethodRun(method.name, [_shapes(b) for b in batches], [tuple(o.shape) for o in runtime],
                     sqnr_db(f, rt), sqnr_db(r, rt), sqnr_db(f, r))


def died_error(died: WorkerDied, known: StageError | None, config: PipelineConfig | None = None) -> StageError:
    """The runtime killed its worker process (an abort in a kernel or delegate, out of memory): the signal, the last
    lines the native code printed, and the known cause with its fix when the preflight recognised the program.
    ``--partitioner none`` is suggested only when ``config`` delegates (under it, a portable kernel aborted)."""
    message = f"the ExecuTorch runtime {died.cause} in its worker process while running the program"
    if known is not None:
        message += "; the known cause: " + known.message.removesuffix(", so the program was not run")
    elif died.last_lines:
        message += f"; it last printed: {died.last_lines[-1]}"
    narrow = ", or try --partitioner none to see whether a delegate or a portable kernel aborts" \
        if config is None or delegates(config) else " (nothing is delegated: a portable kernel aborted)"
    hint = known.hint if known is not None else (
        "the app and your other stages are unaffected; the lines below are the runtime's own last words. Run the "
        f"stage again{narrow}")
    return StageError("run", message, hint, details="\n".join(died.last_lines),
                      fix=dict(known.fix) if known is not None else {},
                      causes=[f"WorkerDied: {died.signal_name}"], log=list(died.last_lines))


def vela_line(target: str, rep: dict) -> str:
    """One delegate's Vela report in a line: NPU and CPU ops, cycles, estimated time, SRAM."""
    def num(key: str, fmt: str) -> str:
        value = rep.get(key)
        return format(value, fmt) if isinstance(value, float) else "?"

    time_us = rep["inference_time"] * 1e6 if isinstance(rep.get("inference_time"), float) else float("nan")
    return (f"Vela ({target}), {rep['delegate']}: {rep.get('ops_on_npu', '?')} op(s) on the NPU, "
            f"{rep.get('ops_on_cpu', '?')} on the CPU, {num('cycles_npu', '.0f')} NPU cycles (estimated "
            f"{time_us:.1f} µs), SRAM {num('sram_memory_used', '.1f')} KiB, flash "
            f"{num('off_chip_flash_memory_used', '.1f')} KiB")


def run_calls(backend: Backend) -> list[str]:
    """The calls that give these numbers on this machine (``backend``'s runtime or reference model)."""
    if backend.numbers == "reference-model":
        return ["# no runtime for this backend here: the edge program runs in PyTorch, each delegate on the "
                f"{backend.reference_name}",
                "from quantviz.backends.delegate_runs import run_with_delegates  # records every delegate call",
                f"run = run_with_delegates(edge, batches, {backend.reference_dispatch.__name__}, "
                f"{backend.reference_name!r})"]
    return ["from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer",
            "module = _load_for_executorch_from_buffer(et_program.buffer)",
            "outputs = module.forward(flat_inputs(spec.example))  # the leaves of (args, kwargs), as exported"]


def _language_figures(ctx: StageContext, data: EvaluationData, float_outputs: list, reference_outputs: list,
                       runtime_outputs: list, reference, program, lowered) -> LanguageFigures:
    """Perplexity, agreement and greedy generation of float, reference and runtime (a language model's task)."""
    def runtime_step(tokens: torch.Tensor) -> torch.Tensor:
        return first_output(execute(ctx.config, program, lowered, [(tokens,)]).leaves[0])

    task = ctx.spec.language_model
    ctx.progress(1.0, f"language model: {task.steps} generation steps per level")
    with torch.no_grad():
        return language_figures(task, list(data.labels),
                                {"float": float_outputs, "reference": reference_outputs, "runtime": runtime_outputs},
                                {"float": lambda t: first_output(ctx.spec.model(t)),
                                 "reference": lambda t: first_output(reference(t)), "runtime": runtime_step})


def _not_run_here(ctx: StageContext, data: EvaluationData, why: str) -> StageOutput:
    """The backend cannot run here (Vulkan, Core ML): the float and reference figures, and why there is no more."""
    reference = as_module(ctx.role("reference"))
    with torch.no_grad():
        f = torch.cat([first_output(call(ctx.spec.model, b)).flatten() for b in data.batches])
        r = torch.cat([first_output(call(reference, b)).flatten() for b in data.batches])
    numerics = {"float_vs_reference_sqnr_db": sqnr_db(f, r)}
    result = RuntimeRun([], [], [], RunNumerics.from_dict(numerics), batches=list(data.batches), data=data,
                        executed_by="", not_run=why)
    return StageOutput(result, graph_source=False, metrics=numerics, calls=[],
                       notes=[why, f"float vs reference measured on {data.describe()}"])


def _mismatch_hint(ctx: StageContext, uint8_activations: bool) -> tuple[str, dict]:
    """(hint, fix) for a runtime that computes something else than the reference model."""
    if delegates(ctx.config) and uint8_activations:
        return ("the fx flow makes uint8 asymmetric activations with int8 weights; the XNNPACK delegate does not "
                "compute that mix correctly. Use --flow pt2e (int8, as XNNPACKQuantizer makes it) or --partitioner "
                "none", {"flow": "pt2e"})
    if delegates(ctx.config):
        return ("run again with --partitioner none: if that matches, the delegate is the cause",
                {"partitioner": "none"})
    return ("run again with --fusion none: if that matches, a fused quantized operator is the cause",
            {"fusion": "none"})


def explain_runtime_failure(exc: Exception, log: list[str], ctx: StageContext,
                            uint8_activations: bool = False) -> tuple[str, str, dict]:
    """(message, hint, fix) for a runtime failure, read from what the runtime printed."""
    xnn = [line for line in log if "XNN" in line or "xnn_" in line]
    if not xnn:
        narrow = {"partitioner": "none"} if delegates(ctx.config) else \
            ({"fusion": "none"} if ctx.config.fusion != "none" else {})
        return (f"the ExecuTorch runtime failed: {exc}",
                "see the runtime log in the details; try --partitioner none or --fusion none to narrow it down",
                narrow)
    found = [m for line in xnn for m in [re.search(r"Failed to (?:create|define) (\w+(?: \d+)?).*?(xnn_status_\w+)",
                                                    line)] if m]
    what = f"could not build {found[0].group(1)!r} ({found[0].group(2)})" if found else "rejected the graph"
    message = f"the XNNPACK delegate {what} when the program was loaded, so the method cannot run ({exc})"
    if uint8_activations:
        return message, ("XNNPACK wants int8 activations with symmetric int8 weights, as XNNPACKQuantizer makes them; "
                         "the fx flow makes uint8 asymmetric ones: use --flow pt2e, or --partitioner none"), \
            {"flow": "pt2e"}
    return message, "skip the module whose op XNNPACK rejects (--skip-module NAME), or use --partitioner demo or none", \
        {"partitioner": "none"}


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``_load_for_executorch_from_buffer`` and ``forward`` on every evaluation batch, in a worker process as the run
    stage does: a program that aborts the runtime ends the worker, and the step fails with the signal and the known
    cause (``runtime_preflight``) instead of this process; a program the preflight suspects but that runs, runs."""
    try:  # the runtime, or the backend's reference model (a user's script here can call either)
        done = execute(config, state["program"], state.get("edge"), evaluation_data(spec, config).batches)
    except NoRuntimeHere:
        return  # nothing runs this backend here: the user's script ends with the .pte
    except WorkerDied as died:
        raise RuntimeError(died_error(died, state.get("blocked"), config).message) from died
    state["outputs"] = done.leaves
    # a model shipped with more methods: each one's outputs on its own batches (``ModelSpec.methods``)
    state["method_outputs"] = {m.name: execute(config, state["program"], state.get("edge"), m.comparison_batches(),
                                               method=m.name).leaves for m in spec.methods}


STAGE = Stage(
    "run", run, DESCRIPTION, EXPLANATION, reads=("held_out",), overlay="fused_vs_runtime_sqnr_db",
    page_runs_torch=True,
    remedy=Remedy("try --partitioner none or --fusion none to find what the runtime rejects",
                  ({"partitioner": "none"}, {"fusion": "none"})),
    bare=bare)
