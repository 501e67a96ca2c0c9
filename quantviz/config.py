"""One dataclass holds every choice the flow makes. Each field's metadata (help text, choices, flag) is the
one place an option is described: the CLI's flags and the app's sidebar widgets are generated from it.

Which stage reads which field is declared by each stage (``Stage.reads`` in ``quantviz/stages/<name>.py``);
which stages a flow has, by the flow (``quantviz/flows/<name>.py``); a backend's quantizer and partitioner, by
the backend (``quantviz/backends/<name>.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

# a flow is a file of quantviz/flows/ (its registry there checks the name: ``quantviz.flows.flow_of``)
FlowName = str
Mode = Literal["static", "dynamic"]
# "auto", or a backend: a file of quantviz/backends/ (its registry there checks the name: ``backend_of``)
BackendName = str
# "auto", "none", "demo", or a backend's own choice (``Backend.partitioner_choice``: "xnnpack"); the backends' registry
# lists them (``quantviz.backends.partitioner_choices``) and checks the value (``quantviz.backends.check``)
PartitionerChoice = str
Lowering = Literal["transform_and_lower", "to_backend"]
Granularity = Literal["graph", "op"]
Fusion = Literal["none", "executorch", "quantviz", "both"]
DuplicateDequant = Literal["auto", "on", "off"]
Scheme = Literal["8da4w", "8da8w", "int8-weight-only"]
Observer = Literal["default", "minmax", "moving_average", "histogram"]

MODES: tuple[str, ...] = get_args(Mode)
LOWERINGS: tuple[str, ...] = get_args(Lowering)
DELEGATE_GRANULARITIES: tuple[str, ...] = get_args(Granularity)
FUSIONS: tuple[str, ...] = get_args(Fusion)
DUPLICATE_DEQUANT: tuple[str, ...] = get_args(DuplicateDequant)
SCHEMES: tuple[str, ...] = get_args(Scheme)
OBSERVERS: tuple[str, ...] = get_args(Observer)
ACTIVATION_BITS = (8, 16)
EMBEDDING_BITS = (0, 4, 8)


# a config field's value, and a change of some fields (a remedy's fix, a backend's defaults, a recovery candidate)
ConfigValue = bool | int | float | str | tuple[str, ...]
ConfigChanges = dict[str, ConfigValue]


class ConfigError(ValueError):
    """A configuration value that is not allowed (the CLI turns it into exit code 1)."""


def option(default: Any, help: str, choices: tuple[Any, ...] | None = None, **extra: Any) -> Any:
    """A config field described for the CLI and the app: ``help`` is their help text, ``choices`` the allowed
    values (checked in ``__post_init__``). ``extra`` may set ``flag`` (the CLI flag, default ``--field-name``),
    ``metavar`` and ``label`` (the app's widget label), and ``selects_flow`` with ``needed`` for a flow's own
    option that, set, is that flow (``--recipe NAME`` is ``--flow recipe``; ``needed`` words it in "flow='recipe'
    needs ..."). Which flows an option applies to is not declared here: it is what their stages read
    (``quantviz.flows.applies_to``)."""
    return field(default=default, metadata={"help": help, "choices": choices, **extra})


@dataclass(frozen=True)
class PipelineConfig:
    """How to quantize and lower a model.

    Example::

        PipelineConfig(flow="pt2e", backend="xnnpack", until="emit")
        PipelineConfig(flow="torchao", scheme="8da4w", group_size=32)
        PipelineConfig(recipe="xnnpack_torchao_int8da_int4w_per_channel")   # flow becomes "recipe"
    """

    flow: FlowName = option(
        "fx", "fx: prepare_fx + ExecuTorch BackendConfig (uint8 activations); pt2e: prepare_pt2e + the backend's "
              "quantizer (int8); torchao: torchao's quantize_ source transform (--scheme), then torch.export; "
              "recipe: executorch.export.export with an ExportRecipe (--recipe)")
    mode: Mode = option("static", "static, or dynamic (choose_qparams on linear activations)", MODES)
    per_channel: bool = option(False, "per-channel weight quantization", label="Per-channel weights")
    backend: BackendName = option(
        "auto", "the target: its quantizer (pt2e), partitioner and how numbers are obtained. auto: xnnpack for "
                "--flow torchao, the recipe's own for --flow recipe, else portable (ExecuTorch's portable and "
                "quantized kernels, XNNPACKQuantizer's int8 scheme, no delegate unless --partitioner says)")
    partitioner: PartitionerChoice = option(
        "auto", "auto: the backend's own partitioner (none for portable); none: nothing delegated; xnnpack: "
                "XnnpackPartitioner (the same as --backend xnnpack); demo: quantviz's conv -> add partitioner")
    lowering: Lowering = option(
        "transform_and_lower", "how a partitioner is applied: transform_and_lower (to_edge_transform_and_lower, "
                               "what backend users call: the backend's ops are kept whole and its transform passes "
                               "run first) or to_backend (to_edge, then to_backend: the seed's path)", LOWERINGS)
    delegate_granularity: Granularity = option(
        "graph", "graph: the partitioner merges what it takes into as few delegates as it can; op: every op it "
                 "takes (a quantized pattern with its q/dq) becomes its own delegate, so the runtime's debug buffer "
                 "holds each delegated op's output (quantviz compare's blame table reads it); XNNPACK's "
                 "per_op_mode, the demo partitioner keeps its conv -> add groups",
        DELEGATE_GRANULARITIES, label="Delegate granularity")
    fusion: Fusion = option("executorch", "whose fusion patterns: none; executorch (QuantFusionPass: uint8 add, "
                                          "reshapes); quantviz (the project's C++ kernels); both (quantviz's first)",
                            FUSIONS)
    skip_modules: tuple[str, ...] = option((), "submodule names left untraced and unquantized (they stay float)",
                                           flag="--skip-module", metavar="NAME")
    skip_untraceable: bool = option(False, "fx: find every submodule and helper function symbolic tracing cannot "
                                           "follow, keep helpers as leaf calls and skip the modules, in one run")
    calibration_batches: int = option(8, "at most this many calibration batches", metavar="N", min=1)
    observer: Observer = option("default", "static activations' observer: default (the quantizer's own: "
                                           "histogram for XNNPACKQuantizer and the fx flow), minmax, "
                                           "moving_average or histogram", OBSERVERS)
    check_guards: bool = option(True, "pt2e: ExportedProgram.module(check_guards=...); off drops the _guards_fn "
                                      "call_module torch 2.13 adds, which Arm's quantizer passes cannot run",
                                label="Keep export guards", flag="--no-check-guards")
    keep_integer_scalars: bool = option(
        False, "pt2e, qat_pt2e: before prepare_pt2e (prepare_qat_pt2e), give integer add/mul their Python-int "
               "operands as integer constants (quantviz.passes.keep_integer_scalars); XNNPACKQuantizer's _convert_scalars_to_attrs makes them "
               "float32 tensors, so index arithmetic such as arange(n) + past_seen_tokens turns float")
    activation_bits: int = option(8, "activation bits: 16 quantizes activations to int16 with int8 weights "
                                     "(a16w8), where the backend has it (arm-tosa, ethos-u)", ACTIVATION_BITS,
                                  metavar="BITS")
    duplicate_dequant: DuplicateDequant = option(
        "auto", "DuplicateDequantNodePass: auto (when a dequantize is shared), on, off", DUPLICATE_DEQUANT)
    scheme: Scheme = option("8da4w", "torchao: 8da4w (int8 dynamic activations, int4 weights), 8da8w (int8 "
                                     "weights), int8-weight-only (activations stay float)", SCHEMES)
    group_size: int = option(32, "torchao 8da4w: weights quantized in groups of this many input channels; 0: "
                                 "per output channel", metavar="N")
    int8_modules: tuple[str, ...] = option((), "torchao 8da4w: these linear modules get int8 weights (8da8w) "
                                               "instead of int4", flag="--int8-module", metavar="NAME")
    quantize_embeddings: int = option(0, "torchao: also quantize nn.Embedding weights to 4 or 8 bits "
                                         "(IntxWeightOnlyConfig); 0: leave them float", EMBEDDING_BITS,
                                      metavar="BITS")
    recipe: str = option("", "an ExecuTorch export recipe (e.g. xnnpack_torchao_int8da_int4w_per_channel): "
                             "quantviz calls executorch.export.export with it and shows every stage of the session; "
                             "sets --flow recipe (`quantviz recipes` lists them)", metavar="NAME",
                        selects_flow="recipe", needed="a recipe (--recipe NAME; `quantviz recipes` lists them)")
    llm_config: str = option("", "an export_llm LlmConfig YAML file (e.g. executorch/examples/models/llama/config/"
                                 "llama_xnnpack.yaml): quantviz runs export_llm's own steps and shows each; sets "
                                 "--flow export_llm (the model is the one the file names)", metavar="FILE.yaml",
                            selects_flow="export_llm", needed="an LLM config (--llm-config FILE.yaml)")
    llm_overrides: tuple[str, ...] = option((), "export_llm: a key=value override of the LLM config, as export_llm "
                                                "takes them (e.g. +base.params=params.json quantization.group_size=32)",
                                            flag="--llm-set", metavar="KEY=VALUE")
    qat_steps: int = option(40, "qat: fine-tuning steps with fake quantization (Adam, each step one calibration "
                                "batch, the float model's outputs as the target)", metavar="N")
    qat_lr: float = option(1e-4, "qat: the fine-tuning learning rate", metavar="LR")
    qat_training_qparams: bool = option(
        False, "qat_pt2e: convert_pt2e with the scale and zero point each fake quantizer trained with (its fused "
               "kernel's), not its observer's calculate_qparams, which computes symmetric weight scales another way "
               "(up to 0.39 percent apart, pytorch/ao#4824): the converted model is then the trained one",
        label="Convert with training's qparams")
    held_out: int = option(0, "measure numerics on N synthetic held-out batches drawn like the example inputs "
                              "(token ids over the embedding's vocabulary, floats with the example's mean and "
                              "spread) instead of the factory's evaluation data; 0: the factory's data",
                           metavar="N", label="Synthetic held-out batches")
    until: str = option("run", "last stage to run (one of the flow's stages, see `quantviz stages`)",
                        metavar="STAGE")

    def __post_init__(self) -> None:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise ConfigError(f"{f.name}={getattr(self, f.name)!r} is not one of "
                                  f"{', '.join(str(a) for a in allowed)}")
        for name in ("calibration_batches",):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("group_size", "held_out", "qat_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more")
        object.__setattr__(self, "skip_modules", tuple(self.skip_modules))
        object.__setattr__(self, "llm_overrides", tuple(self.llm_overrides))
        selecting = [f for f in fields(self) if f.metadata.get("selects_flow")]
        for f in selecting:  # --recipe NAME is the recipe flow, --llm-config FILE the export_llm flow
            if getattr(self, f.name):
                object.__setattr__(self, "flow", f.metadata["selects_flow"])
        for f in selecting:  # and that flow needs its option
            if self.flow == f.metadata["selects_flow"] and not getattr(self, f.name):
                raise ConfigError(f"flow={self.flow!r} needs {f.metadata['needed']}")
        object.__setattr__(self, "int8_modules", tuple(self.int8_modules))
        # what a backend can take (int16 activations, the demo partitioner, the torchao flow) and the partitioner
        # choices (--partitioner xnnpack is --backend xnnpack: quantviz.backends.normalize) are its record's to say:
        # quantviz.flows.check, which flow_of runs

    # -- what the choices resolve to ----------------------------------------------------------------------------
    # (the backend "auto" stands for is its flow's ``default_backend``: quantviz.backends.backend_name)
    @property
    def uses_quantviz_kernels(self) -> bool:
        """True when the config asks for quantviz's patterns (a flow whose fuse stage reads ``fusion`` applies them:
        ``Flow.uses_quantviz_kernels``)."""
        return self.fusion in ("quantviz", "both")

    @property
    def uses_executorch_fusion(self) -> bool:
        """True when the config asks for ExecuTorch's QuantFusionPass (the fuse stage that reads ``fusion``)."""
        return self.fusion in ("executorch", "both")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skip_modules"] = list(self.skip_modules)
        d["llm_overrides"] = list(self.llm_overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PipelineConfig":
        """A config back from ``to_dict`` (JSON lists become the tuple fields' tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def with_changes(self, **changes: Any) -> "PipelineConfig":
        return replace(self, **changes)


def config_flags(config: PipelineConfig, base: PipelineConfig | None = None) -> str:
    """``config`` as the CLI flags that differ from ``base`` (default: the defaults), e.g.
    ``--flow pt2e --skip-module pad``; for a tuple field, the values ``base`` does not have. Without ``base``, a
    config naming a backend spells its flow, the default too (``--flow fx --backend xnnpack``): given alone, the
    backend's declared default flow would run instead (``quantviz.flows.with_backend_defaults``)."""
    out: list[str] = []
    selected = {f.metadata["selects_flow"] for f in fields(PipelineConfig)
                if f.metadata.get("selects_flow") and getattr(config, f.name)}  # the flows an option set
    for f in fields(PipelineConfig):
        value, flag = getattr(config, f.name), f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        was = f.default if base is None else getattr(base, f.name)
        spelled = f.name == "flow" and base is None and config.backend != "auto"
        if (value == was and not spelled) or (f.name == "flow" and value in selected):
            continue  # --recipe NAME says --flow recipe, --llm-config FILE --flow export_llm
        if isinstance(value, bool):  # the flag turns the default off: --skip-untraceable, --no-check-guards
            out.append(flag if value != f.default else f"(without {flag})")
        elif isinstance(value, tuple):
            out += [f"{flag} {v}" for v in value if v not in was]
        else:
            out.append(f"{flag} {value}")
    return " ".join(out)
