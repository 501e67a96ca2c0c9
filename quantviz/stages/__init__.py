"""The stages, one file each. Every ``quantviz/stages/<name>.py`` declares its record ``STAGE`` (see
:class:`~quantviz.stages.base.Stage`); the flows (``quantviz/flows/``) put them in order."""
from __future__ import annotations

from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

__all__ = ["Remedy", "Stage", "StageContext", "StageOutput"]
