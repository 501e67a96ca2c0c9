"""A recovery candidate: one structured change of the :class:`~quantviz.config.PipelineConfig`, and how changes
compose.

Which candidates exist is data that flows and backends declare (``Flow.recovery``, ``Backend.recovery``: a
function of the config and the model's :class:`Scope`), written with the constructors below; the search never
names an option. A change to a tuple field (``skip_modules``, ``int8_modules``) appends its names to the
config's; a change to any other field replaces the value, so two candidates setting one scalar field to
different values exclude each other (``conflicts``)::

    a, b = keep_float("conv1"), keep_float("fc")
    compose(PipelineConfig(flow="pt2e"), [a, b]).skip_modules      # ('conv1', 'fc')
    per_channel().conflicts(per_channel())                          # False: the same change
    observer("minmax").conflicts(observer("histogram"))             # True: one observer at a time

A backend with a higher-precision mode declares it in one line, e.g. Arm's int16 activations::

    recovery=lambda config, scope: [int16_activations()] if config.activation_bits == 8 else []
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping

from quantviz.config import OBSERVERS, ConfigChanges, PipelineConfig

CandidateKind = Literal["keep_float", "int8_weights", "per_channel", "observer", "calibration", "group_size",
                        "int16_activations"]
# How a change of one field combines with another change of the same field: tuple fields append, others replace.
Merge = Literal["append", "replace"]
TUPLE_FIELDS: frozenset[str] = frozenset(f.name for f in fields(PipelineConfig) if isinstance(f.default, tuple))


def merge_rule(name: str) -> Merge:
    """``merge_rule("skip_modules") -> "append"``; ``merge_rule("observer") -> "replace"``."""
    return "append" if name in TUPLE_FIELDS else "replace"


@dataclass(frozen=True)
class Scope:
    """What the candidates of a model depend on besides the config: its weighted layers (conv and linear module
    names, model order), which of them are linear and their input widths, and how many calibration batches its
    factory gives::

        Scope(layers=("conv1", "fc"), linears=("fc",), linear_inputs=(64,), calibration_batches=4)
    """

    layers: tuple[str, ...] = ()
    linears: tuple[str, ...] = ()
    linear_inputs: tuple[int, ...] = ()  # in_features of each of ``linears``
    calibration_batches: int = 1


@dataclass(frozen=True)
class Candidate:
    """One change to try: ``changes`` is a PipelineConfig change (``config.with_changes(**changes)`` for one
    candidate; ``compose`` for several); ``layer`` is the layer it is about (None for a global change)."""

    kind: CandidateKind
    layer: str | None
    description: str  # one line, e.g. "keep conv1 float (skipped by the quantizer)"
    changes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A stable name, e.g. "keep_float:conv1", "observer:minmax", "per_channel"."""
        if self.layer is not None:
            return f"{self.kind}:{self.layer}"
        scalars = [str(v) for k, v in sorted(self.changes.items()) if merge_rule(k) == "replace"
                   and not isinstance(v, bool)]
        return ":".join([self.kind, *scalars])

    @property
    def float_layers(self) -> int:
        """How many layers this change leaves float."""
        return len(tuple(self.changes.get("skip_modules", ())))

    def conflicts(self, other: "Candidate") -> bool:
        """True when the two cannot be applied together: they set one scalar field to different values, or they
        are different changes of the same layer (an int8 layer kept float means nothing)."""
        if self.id == other.id:
            return False
        if self.layer is not None and self.layer == other.layer:
            return True
        return any(merge_rule(k) == "replace" and k in other.changes and other.changes[k] != v
                   for k, v in self.changes.items())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "layer": self.layer, "description": self.description,
                "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in self.changes.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Candidate":
        changes = {k: tuple(v) if merge_rule(k) == "append" else v for k, v in d["changes"].items()}
        return cls(d["kind"], d.get("layer"), d.get("description", ""), changes)


class ConflictError(ValueError):
    """Two candidates of one change set set the same scalar field to different values."""


