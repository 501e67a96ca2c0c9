"""What the recovery search asks for and gets back: the :class:`Target`, one :class:`Request` (a change set to
run) and one :class:`Trial` (that change set run through the whole flow to the runtime, measured), and the
:class:`Engine` the trials ran on. Plain data: the Ray driver and the app read them without torch.

Example::

    target = Target("sqnr", 38.0)
    trial = Trial(("per_channel",), "single", sqnr_db=39.2, ok=True)
    target.met(trial), target.describe()      # True, 'float-vs-runtime SQNR >= 38.0 dB'
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from quantviz.candidates import Candidate, Scope
from quantviz.config import ConfigChanges

TargetKind = Literal["sqnr", "accuracy_drop", "ppl_increase"]
# base: the config as given; single: one candidate; greedy: the current set plus one; prune: the set minus one
Phase = Literal["base", "single", "greedy", "prune"]


@dataclass(frozen=True)
class Target:
    """``sqnr``: float-vs-runtime SQNR at least ``value`` dB; ``accuracy_drop``: float accuracy minus runtime
    accuracy at most ``value`` percentage points (labelled evaluation data only); ``ppl_increase``: the runtime's
    perplexity at most ``value`` percent above the float model's (language models: ``ModelSpec.language_model``)."""

    kind: TargetKind
    value: float
    max_latency_ms: float | None = None  # also: the runtime's median run time here at most this (--max-latency-ms)

    def met(self, trial: "Trial") -> bool:
        if not trial.ok:
            return False
        if self.max_latency_ms is not None and (trial.latency_ms is None or trial.latency_ms > self.max_latency_ms):
            return False
        if self.kind == "sqnr":
            return trial.sqnr_db is not None and trial.sqnr_db >= self.value
        if self.kind == "ppl_increase":
            up = trial.perplexity_increase_pct
            return up is not None and up <= self.value + 1e-9
        drop = trial.accuracy_drop_points
        return drop is not None and drop <= self.value + 1e-9

    def score(self, trial: "Trial") -> float:
        """Higher is closer to the target: the SQNR (dB), or minus the accuracy drop (points) with the SQNR as a
        tie-break; -inf for a failed trial."""
        if not trial.ok:
            return -math.inf
        db = trial.sqnr_db if trial.sqnr_db is not None else -math.inf
        if self.kind == "sqnr":
            return db
        if self.kind == "ppl_increase":
            up = trial.perplexity_increase_pct
            return (-up if up is not None else -math.inf) + 1e-6 * max(min(db, 1e3), -1e3)
        drop = trial.accuracy_drop_points
        return (-drop if drop is not None else -math.inf) + 1e-6 * max(min(db, 1e3), -1e3)

    def describe(self) -> str:
        budget = f" and runtime latency <= {self.max_latency_ms:g} ms" if self.max_latency_ms is not None else ""
        if self.kind == "sqnr":
            return f"float-vs-runtime SQNR >= {self.value:g} dB{budget}"
        if self.kind == "ppl_increase":
            return f"runtime perplexity at most {self.value:g}% above float{budget}"
        return f"accuracy drop (float - runtime) <= {self.value:g} points{budget}"

    def reached(self, trial: "Trial") -> str:
        """What ``trial`` reaches, in the target's terms: "36.2 dB" or "drop 1.3 points (97.4% -> 96.1%)"."""
        if not trial.ok:
            return "failed"
        if self.kind == "sqnr":
            return _db(trial.sqnr_db)
        if self.kind == "ppl_increase":
            if trial.perplexity_increase_pct is None:
                return "no perplexity"
            return (f"ppl +{trial.perplexity_increase_pct:.1f}% ({trial.float_perplexity:.3f} -> "
                    f"{trial.runtime_perplexity:.3f})")
        if trial.accuracy_drop_points is None:
            return "no accuracy"
        return (f"drop {trial.accuracy_drop_points:.2f} points ({trial.float_accuracy:.2%} -> "
                f"{trial.runtime_accuracy:.2%})")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "max_latency_ms": self.max_latency_ms,
                "description": self.describe()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Target":
        """A target back from ``to_dict`` (its description is derived, not read)."""
        return cls(d["kind"], d["value"], d.get("max_latency_ms"))


@dataclass(frozen=True)
class Request:
    """One change set to run: its candidates (in the order the search added them) and why it is run."""

    candidates: tuple[Candidate, ...]
    phase: Phase

    @property
    def key(self) -> str:
        return change_key(c.id for c in self.candidates)


def change_key(ids) -> str:
    """One name for a change set whatever the order: ``change_key(["b", "a"]) -> "a + b"``; "base" for none."""
    ids = sorted(ids)
    return " + ".join(ids) if ids else "base"


