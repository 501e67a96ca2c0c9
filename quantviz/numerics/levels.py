"""The four levels a model is compared at, each run on the same batches.

1. float: the original model, eager.  2. reference: convert's output (q/dq around float ops).
3. fused: the program after the fuse stage, run ahead of time in PyTorch (quantized ops by their ATen kernels).
4. runtime: the .pte in the ExecuTorch runtime (portable_lib), delegates included.

A level that cannot run says why instead of leaving a gap (``LevelOutputs.unavailable``). When the run stage ran
the runtime on the same batches, its outputs are reused instead of running the runtime again
(``LevelOutputs.runtime_reused``).

Example::

    levels = run_levels(pipe, pipe.spec.comparison_batches())
    levels.outputs["runtime"].shape, levels.runtime_reused     # (torch.Size([64, 10]), True)
    levels.leaves["float"][0]                                   # [("logits", tensor), ("aux[0]", tensor)]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from quantviz.backends.execute import NoRuntimeHere, execute
from quantviz.known_issues import runtime_preflight
from quantviz.numerics.kernel_instances import has_delegates
from quantviz.pipeline_view import PipelineView
from quantviz.runtime import concat_outputs, output_leaves
from quantviz.model_spec import call

LEVELS = ("float", "reference", "fused", "runtime")


@dataclass
class LevelOutputs:
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)   # level -> concatenated first outputs
    unavailable: dict[str, str] = field(default_factory=dict)        # level -> why it did not run
    leaves: dict[str, list[list[tuple[str, Any]]]] = field(default_factory=dict)  # level -> per batch, (path, leaf)
    runtime_reused: bool = False   # the runtime's outputs are the run stage's (same batches), not a new run


def _flat(level: str, outs: list[Any], res: LevelOutputs) -> torch.Tensor:
    res.leaves[level] = [output_leaves(o) for o in outs]
    return concat_outputs(outs)


def run_levels(pipe: PipelineView, batches: list[tuple]) -> LevelOutputs:
    """Run every available level on ``batches``; outputs are (rows, features) tensors."""

    res = LevelOutputs()
    with torch.no_grad():
        res.outputs["float"] = _flat("float", [call(pipe.spec.model, b) for b in batches], res)
        reference = pipe.reference_module()
        if reference is not None:
            res.outputs["reference"] = _flat("reference", [call(reference, b) for b in batches], res)
        else:
            res.unavailable["reference"] = f"the {pipe.role('reference') or 'reference'} stage has no result"
        fuse = pipe.results.get(pipe.role("lowered") or "")
        if fuse is None or not fuse.ok:
            res.unavailable["fused"] = f"the {pipe.role('lowered') or 'fuse'} stage has no result"
        else:
            if pipe.flow.uses_quantviz_kernels(pipe.config):
                from quantviz_kernels import load

                load()
            ep = fuse.artifact.exported_program()
            if has_delegates(ep.graph_module):
                res.unavailable["fused"] = ("the program calls delegates (lowered to a backend); they only run in "
                                            "the runtime, so there is no ahead-of-time fused level")
            else:
                gm = ep.module()
                res.outputs["fused"] = _flat("fused", [call(gm, b) for b in batches], res)
    emit = pipe.results.get(pipe.role("program") or "")
    if emit is None or not emit.ok:
        res.unavailable["runtime"] = f"the {pipe.role('program') or 'emit'} stage has no .pte"
        return res
    blocked = runtime_preflight(fuse.artifact if fuse is not None and fuse.ok else None)
    if blocked is not None:
        res.unavailable["runtime"] = blocked.message
        return res
    run = pipe.result_of("runtime")
    reused = run.artifact.outputs_for(batches) if run is not None and run.ok else None
    if reused is not None:
        res.outputs["runtime"], res.runtime_reused = _flat("runtime", reused, res), True
        return res
    try:
        done = execute(pipe.config, emit.artifact, fuse.artifact if fuse is not None and fuse.ok else None, batches)
        res.outputs["runtime"] = _flat("runtime", done.leaves, res)
    except NoRuntimeHere as why:
        res.unavailable["runtime"] = str(why)
    except RuntimeError as exc:
        res.unavailable["runtime"] = f"the runtime failed: {exc}"
    return res
