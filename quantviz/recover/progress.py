"""``progress.jsonl``: a running recovery's events, one JSON object a line, typed until ``to_dict()`` at the edge.

``quantviz recover`` writes a :class:`Started` event, a :class:`TrialDone` per finished trial and an :class:`Ended`;
the app's Recover page follows the file while the recovery runs (``read_progress``). The JSON is the events'
``to_dict()``, each with its ``"event"`` key ("start", "trial", "end")::

    log = ProgressLog(out / "progress.jsonl")      # starts the file afresh
    log.write(Started("sample:digits_cnn", Target("sqnr", 38.0), budget=6, data="evaluation data: ..."))
    events = read_progress(out / "progress.jsonl")  # [Started(...)]; a line being written is left for later
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantviz.candidates import Candidate
from quantviz.recover.trial import Target, Trial


@dataclass(frozen=True)
class Started:
    """The recovery began: what it runs, to which target, within which budget, on which data."""

    model: str  # the model reference, as given to ``quantviz recover``
    target: Target
    budget: int  # trials beyond the base run
    data: str  # the evaluation data the figures are measured on (``EvaluationData.describe``)
    candidates: list[Candidate] = field(default_factory=list)  # what the flow and the backend declared

    def to_dict(self) -> dict[str, Any]:
        return {"event": "start", "model": self.model, "target": self.target.to_dict(), "budget": self.budget,
                "data": self.data, "candidates": [c.to_dict() for c in self.candidates]}


@dataclass(frozen=True)
class TrialDone:
    """One trial finished (``done`` of at most ``total``, the base run counted)."""

    done: int
    total: int
    meets: bool  # it meets the target
    trial: Trial

    def to_dict(self) -> dict[str, Any]:
        return {"event": "trial", "done": self.done, "total": self.total, "meets": self.meets,
                "trial": self.trial.to_dict()}


@dataclass(frozen=True)
class Ended:
    """The recovery ended: whether the target was met, and the winner's change set ("a + b"; None: not met)."""

    met: bool
    winner: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"event": "end", "met": self.met, "winner": self.winner}


ProgressEvent = Started | TrialDone | Ended


def event_from_dict(d: dict[str, Any]) -> ProgressEvent | None:
    """An event back from its ``to_dict()`` (a line of progress.jsonl); None for an event this version does not
    know."""
    kind = d.get("event")
    if kind == "start":
        return Started(d.get("model", ""), Target.from_dict(d["target"]), d["budget"], d.get("data", ""),
                       [Candidate.from_dict(c) for c in d.get("candidates", [])])
    if kind == "trial":
        return TrialDone(d["done"], d["total"], bool(d["meets"]), Trial.from_dict(d["trial"]))
    if kind == "end":
        return Ended(bool(d["met"]), d.get("winner"))
    return None


def read_progress(path: Path) -> list[ProgressEvent]:
    """The events of ``path`` so far ([] when there is no file yet); a line still being written ends the list."""
    path = Path(path)
    if not path.is_file():
        return []
    out: list[ProgressEvent] = []
    for line in path.read_text().splitlines():
        try:
            event = event_from_dict(json.loads(line))
        except ValueError:  # a line being written
            break
        if event is not None:
            out.append(event)
    return out


class ProgressLog:
    """``progress.jsonl`` as a recovery writes it: one event a line (the app's page and anything else follow a
    running recovery); a new log starts the file afresh."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def write(self, event: ProgressEvent) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(event.to_dict()) + "\n")
