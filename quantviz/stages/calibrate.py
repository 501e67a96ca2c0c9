"""calibrate, the slot's shared body (the variants ``calibrate_fx.py`` and ``calibrate_pt2e.py`` say how their
model was prepared, for the hints): run calibration batches through the observed model so observers record ranges.

What is checked before running, in this order, each with its own message and hint:

1. every batch has the example inputs' shapes and dtypes (the graph was traced for them): "check the
   calibration data" is said for this, and only for this;
2. no batch holds NaN/Inf;
3. no parameter (or buffer) of the model holds NaN/Inf, named, e.g. "parameter 'blocks.3.conv.weight' has
   1 NaN value(s)".

When a batch then fails, the cause is inside the prepared model: the failing node (op or observer) is named
with its module and source line, found by re-running that batch node by node.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
import traceback
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import fx

from quantviz.config import PipelineConfig
from quantviz.errors import StageError
from quantviz.failure_site import FailureSite, find_failure_site, rerun_under_interpreter
from quantviz.known_issues import cause_chain, cause_line
from quantviz.model_spec import Batch, ModelSpec, call, flat_inputs
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "run the calibration batches through the observed model (observers record ranges)"
EXPLANATION = (
    'Runs sample data through the observed model. Each observer records the range of the values it sees; '
    'those ranges become the scales and zero points of the int8 tensors.'
)


def describe_value(t: Any) -> str:
    if isinstance(t, torch.Tensor):
        return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
    return type(t).__name__


def check_spec_batches(spec: ModelSpec, batches: list[Any], stage: str) -> None:
    """Every batch must fit the program built from the example: ``check_batches_match`` for positional specs
    (its words, unchanged); with keyword inputs or dynamic dimensions, ``ModelSpec.mismatch`` (shapes may differ
    along the declared dimensions, within their range)."""
    if not spec.structured and not any(isinstance(b, Batch) for b in batches):
        check_batches_match(spec.example_inputs, batches, stage)
        return
    for i, batch in enumerate(batches):
        why = spec.mismatch(batch)
        if why:
            raise StageError(stage, f"calibration batch {i}: {why}",
                             "check the calibration data: every batch must have the example inputs' structure, "
                             "shapes and dtypes, except along the dimensions dynamic_shapes declares")


def check_batches_match(examples: tuple, batches: list[tuple], stage: str) -> None:
    """Every batch must have as many inputs as the example inputs, with the same shapes and dtypes."""
    expected = [describe_value(t) for t in examples]
    for i, batch in enumerate(batches):
        got = [describe_value(t) for t in batch]
        if got == expected:
            continue
        if len(got) != len(expected):
            what = f"has {len(got)} input(s), the example inputs are {len(expected)}"
        else:
            j = next(j for j, (g, e) in enumerate(zip(got, expected)) if g != e)
            what = f"input {j} is {got[j]}, the example input is {expected[j]}"
        raise StageError(stage, f"calibration batch {i} {what}",
                         "check the calibration data: every batch must have the example inputs' shapes and dtypes "
                         "(the graph was traced for them); pad or drop the odd batch")


def check_finite(batch: Any, index: int, stage: str) -> None:
    for j, t in enumerate(flat_inputs(batch)):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise StageError(stage, f"calibration batch {index} input {j} has {bad} NaN/Inf value(s); observers "
                                    "would record a NaN or infinite range",
                             "clean the calibration data (torch.nan_to_num) or drop that batch")


def nonfinite_weights(model: torch.nn.Module, buffer_inf: bool = False) -> list[str]:
    """``"parameter 'conv.weight' has 1 NaN value(s)"`` for every parameter with NaN/Inf and every buffer with
    NaN (and Inf when ``buffer_inf``: masks legitimately hold -inf). Observers' own buffers are left out."""
    found = []
    for prefix, module in model.named_modules():
        if _is_observer(module):
            continue
        tensors = [("parameter", n, t) for n, t in module.named_parameters(recurse=False)] + \
                  [("buffer", n, t) for n, t in module.named_buffers(recurse=False)]
        for kind, name, t in tensors:
            if t is None or not t.is_floating_point():
                continue
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            if kind == "buffer" and not buffer_inf:
                inf = 0
            parts = [f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else ""]
            if nan or inf:
                full = f"{prefix}.{name}" if prefix else name
                found.append(f"{kind} '{full}' has {' and '.join(p for p in parts if p)} value(s)")
    return found


