"""One dataclass holds every choice the flow makes. Each field's metadata (help text, choices, flag) is the
one place an option is described: the CLI's flags and the app's sidebar widgets are generated from it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

STAGES: tuple[str, ...] = (
    "trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "fuse", "emit", "run",
)
FLOWS = ("fx", "pt2e")
MODES = ("static", "dynamic")
PARTITIONERS = ("none", "xnnpack", "demo")
LOWERINGS = ("transform_and_lower", "to_backend")
DELEGATE_GRANULARITIES = ("graph", "op")
FUSIONS = ("none", "executorch", "quantviz", "both")
DUPLICATE_DEQUANT = ("auto", "on", "off")


class ConfigError(ValueError):
    """A configuration value that is not allowed (the CLI turns it into exit code 1)."""


def option(default: Any, help: str, choices: tuple[str, ...] | None = None, **extra: Any) -> Any:
    """A config field described for the CLI and the app: ``help`` is their help text, ``choices`` the allowed
    values (checked in ``__post_init__``). ``extra`` may set ``flag`` (the CLI flag, default ``--field-name``),
    ``metavar`` and ``label`` (the app's widget label)."""
    return field(default=default, metadata={"help": help, "choices": choices, **extra})


@dataclass(frozen=True)
class PipelineConfig:
    """How to quantize and lower a model.

    Example::

        PipelineConfig(flow="pt2e", partitioner="xnnpack", until="emit")
    """

    flow: str = option("fx", "fx: prepare_fx + ExecuTorch BackendConfig (uint8 activations); pt2e: prepare_pt2e "
                             "+ XNNPACKQuantizer (int8)", FLOWS)
    mode: str = option("static", "static, or dynamic (choose_qparams on linear activations)", MODES)
    per_channel: bool = option(False, "per-channel weight quantization", label="Per-channel weights")
    partitioner: str = option("none", "none; xnnpack (XnnpackPartitioner); demo (quantviz's conv -> add "
                                      "partitioner)", PARTITIONERS)
    lowering: str = option("transform_and_lower", "how a partitioner is applied: transform_and_lower "
                           "(to_edge_transform_and_lower, what XNNPACK users call: the backend's ops are kept "
                           "whole and its transform passes run first) or to_backend (to_edge, then to_backend: "
                           "the seed's path)", LOWERINGS)
    delegate_granularity: str = option(
        "graph", "graph: the partitioner merges what it takes into as few delegates as it can; op: every op it "
                 "takes (a quantized pattern with its q/dq) becomes its own delegate, so the runtime's debug buffer "
                 "holds each delegated op's output (quantviz compare's blame table reads it); XNNPACK's "
                 "per_op_mode, the demo partitioner keeps its conv -> add groups",
        DELEGATE_GRANULARITIES, label="Delegate granularity")
    fusion: str = option("executorch", "whose fusion patterns: none; executorch (QuantFusionPass: uint8 add, "
                                       "reshapes); quantviz (the project's C++ kernels); both (quantviz's first)",
                         FUSIONS)
    skip_modules: tuple[str, ...] = option((), "submodule names left untraced and unquantized (they stay float)",
                                           flag="--skip-module", metavar="NAME")
    skip_untraceable: bool = option(False, "fx: find every submodule and helper function symbolic tracing cannot "
                                           "follow, keep helpers as leaf calls and skip the modules, in one run")
    calibration_batches: int = option(8, "at most this many calibration batches", metavar="N")
    duplicate_dequant: str = option("auto", "DuplicateDequantNodePass: auto (when a dequantize is shared), on, "
                                            "off", DUPLICATE_DEQUANT)
    until: str = option("run", "last stage to run", STAGES, metavar="STAGE")

    def __post_init__(self) -> None:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise ConfigError(f"{f.name}={getattr(self, f.name)!r} is not one of {', '.join(allowed)}")
        if self.calibration_batches < 1:
            raise ConfigError("calibration_batches must be at least 1")
        object.__setattr__(self, "skip_modules", tuple(self.skip_modules))

    @property
    def uses_quantviz_kernels(self) -> bool:
        """True when the fuse stage applies quantviz's patterns (its kernels must be loaded to run the program)."""
        return self.fusion in ("quantviz", "both")

    @property
    def uses_executorch_fusion(self) -> bool:
        """True when the fuse stage runs ExecuTorch's QuantFusionPass."""
        return self.fusion in ("executorch", "both")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skip_modules"] = list(self.skip_modules)
        return d

    def with_changes(self, **changes: Any) -> "PipelineConfig":
        return replace(self, **changes)


def config_flags(config: PipelineConfig, base: PipelineConfig | None = None) -> str:
    """``config`` as the CLI flags that differ from ``base`` (default: the defaults), e.g.
    ``--flow pt2e --skip-module pad``; for a tuple field, the values ``base`` does not have."""
    out: list[str] = []
    for f in fields(PipelineConfig):
        value, flag = getattr(config, f.name), f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        was = f.default if base is None else getattr(base, f.name)
        if value == was:
            continue
        if isinstance(value, bool):
            out.append(flag if value else f"(without {flag})")
        elif isinstance(value, tuple):
            out += [f"{flag} {v}" for v in value if v not in was]
        else:
            out.append(f"{flag} {value}")
    return " ".join(out)


# Which config fields each stage reads. The pipeline re-runs from the first stage whose fields changed.
STAGE_DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "trace": ("flow", "skip_modules", "skip_untraceable"),
    "prepare": ("mode", "per_channel"),
    "calibrate": ("calibration_batches",),
    "convert": (),
    "capture": (),
    "edge": ("duplicate_dequant", "lowering"),  # and the partitioner (and its granularity) under transform_and_lower
    "delegate": ("partitioner", "delegate_granularity"),
    "fuse": ("fusion",),
    "emit": (),
    "run": (),
}


def stage_reads(stage: str, config: PipelineConfig) -> tuple[str, ...]:
    """The config fields ``stage`` reads under ``config``: ``STAGE_DEPENDS_ON``, plus the partitioner and its
    granularity at edge when lowering is transform_and_lower (the partitioner then decides which ops the edge
    program keeps whole)."""
    if stage == "edge" and config.lowering == "transform_and_lower":
        return STAGE_DEPENDS_ON[stage] + ("partitioner", "delegate_granularity")
    return STAGE_DEPENDS_ON[stage]


assert set(STAGE_DEPENDS_ON) == set(STAGES)
assert {f.name for f in fields(PipelineConfig)} - {"until"} == {x for v in STAGE_DEPENDS_ON.values() for x in v}
