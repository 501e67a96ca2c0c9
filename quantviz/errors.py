"""The one error type a failing stage raises, and the loader's error."""
from __future__ import annotations

from dataclasses import dataclass, field


class LoadError(Exception):
    """The model reference could not be loaded (bad sample name, file, factory or return value)."""


@dataclass
class StageError(Exception):
    """A stage failed. ``message`` is the one-line cause, ``hint`` the fix to try.

    ``details`` keeps the original traceback (and any native log lines) for a "details" view.
    """

    stage: str
    message: str
    hint: str
    details: str = ""
    metrics: dict = field(default_factory=dict)  # numbers measured before the failure (kept in summary.json)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"stage '{self.stage}' failed: {self.message}\nhint: {self.hint}"

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "message": self.message, "hint": self.hint}