def check_weights_finite(model: torch.nn.Module, stage: str, buffer_inf: bool = False, after: str = "") -> None:
    error = weights_error(model, stage, buffer_inf, after)
    if error is not None:
        raise error


def weights_error(model: torch.nn.Module, stage: str, buffer_inf: bool = False, after: str = "") -> StageError | None:
    """The StageError naming ``model``'s non-finite parameters/buffers (see ``nonfinite_weights``), or None."""
    bad = nonfinite_weights(model, buffer_inf)
    if not bad:
        return None
    shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    return StageError(stage, f"{shown}{after}: observers would record NaN or infinite ranges and every scale "
                             "computed from them would be NaN",
                      "fix the model's weights (the checkpoint, or the code that initialises or loads them): "
                      "every parameter and buffer the model computes with must be finite")


@dataclass(frozen=True)
class Prepared:
    """What the calibrate variant knows of how its model was prepared, for the hints of a failing batch."""

    other_flow: str  # the observer flow to suggest instead, e.g. "fx" after prepare_pt2e
    scalars_to_attrs: bool = False  # the quantizer's transform_for_annotation makes Python scalars float tensors


def explain_batch_failure(exc: Exception, index: int, model: torch.nn.Module, batch: tuple,
                          config: PipelineConfig, spec_model: torch.nn.Module, prepared: Prepared) -> StageError:
    """The calibration data matched the example inputs, so the cause is inside the model: a non-finite weight
    (named) when the error is about NaN/Inf, else the failing node, its module and source line."""
    chain = cause_chain(exc)
    cause = cause_line(chain[-1])
    site = rerun_under_interpreter(model, batch, exc) if isinstance(model, fx.GraphModule) else None
    site = site or find_failure_site(exc)
    if re.search(r"nan|inf|finite", "\n".join(str(e) for e in chain), re.IGNORECASE):
        error = weights_error(model, "calibrate", buffer_inf=True,
                              after=f" (calibration batch {index} failed: {cause})")
        if error is not None:
            error.site = site
            return error
    message = f"calibration batch {index} failed inside the prepared model: {cause}"
    if site is not None:
        message += f", at {site.short()}"
        if site.during:
            message += f" ({site.during})"
        if site.dtype_drift:
            message += f"; {site.dtype_drift}"
    structural = bool(re.search(r"Dimension out of range|IndexError|shape|size mismatch", cause))
    hint, fix = _hint(site, config, spec_model, prepared, structural)
    return StageError("calibrate", message, hint, site=site, fix=fix)


def _hint(site: FailureSite | None, config: PipelineConfig, spec_model: torch.nn.Module, prepared: Prepared,
          structural: bool = False) -> tuple[str, dict]:
    """The hint and the config change for a calibration failure at ``site``; ``structural``: the failure is about
    shapes (an observer's channel axis a tensor does not have), so every module of the same type fails alike."""
    other = prepared.other_flow
    module = _skippable(site.module if site else "", spec_model)
    skip = {"skip_modules": (*config.skip_modules, module)} if module else {}
    data_ok = "the calibration data matches the example inputs, so "
    if site is not None and site.dtype_drift and prepared.scalars_to_attrs and not config.keep_integer_scalars:
        return (data_ok + "prepare_pt2e changed the dtype of a value inside the model: the quantizer's "
                "transform_for_annotation (XNNPACKQuantizer's _convert_scalars_to_attrs) turns the Python number of "
                "every add/mul into a float32 tensor constant, also in integer index arithmetic such as "
                "torch.arange(n) + past_seen_tokens, so the indices computed from it are float. Rerun with "
                "--keep-integer-scalars: quantviz.passes.keep_integer_scalars keeps those scalars integer before "
                "prepare_pt2e (the model is not changed; the pass shows in the prepare stage's calls and in "
                "reproduce.py)", {"keep_integer_scalars": True})
    if site is not None and site.dtype_drift and prepared.scalars_to_attrs:
        return (data_ok + "prepare_pt2e changed the dtype of a value inside the model, and not through an integer "
                "scalar (--keep-integer-scalars is on): compute that value once in __init__ and register it as a "
                "buffer, or skip the module (--skip-module)", skip)
    if site is not None and site.during.startswith(("observer", "fake-quantize")):
        what = f"the {site.during} fails on the values it observes"
        if structural:
            what = f"the {site.during} fails on the shape of what it observes (an axis the tensor does not have)"
        kin = _same_type(module, spec_model) if structural else []
        if len(kin) > 1:  # a shape the quantizer annotates every module of that type with: each fails alike
            kind = type(spec_model.get_submodule(module)).__name__
            shown = ", ".join(kin[:4]) + (", ..." if len(kin) > 4 else "")
            return (data_ok + f"{what}, and the quantizer annotates all {len(kin)} {kind} modules alike: skip every "
                    f"{kind} ({shown}) so they stay float (--skip-module for each), or use --flow {other}",
                    {"skip_modules": tuple(dict.fromkeys((*config.skip_modules, *kin)))})
        if module:
            return (data_ok + f"{what}: skip module '{module}' (--skip-module {module}) so it stays float, or use "
                    f"--flow {other}", skip)
        return data_ok + f"{what}: use --flow {other}", {"flow": other}
    if module:
        return (data_ok + f"an op inside the model fails on the values it gets in the prepared graph: skip module "
                f"'{module}' (--skip-module {module}) so it stays float, or use --flow {other}", skip)
    return data_ok + f"an op or observer inside the prepared model failed: try --flow {other}", {"flow": other}