def combined_changes(base: PipelineConfig, candidates: list[Candidate]) -> ConfigChanges:
    """The PipelineConfig change of several candidates together, against ``base``: tuple fields get every
    candidate's names appended to ``base``'s (each once, in order), other fields the one value they agree on::

        combined_changes(PipelineConfig(skip_modules=("pad",)), [keep_float("conv1")])
        # {'skip_modules': ('pad', 'conv1')}
    """
    out: ConfigChanges = {}
    for c in candidates:
        for name, value in c.changes.items():
            if merge_rule(name) == "append":
                have = out.get(name, tuple(getattr(base, name)))
                out[name] = tuple(dict.fromkeys((*have, *tuple(value))))
            elif name in out and out[name] != value:
                raise ConflictError(f"{name}: {out[name]!r} and {value!r} (candidates exclude each other)")
            else:
                out[name] = value
    return out


def compose(base: PipelineConfig, candidates: list[Candidate]) -> PipelineConfig:
    """``base`` with every candidate's change applied (``combined_changes``); a ConfigError (ValueError) when the
    result is not a valid config."""
    return base.with_changes(**combined_changes(base, candidates))


# -- the constructors flows and backends declare their candidates with ------------------------------------------
def keep_float(layer: str) -> Candidate:
    """Leave ``layer`` float: the quantizer skips it (``skip_modules``)."""
    return Candidate("keep_float", layer, f"keep {layer} float (skipped by the quantizer)",
                     {"skip_modules": (layer,)})


def int8_weights(layer: str) -> Candidate:
    """torchao 8da4w: ``layer`` gets int8 weights (8da8w) instead of int4 (``int8_modules``)."""
    return Candidate("int8_weights", layer, f"{layer}: int8 weights instead of int4", {"int8_modules": (layer,)})


def per_channel() -> Candidate:
    """Per-channel weight scales instead of one per tensor (``per_channel``)."""
    return Candidate("per_channel", None, "per-channel weight quantization", {"per_channel": True})


def observer(name: str) -> Candidate:
    """Observe static activations with ``name`` (minmax, moving_average, histogram) instead of the default."""
    return Candidate("observer", None, f"{name} activation observer", {"observer": name})


def calibration(batches: int) -> Candidate:
    """Calibrate on ``batches`` batches (``calibration_batches``)."""
    return Candidate("calibration", None, f"calibrate on {batches} batches", {"calibration_batches": batches})


def int8_everywhere() -> Candidate:
    """torchao: int8 weights for every linear (scheme 8da8w) instead of int4."""
    return Candidate("int8_weights", None, "int8 weights for every linear (8da8w)", {"scheme": "8da8w"})


def group_size(size: int) -> Candidate:
    """torchao 8da4w: int4 weights in groups of ``size`` input channels (0: one scale per output channel)."""
    what = "per output channel" if size == 0 else f"groups of {size}"
    return Candidate("group_size", None, f"int4 weight scales in {what}", {"group_size": size})


def int16_activations() -> Candidate:
    """int16 activations with int8 weights (a16w8, ``activation_bits=16``), where the backend has them."""
    return Candidate("int16_activations", None, "int16 activations (a16w8)", {"activation_bits": 16})


# -- shared pieces of the declarations ---------------------------------------------------------------------------
def other_observers(config: PipelineConfig, default: str) -> list[Candidate]:
    """Every named observer but the one ``config`` uses, ``default`` being what the quantizer's own default is
    (static activations only: dynamic ones have none)::

        [c.id for c in other_observers(PipelineConfig(), "histogram")]
        # ['observer:minmax', 'observer:moving_average']
    """
    if config.mode != "static":
        return []
    used = default if config.observer == "default" else config.observer
    return [observer(name) for name in OBSERVERS if name not in ("default", used)]


def more_calibration(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """Every batch the factory gives, when the config calibrates on fewer."""
    return [calibration(scope.calibration_batches)] if scope.calibration_batches > config.calibration_batches \
        else []


Recovery = Callable[[PipelineConfig, Scope], list[Candidate]]  # the type of Flow.recovery and Backend.recovery
