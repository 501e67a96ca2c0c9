"""The bare torch/executorch calls of a configuration, without quantviz's pipeline: what a user's own script does.

quantviz is held to it: on the same model in the same process, quantviz must reach ``run`` whenever this does
(tests/test_zoo_e2e.py, bench/zoo.py)::

    bare = run_bare(load_model("sample:zoo_vit"), PipelineConfig(flow="pt2e", backend="xnnpack"))
    bare.ok, bare.failed_step, bare.error        # True, None, ""
    bare.delegate_calls, bare.non_delegated_ops  # 1, ('aten.cat.default', ...)

Each stage declares the bare call it stands for (``Stage.bare`` in ``quantviz/stages/<name>.py``); this runs the
flow's stages' bare calls in order, so a step is named after its stage. The edge stage's bare call is the whole
``to_edge_transform_and_lower`` (the delegate stage is part of it); the fx flow's capture adds quantviz's two small
weight passes its reference model needs to run at all (see the README's limitations). quantviz's own fusion
patterns, module skipping and tracing help are not bare calls and are not applied. The backend's declared defaults
(``Backend.defaults``: Arm runs pt2e without export guards, Vulkan per-channel weights) are applied as the
pipeline applies them (``with_backend_defaults``), so both sides run the same configuration.

A flow whose stages have no bare calls (export_llm: its own entry point is the bare call) has no bare equivalent:
``BareRun.absent`` says so, and it is neither ok nor failed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Collection

import torch

from quantviz.backends import normalize
from quantviz.config import ConfigChanges, PipelineConfig
from quantviz.flows import flow_of, with_backend_defaults
from quantviz.model_spec import ModelSpec


@dataclass
class BareRun:
    """What the bare calls reached, and what they made."""

    ok: bool = False                    # every step ran (False too when ``absent``)
    failed_step: str | None = None      # the first step that raised (the stage whose bare call it is)
    error: str = ""                     # its exception: "Type: first line"
    seconds: dict[str, float] = field(default_factory=dict)  # step -> wall seconds, for the steps that ran
    delegate_calls: int = 0             # executorch_call_delegate nodes after lowering
    non_delegated_ops: tuple[str, ...] = ()  # sorted op names left outside delegates (getitem excluded)
    outputs: list[Any] = field(default_factory=list)  # the runtime's outputs, one per evaluation batch
    pte: bytes | None = None            # the program's bytes, when emitted
    config: PipelineConfig | None = None  # the configuration run: the given one with the backend's defaults
    backend_defaults: ConfigChanges = field(default_factory=dict)  # field -> value the backend needed (applied)
    absent: str = ""                    # why there is no bare equivalent of this configuration ("" when there is)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


class _State(dict):
    """The artifacts of a user's script; a step that reads one no earlier step made has no bare equivalent."""

    def __missing__(self, key: str) -> Any:
        raise _NoBareEquivalent(key)


class _NoBareEquivalent(Exception):
    pass


def bare_steps(config: PipelineConfig, explicit: Collection[str] = frozenset()) -> tuple[str, ...]:
    """The steps ``run_bare`` takes under ``config`` (the backend's defaults applied, but to the fields in
    ``explicit``): the flow's stages that have a bare call."""
    return tuple(s.name for s in flow_of(with_backend_defaults(config, explicit)[0]).stages if s.bare is not None)


def run_bare(spec: ModelSpec, config: PipelineConfig, apply_backend_defaults: bool = True,
             explicit: Collection[str] = frozenset()) -> BareRun:
    """Run the bare calls of ``config`` on ``spec`` (with the backend's declared defaults, but to the fields the user
    chose (``explicit``), as ``Pipeline`` applies them unless told not to); stops at the first step that raises and
    says which."""
    config, changes = with_backend_defaults(config, explicit) if apply_backend_defaults else (normalize(config), {})
    result = BareRun(config=config, backend_defaults=dict(changes))
    flow = flow_of(config)
    if not any(stage.bare is not None for stage in flow.stages):
        result.absent = f"the {flow.name} flow has no bare calls to compare with (its stages are its own entry point)"
        return result
    state = _State()
    for stage in flow.stages:
        if stage.bare is None:
            continue
        t0 = time.perf_counter()
        try:
            with torch.set_grad_enabled(torch.is_grad_enabled()):  # as Pipeline: a failed step leaves it as it was
                stage.bare(spec, config, state)
        except _NoBareEquivalent as missing:
            result.absent = (f"the {flow.name} flow's {stage.name} stage reads {missing.args[0]!r}, which no earlier "
                             "stage's bare call makes")
            return _finish(result, state)
        except Exception as exc:  # noqa: BLE001 - the bare flow failed here: that is the finding
            text = str(exc).strip()
            result.failed_step = stage.name
            result.error = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:500]
            return _finish(result, state)
        result.seconds[stage.name] = time.perf_counter() - t0
    result.ok = True
    return _finish(result, state)


def _finish(result: BareRun, state: dict[str, Any]) -> BareRun:
    result.delegate_calls, result.non_delegated_ops = state.get("lowered_ops", (0, ()))
    result.outputs = state.get("outputs", [])
    program = state.get("program")
    result.pte = program.buffer if program is not None else None
    return result