@dataclass
class Trial:
    """One change set, run through the whole flow to the runtime and measured on the evaluation data."""

    candidates: tuple[str, ...]  # candidate ids
    phase: Phase
    changes: ConfigChanges = field(default_factory=dict)  # the PipelineConfig change against the base config
    flags: str = ""  # the config as CLI flags (``config_flags``)
    ok: bool = False
    error: str = ""  # the failing stage and its message, or the crash
    crashed: bool = False  # the worker process died running it
    sqnr_db: float | None = None  # float vs runtime on the evaluation data
    float_vs_reference_db: float | None = None
    reference_vs_runtime_db: float | None = None
    float_accuracy: float | None = None
    runtime_accuracy: float | None = None
    float_perplexity: float | None = None  # language models: on the held-out text
    runtime_perplexity: float | None = None
    pte_bytes: int | None = None
    pte_sha256: str = ""
    latency_ms: float | None = None  # the .pte's median run time here (ETDump, quantviz.timing); None: not timed
    latency_spread: str = ""  # "0.084 ms (0.078-0.091), 10 warm runs (2 dropped), 2 threads, <machine>"
    float_layers: int = 0  # layers left float beyond the base config's
    seconds: float = 0.0  # wall time of the evaluation (the stages it ran)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stages this trial ran, and their seconds
    reused: list[str] = field(default_factory=list)  # stages taken from an earlier pipeline (fork)
    saved_seconds: float = 0.0  # what those stages took when they ran
    worker: str = ""  # host:pid
    data: str = ""  # the evaluation data the figures are measured on (``EvaluationData.describe``)
    layer_scores: dict[str, float] = field(default_factory=dict)  # base only: blame score per weighted layer
    notes: list[str] = field(default_factory=list)
    calls: dict[str, list[str]] = field(default_factory=dict)  # each stage's bare calls (reproduce.py)

    @property
    def key(self) -> str:
        return change_key(self.candidates)

    @property
    def accuracy_drop_points(self) -> float | None:
        if self.float_accuracy is None or self.runtime_accuracy is None:
            return None
        return 100.0 * (self.float_accuracy - self.runtime_accuracy)

    @property
    def perplexity_increase_pct(self) -> float | None:
        if self.float_perplexity is None or self.runtime_perplexity is None:
            return None
        return 100.0 * (self.runtime_perplexity / self.float_perplexity - 1)

    def size(self) -> tuple:
        """The order "smallest" means: fewest float layers, then the smallest .pte, then the fewest changes."""
        return (self.float_layers, self.pte_bytes if self.pte_bytes is not None else math.inf, len(self.candidates))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key
        d["changes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.changes.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        known = set(cls.__dataclass_fields__)
        out = cls(**{k: v for k, v in d.items() if k in known})
        out.candidates = tuple(out.candidates)
        out.changes = {k: tuple(v) if isinstance(v, list) else v for k, v in out.changes.items()}  # JSON's lists
        return out


@dataclass
class Engine:
    """Where a recovery's trials ran and what stage reuse saved (recover.json's ``engine``). A fact not known is
    None and left out of ``to_dict``: the in-process evaluator has no Ray facts, a bare search none at all."""

    engine: str | None = None  # "in-process" or "ray"
    ray_version: str | None = None
    address: str | None = None  # the Ray cluster's, or "embedded" (started for this recovery)
    cluster_cpus: int | None = None
    workers: int | None = None
    ray_init_seconds: float | None = None
    warm_seconds: list[float] | None = None  # each worker's warm-up (building the model, tracing the base once)
    warm_trace_seconds: list[float] | None = None  # the trace stage within it: stage work done once per worker
    workers_replaced: int | None = None  # workers that died and were replaced
    workers_started: int | None = None
    # the stage work (``quantviz.recover.runner.reuse_figures``): run, taken from kept pipelines, what it would be
    # without reuse, and the share saved
    stage_seconds_run: float | None = None
    stage_seconds_reused: float | None = None
    stage_seconds_without_reuse: float | None = None
    reuse_share: float | None = None
    wall_seconds: float | None = None  # from the evaluator's start (Ray's start-up and warm-up included)
    trials: int | None = None  # the base run included

    def __bool__(self) -> bool:
        """False when nothing is known (a search not run by ``recover``)."""
        return bool(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Engine":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _db(v: float | None) -> str:
    if v is None:
        return "-"
    return "inf dB" if v == math.inf else f"{v:.2f} dB"


@dataclass
class Probe:
    """What a worker learned of the model when it built it, so the driver needs no torch: its name, the data
    figures are measured on, whether that data has labels, its scope and the candidates its config declares."""

    model: str
    data: str  # EvaluationData.describe()
    labelled: bool
    scope: Scope
    candidates: list[Candidate]
    error: str = ""  # the model could not be built (LoadError, ...): nothing else is set
    language_model: bool = False  # the spec is a language model (perplexity figures): ``--max-ppl-increase``

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, "labelled": self.labelled, "scope": asdict(self.scope),
                "candidates": [c.to_dict() for c in self.candidates], "error": self.error,
                "language_model": self.language_model}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Probe":
        scope = Scope(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.get("scope", {}).items()})
        return cls(d.get("model", ""), d.get("data", ""), bool(d.get("labelled")), scope,
                   [Candidate.from_dict(c) for c in d.get("candidates", [])], d.get("error", ""),
                   bool(d.get("language_model")))
