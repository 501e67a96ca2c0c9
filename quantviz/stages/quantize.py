"""quantize: torchao's ``quantize_`` source transform (the torchao flow).

``quantize_`` swaps the weights of the modules it selects for torchao tensor subclasses holding int data, scales
and zero points; dynamic schemes also quantize each linear's input per token at run time. Nothing is observed, so
the flow has no calibration. The stage's page is a table: which module got which config, each weight's dtype,
block size and scale shape::

    quantized, rows = quantize_model(model, PipelineConfig(flow="torchao", scheme="8da4w", group_size=32))
    rows[0].block_size, rows[0].scale_shape   # (1, 32), (128, 2)
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.trace import check_skip_names

DESCRIPTION = "torchao quantize_: linear weights (and optionally embeddings) become int tensor subclasses"
EXPLANATION = (
    "torchao's quantize_ rewrites the model in place (quantviz works on a copy): each selected module's weight "
    "becomes a tensor subclass with int4 or int8 data, a scale per block and a zero point. Dynamic schemes "
    "(8da4w, 8da8w) also quantize each linear's input to int8 per token while the model runs, so there is nothing "
    "to calibrate. The table lists every quantized weight with its block size and scale shape."
)


@dataclass(frozen=True)
class QuantizedWeight:
    """One module's weight after quantize_."""

    module: str  # e.g. "layers.0.self_attn.q_proj"
    module_type: str  # e.g. "Linear", "Embedding"
    config: str  # the torchao config it got, as a call, e.g. "Int8DynamicActivationIntxWeightConfig(...)"
    weight_type: str  # the tensor subclass, e.g. "IntxUnpackedToInt8Tensor"
    dtype: str  # the int type of the data, e.g. "int4"
    shape: tuple[int, ...]  # the weight's shape
    block_size: tuple[int, ...]  # the elements one scale covers, e.g. (1, 32)
    scale_shape: tuple[int, ...]  # e.g. (128, 2): 128 rows x 2 groups of 32
    zero_point_shape: tuple[int, ...]  # () when there is none
    activation: str  # how the module's input is quantized at run time, e.g. "int8 asymmetric per token"; "" none

    @property
    def granularity(self) -> str:
        """per tensor, per channel or per group N."""
        if self.block_size == self.shape:
            return "per tensor"
        if len(self.block_size) == 2 and self.block_size[0] == 1:
            return "per channel" if self.block_size[1] == self.shape[1] else f"per group {self.block_size[1]}"
        return "block " + "×".join(map(str, self.block_size))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "granularity": self.granularity}


def linear_config(config: PipelineConfig) -> tuple[Any, str]:
    """(torchao config, its source) for the linear layers under ``config.scheme``."""
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig, Int8WeightOnlyConfig

    if config.scheme == "8da4w":
        granularity = PerGroup(config.group_size) if config.group_size else PerAxis(0)
        text = f"PerGroup({config.group_size})" if config.group_size else "PerAxis(0)"
        return (Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=granularity),
                f"Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity={text})")
    if config.scheme == "8da8w":
        return (Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0)),
                "Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))")
    # XNNPACK's weight-only int8 linear: Int8WeightOnlyConfig with its tensor subclass unwrapped before export
    # (without unwrap_tensor_subclass the delegate gets no int8 data and computes garbage, silently)
    return Int8WeightOnlyConfig(), "Int8WeightOnlyConfig()"


def embedding_config(bits: int) -> tuple[Any, str]:
    """(torchao config, its source) for nn.Embedding weights at ``bits`` (4 or 8), per row."""
    from torchao.quantization.granularity import PerAxis
    from torchao.quantization.quant_api import IntxWeightOnlyConfig

    return (IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=PerAxis(0)),
            f"IntxWeightOnlyConfig(weight_dtype=torch.int{bits}, granularity=PerAxis(0))")


def _outside(skip: tuple[str, ...]):
    """A filter_fn part: True for modules not inside one of ``skip``."""
    return lambda fqn: not any(fqn == s or fqn.startswith(s + ".") for s in skip)


def quantize_model(model: nn.Module, config: PipelineConfig) -> tuple[nn.Module, list[QuantizedWeight]]:
    """A quantized copy of ``model`` (``quantize_`` on a deep copy) and its weights' records."""
    from torchao.quantization.quant_api import quantize_

    quantized = copy.deepcopy(model).eval()
    outside = _outside(config.skip_modules)
    given: dict[str, str] = {}
    lin, lin_text = linear_config(config)

    def linear_filter(module: nn.Module, fqn: str) -> bool:
        chosen = isinstance(module, nn.Linear) and outside(fqn) and fqn not in given
        if chosen:
            given[fqn] = lin_text
        return chosen

    if config.int8_modules and config.scheme == "8da4w":
        wide, wide_text = linear_config(config.with_changes(scheme="8da8w"))
        chosen = set(config.int8_modules)

        def wide_filter(module: nn.Module, fqn: str) -> bool:
            hit = isinstance(module, nn.Linear) and fqn in chosen and outside(fqn)
            if hit:
                given[fqn] = wide_text
            return hit

        quantize_(quantized, wide, filter_fn=wide_filter)  # first: their weights are then no longer nn.Linear's
    quantize_(quantized, lin, filter_fn=linear_filter)
    if config.quantize_embeddings:
        emb, emb_text = embedding_config(config.quantize_embeddings)

        def embedding_filter(module: nn.Module, fqn: str) -> bool:
            chosen = isinstance(module, nn.Embedding) and outside(fqn)
            if chosen:
                given[fqn] = emb_text
            return chosen

        quantize_(quantized, emb, filter_fn=embedding_filter)
    rows = describe(quantized, given)
    if needs_unwrap(config):
        from torchao.utils import unwrap_tensor_subclass

        unwrap_tensor_subclass(quantized)
    return quantized, rows


