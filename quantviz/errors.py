"""The one error type a failing stage raises, and the loader's error."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantviz.config import ConfigChanges
    from quantviz.failure_site import FailureSite


class LoadError(Exception):
    """The model reference could not be loaded (bad sample name, file, factory or return value)."""


@dataclass
class StageError(Exception):
    """A stage failed. ``message`` is the one-line cause, ``hint`` the fix to try, in words.

    ``fix`` is the same remedy as data: the ``PipelineConfig`` changes that apply it, e.g.
    ``{"skip_modules": ("pad",)}`` or ``{"lowering": "transform_and_lower"}``. The CLI prints it as flags, the app
    offers it as a button; empty when no config change is known to help.
    ``details`` keeps the original traceback (and any native log lines) for a "details" view.

    ``causes`` are the chained exceptions (``__cause__``/``__context__``) as ``"Type: first line"``, outermost
    first (the last is the innermost, real cause); ``log`` the warning/error lines torch, torchao and executorch
    logged while the stage ran; ``site`` the fx node the failure happened at (a pass, partitioner, interpreter or
    observer executing a graph), with its module and source line.
    """

    stage: str
    message: str
    hint: str
    details: str = ""
    metrics: dict = field(default_factory=dict)  # numbers measured before the failure (kept in summary.json)
    fix: ConfigChanges = field(default_factory=dict)  # PipelineConfig field -> value that applies the hint
    causes: list[str] = field(default_factory=list)  # chained exceptions, "Type: first line", outermost first
    log: list[str] = field(default_factory=list)  # library log records (WARNING and above) during the stage
    site: FailureSite | None = None  # the fx node being executed when it failed

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"stage '{self.stage}' failed: {self.message}\nhint: {self.hint}"

    def __reduce__(self) -> tuple:
        """Pickles with its fields (an Exception pickles its ``args`` only): a worker process sends it back whole."""
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "message": self.message, "hint": self.hint,
                "fix": {k: list(v) if isinstance(v, tuple) else v for k, v in self.fix.items()},
                "causes": list(self.causes), "log": list(self.log),
                "site": self.site.to_dict() if self.site is not None else None}