def _skippable(module: str, model: torch.nn.Module) -> str:
    """``module`` or its nearest parent that is a submodule name of the float model ('' if none)."""
    names = {n for n, _ in model.named_modules() if n}
    while module and module not in names:
        module = module.rpartition(".")[0]
    return module


def _same_type(module: str, model: torch.nn.Module) -> list[str]:
    """Every submodule of ``model`` whose class has the name of ``module``'s (``module`` first; a model's own
    ``LayerNorm`` and ``nn.LayerNorm`` alike), or [] for none."""
    if not module:
        return []
    kind = type(model.get_submodule(module)).__name__
    return [module, *(n for n, m in model.named_modules() if n and n != module and type(m).__name__ == kind)]


def _is_observer(module: torch.nn.Module) -> bool:
    names = {c.__name__ for c in type(module).__mro__}
    return bool(names & {"ObserverBase", "FakeQuantizeBase"})


def run(ctx: StageContext, prepared: Prepared) -> StageOutput:
    model = ctx.previous()  # the observed model: observers are updated in place
    batches = ctx.spec.calibration_data(ctx.config.calibration_batches)
    check_spec_batches(ctx.spec, batches, "calibrate")
    for i, batch in enumerate(batches):
        check_finite(batch, i, "calibrate")
    check_weights_finite(ctx.spec.model, "calibrate")
    with torch.no_grad():
        for i, batch in enumerate(batches):
            printed = io.StringIO()  # torch prints a failing GraphModule line (with a traceback) to stderr
            try:
                with contextlib.redirect_stderr(printed):
                    call(model, batch)
            except Exception as exc:  # noqa: BLE001 - name the node, module and line that failed
                error = explain_batch_failure(exc, i, model, batch, ctx.config, ctx.spec.model, prepared)
                error.details = "".join(traceback.format_exception(exc)) + printed.getvalue()
                raise error from exc
            sys.stderr.write(printed.getvalue())  # what the model itself printed
            ctx.progress((i + 1) / len(batches), f"calibration batch {i + 1}/{len(batches)}")
    keywords = any(isinstance(b, Batch) for b in batches)
    return StageOutput(model, calls=["with torch.no_grad():", "    for batch in calibration_batches:",
                                     "        observed(*batch.args, **batch.kwargs)" if keywords
                                     else "        observed(*batch)"],
                       notes=[f"ran {len(batches)} calibration batch(es)"], metrics={"batches": len(batches)})


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """Run the calibration batches through the observed model."""
    with torch.no_grad():
        for batch in spec.calibration_data(config.calibration_batches):
            call(state["observed"], batch)


def calibration_stage(prepared: Prepared, variant: str) -> Stage:
    """The calibrate record of a variant file: ``calibration_stage(Prepared(other_flow="fx"), "calibrate_pt2e")``."""
    return Stage(
        "calibrate", partial(run, prepared=prepared), DESCRIPTION, EXPLANATION, reads=("calibration_batches",),
        mutates_input=True,  # observers record in place
        remedy=Remedy("the calibration data matches the example inputs, so an op or observer inside the prepared "
                      "model failed: see the failing node; skip its module with --skip-module or try the other flow",
                      ({"flow": prepared.other_flow},)),
        bare=bare, variant=variant)