def needs_unwrap(config: PipelineConfig) -> bool:
    """int8 weight-only linears reach XNNPACK right only with their tensor subclass unwrapped (as the export
    recipes' SOURCE_TRANSFORM does); the 8da schemes give the same program either way."""
    return config.scheme == "int8-weight-only"


def describe(model: nn.Module, given: dict[str, str]) -> list[QuantizedWeight]:
    """A record for every module whose weight is a torchao tensor subclass (``given``: module -> config text)."""
    rows = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None or type(weight).__module__.split(".")[0] != "torchao":
            continue
        scale, zero = getattr(weight, "scale", None), getattr(weight, "zero_point", None)
        act = getattr(weight, "activation_quantization", None)
        rows.append(QuantizedWeight(
            module=name, module_type=type(module).__name__, config=given.get(name, "?"),
            weight_type=type(weight).__name__,
            dtype=str(getattr(weight, "target_dtype", None) or getattr(getattr(weight, "qdata", None), "dtype", None)
                      or weight.dtype).replace("torch.", ""),
            shape=tuple(int(d) for d in weight.shape),
            block_size=tuple(int(b) for b in getattr(weight, "block_size", ()) or ()),
            scale_shape=tuple(scale.shape) if isinstance(scale, torch.Tensor) else (),
            zero_point_shape=tuple(zero.shape) if isinstance(zero, torch.Tensor) else (),
            activation=_activation(act)))
    return rows


def _activation(act: Any) -> str:
    """torchao's activation quantization tag in words: ``int8_asym_per_token`` -> "int8 asymmetric per token"."""
    if not act:
        return ""
    return str(getattr(act, "value", act)).replace("_asym_", " asymmetric ").replace("_sym_", " symmetric ") \
        .replace("_", " ")


def calls(config: PipelineConfig) -> list[str]:
    _, lin_text = linear_config(config)
    skip = f" and not any(fqn == s or fqn.startswith(s + '.') for s in {tuple(config.skip_modules)!r})" \
        if config.skip_modules else ""
    lines = ["from torchao.quantization.quant_api import quantize_, Int8DynamicActivationIntxWeightConfig, "
             "IntxWeightOnlyConfig",
             "from torchao.quantization.granularity import PerAxis, PerGroup",
             "quantized = copy.deepcopy(model).eval()  # quantize_ changes the model in place"]
    wide = config.int8_modules if config.scheme == "8da4w" else ()
    if wide:
        _, wide_text = linear_config(config.with_changes(scheme="8da8w"))
        lines += [f"int8_modules = {tuple(wide)!r}  # int8 weights instead of int4",
                  f"quantize_(quantized, {wide_text},",
                  f"          filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear) and fqn in int8_modules{skip})"]
    rest = " and fqn not in int8_modules" if wide else ""
    lines += [f"quantize_(quantized, {lin_text},",
              f"          filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear){rest}{skip})"]
    if config.quantize_embeddings:
        _, emb_text = embedding_config(config.quantize_embeddings)
        lines += [f"quantize_(quantized, {emb_text},",
                  f"          filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding){skip})"]
    if needs_unwrap(config):
        lines += ["from torchao.utils import unwrap_tensor_subclass",
                  "unwrap_tensor_subclass(quantized)  # XNNPACK's weight-only linear needs the plain int8 weights"]
    return lines


def run(ctx: StageContext) -> StageOutput:
    check_skip_names(ctx.spec.model, ctx.config.skip_modules, "quantize")  # trace does not read them here
    quantized, rows = quantize_model(ctx.spec.model, ctx.config)
    by_type: dict[str, int] = {}
    for r in rows:  # e.g. "Linear int4 per group 32 (IntxUnpackedToInt8Tensor)"
        kind = f"{r.module_type} {r.dtype} {r.granularity} ({r.weight_type})"
        by_type[kind] = by_type.get(kind, 0) + 1
    notes = [f"{len(rows)} weight(s) quantized: " + ", ".join(f"{n} {k}" for k, n in by_type.items())]
    linears = sum(isinstance(m, nn.Linear) for m in ctx.spec.model.modules())
    left = linears - sum(r.module_type == "Linear" for r in rows)
    if left:
        notes.append(f"{left} linear layer(s) left float (--skip-module)")
    if ctx.config.scheme != "int8-weight-only":
        notes.append("activations: int8 per token, computed at run time (choose_qparams_affine): no calibration")
    else:
        notes.append("activations stay float (weight-only): no calibration")
    return StageOutput(quantized, graph_source=False, calls=calls(ctx.config), notes=notes,
                       metrics={"quantized_weights": len(rows)}, table=rows)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``quantize_(model, config, filter_fn)`` (on a copy: the user's float model is kept for comparison)."""
    state["reference"] = quantize_model(spec.model, config)[0]


STAGE = Stage(
    "quantize", run, DESCRIPTION, EXPLANATION,
    reads=("scheme", "group_size", "quantize_embeddings", "skip_modules", "int8_modules"),
    remedy=Remedy("try another scheme (--scheme 8da8w), or per-channel weights (--group-size 0)",
                  ({"scheme": "8da8w"}, {"group_size": 0})),
    bare=bare)
