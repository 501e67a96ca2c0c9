"""The stages, in order. Each is a module with ``DESCRIPTION`` and ``run(ctx) -> StageOutput``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from quantviz.config import STAGES
from quantviz.stages import calibrate, capture, convert, delegate, edge, emit, fuse, prepare, run, trace
from quantviz.stages.base import StageContext, StageOutput


@dataclass(frozen=True)
class Stage:
    name: str
    description: str  # one line
    explanation: str  # two or three plain sentences
    run: Callable[[StageContext], StageOutput]
    # The stage changes its input artifact in place: re-running it needs its predecessor re-run too.
    mutates_input: bool = False


_MODULES = {"trace": trace, "prepare": prepare, "calibrate": calibrate, "convert": convert, "capture": capture,
            "edge": edge, "delegate": delegate, "fuse": fuse, "emit": emit, "run": run}
# observers record in place; convert rewrites the observed module; edge folds weights into the captured program.
_MUTATES = {"calibrate", "convert", "edge"}

STAGE_LIST: tuple[Stage, ...] = tuple(
    Stage(name, _MODULES[name].DESCRIPTION, _MODULES[name].EXPLANATION, _MODULES[name].run, name in _MUTATES)
    for name in STAGES)
STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in STAGE_LIST}

__all__ = ["STAGE_BY_NAME", "STAGE_LIST", "Stage", "StageContext", "StageOutput"]
