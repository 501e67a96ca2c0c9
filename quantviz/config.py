"""One dataclass holds every choice the flow makes; every field has a CLI flag."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

STAGES: tuple[str, ...] = (
    "trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "fuse", "emit", "run",
)
FLOWS = ("fx", "pt2e")
MODES = ("static", "dynamic")
PARTITIONERS = ("none", "xnnpack", "demo")
FUSIONS = ("none", "executorch", "quantviz", "both")
DUPLICATE_DEQUANT = ("auto", "on", "off")


class ConfigError(ValueError):
    """A configuration value that is not allowed (the CLI turns it into exit code 1)."""


@dataclass(frozen=True)
class PipelineConfig:
    """How to quantize and lower a model.

    Example::

        PipelineConfig(flow="pt2e", partitioner="xnnpack", until="emit")
    """

    flow: str = "fx"                 # "fx": prepare_fx + reference decomposed; "pt2e": prepare_pt2e/convert_pt2e
    mode: str = "static"             # "static" or "dynamic" (choose_qparams on linear activations)
    per_channel: bool = False        # per-channel weight quantization
    partitioner: str = "none"        # "none", "xnnpack", or "demo" (conv->add patterns only)
    fusion: str = "executorch"       # whose fusion patterns: "none", "executorch", "quantviz" (kernels/), "both"
    skip_modules: tuple[str, ...] = ()  # module names left unquantized/untraced
    calibration_batches: int = 8     # at most this many calibration batches
    duplicate_dequant: str = "auto"  # DuplicateDequantNodePass: "auto" (when a dq is shared), "on", "off"
    until: str = "run"               # last stage to run

    def __post_init__(self) -> None:
        checks = {"flow": FLOWS, "mode": MODES, "partitioner": PARTITIONERS, "fusion": FUSIONS,
                  "duplicate_dequant": DUPLICATE_DEQUANT, "until": STAGES}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.calibration_batches < 1:
            raise ConfigError("calibration_batches must be at least 1")
        object.__setattr__(self, "skip_modules", tuple(self.skip_modules))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skip_modules"] = list(self.skip_modules)
        return d

    def with_changes(self, **changes: Any) -> "PipelineConfig":
        return replace(self, **changes)


# Which config fields each stage reads. The pipeline re-runs from the first stage whose fields changed.
STAGE_DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "trace": ("flow", "skip_modules"),
    "prepare": ("mode", "per_channel"),
    "calibrate": ("calibration_batches",),
    "convert": (),
    "capture": (),
    "edge": ("duplicate_dequant",),
    "delegate": ("partitioner",),
    "fuse": ("fusion",),
    "emit": (),
    "run": (),
}
assert set(STAGE_DEPENDS_ON) == set(STAGES)
assert {f.name for f in fields(PipelineConfig)} - {"until"} == {x for v in STAGE_DEPENDS_ON.values() for x in v}
