"""QAT's qparams at export against those in training: for every fake quantizer, the scale and zero point training
used at its end beside the ones the converted program stores for the same weight or activation, per node.

The mismatch users meet after export (optimum-executorch #226: qparams computed differently at export than in
training) is a difference here. Both QAT flows' convert stages compare and say so on their page, name the nodes
that differ, and keep the comparison (``Diagnostics.qat_qparams``, summary.json's ``qat_qparams``)::

    comparison = compare_torchao(trained, converted)     # --flow qat: FakeQuantizedLinear -> quantized linear
    comparison = compare_pt2e(prepared, converted)       # --flow qat_pt2e: fake-quantize modules -> q/dq args
    comparison.mismatched()[0].node, comparison.max_scale_rel_diff
    comparison.notes()                                   # the convert page's lines
    comparison.node_notes()                              # node -> note: the convert graph shows them (stage_view)
    comparison.to_dict(), comparison.to_dataframe()      # summary.json's qat_qparams; pandas at the edge

What "training's qparams" are, per kind of fake quantizer:

- torchao's ``IntxFakeQuantizer`` on a weight, dynamic (the default): recomputed from the weight at every forward,
  so training's are the quantizer applied to the final weights (what its next forward computes; the ones it stored
  were computed before the last optimizer step). With range learning (``is_dynamic=False, range_learning=True``):
  the learned ``scale`` and ``zero_point`` parameters, which ``QATConfig(base_config, step="convert")`` passes to
  the quantized tensor and the two-step form ``QATConfig(step="convert")`` then ``quantize_(model, base_config)``
  drops (it recomputes them from the weights' min/max).
- torchao's per-token activation fake quantizer: computed at run time from each input, in training and in the
  exported program alike: nothing stored to compare; the row says whether export quantizes the activation the same
  way (int8 asymmetric per token) at all.
- PT2E's fake-quantize modules (``FusedMovingAvgObsFakeQuantize``): their ``scale`` and ``zero_point`` buffers
  (from the moving-average observer's range at the last training step); ``convert_pt2e`` writes the observer's
  ``calculate_qparams()`` into the quantize/dequantize nodes' arguments. For XNNPACKQuantizer's symmetric int8
  weights in [-127, 127] the two differ by up to 0.39 % (``fused_kernel_cause`` names it; ``--qat-training-qparams``,
  ``stages/qat_pt2e.use_training_qparams``, converts with the kernel's).

Weights are also compared as integers: the weight quantized with training's qparams (the fake quantizer's own
rounding) against the integer data the converted program stores.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

if TYPE_CHECKING:
    import pandas as pd

# a relative scale difference above this is a mismatch (float32 has about 6e-8; the same computation gives 0)
SCALE_TOLERANCE = 1e-5
TensorKind = Literal["weight", "activation"]


@dataclass(frozen=True)
class QParamsCheck:
    """One fake quantizer's qparams in training against export's for the same tensor."""

    node: str  # where export's are: the module (torchao) or the quantize/dequantize node (pt2e) of the converted model
    tensor: TensorKind
    quantizes: str  # what it quantizes, e.g. "blocks.0.qkv.weight", "x -> conv2d"
    fake_quantizer: str  # training's quantizer, e.g. "IntxFakeQuantizer", "activation_post_process_0"
    training: str  # how training had them, e.g. "int4 symmetric per group 32, from the weight (dynamic)"
    export: str  # how export has them, e.g. "IntxUnpackedToInt8Tensor int8 per group 32"
    scales: int = 0  # scales compared (0: nothing stored to compare)
    max_scale_rel_diff: float | None = None  # max |training - export| / |export| over the scales; None: not compared
    max_zero_point_diff: int | None = None  # max |training - export| over the zero points
    values: int = 0  # weight elements compared as integers (0: an activation)
    values_differ: int = 0  # of them, how many differ between training's qparams and export's stored integers
    problem: str = ""  # a difference that is not a number: granularity, dtype, quantized in one and not the other
    note: str = ""  # e.g. "computed at run time from each input (per token): nothing stored to compare"

    @property
    def compared(self) -> bool:
        return self.max_scale_rel_diff is not None

    @property
    def mismatch(self) -> bool:
        return bool(self.problem) or (self.compared and (
            not self.max_scale_rel_diff <= SCALE_TOLERANCE or bool(self.max_zero_point_diff)
            or self.values_differ > 0))

    def describe(self) -> str:
        """One line: the node and its differences, e.g. "blocks.0.qkv (weight): scale differs by up to 24.1 %,
        1,023 of 12,288 integer values differ"."""
        return f"{self.node} ({self.tensor}, {self.quantizes}): " + ", ".join(self.differences())

    def differences(self, short: bool = False) -> list[str]:
        """The problem, the scale and zero-point differences and the integers that differ, each a phrase; ``short``
        for a graph node's note ("scale 0.391 %", "20 of 72 integers")."""
        parts = [self.problem] if self.problem else []
        if self.compared:
            scale = _percent(self.max_scale_rel_diff)
            parts.append(f"scale {scale}" if short else f"scale differs by up to {scale} over {self.scales} scale(s)")
            if self.max_zero_point_diff:
                parts.append(f"zero point {'' if short else 'by up to '}{self.max_zero_point_diff}")
        if self.values:
            parts.append(f"{self.values_differ:,} of {self.values:,} integer{'s' if short else ' values differ'}")
        return parts

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mismatch": self.mismatch}


@dataclass(frozen=True)
class QParamsComparison:
    """Every fake quantizer of a QAT model against the converted model (``compare_torchao``, ``compare_pt2e``)."""

    checks: tuple[QParamsCheck, ...]
    convert: str = ""  # how the model was converted, e.g. "QATConfig(base_config, step='convert')"

    def mismatched(self) -> list[QParamsCheck]:
        """The checks that differ, largest scale difference first."""
        return sorted((c for c in self.checks if c.mismatch),
                      key=lambda c: -(c.max_scale_rel_diff or 0.0) - (1.0 if c.problem else 0.0))

    @property
    def compared(self) -> list[QParamsCheck]:
        return [c for c in self.checks if c.compared]

    @property
    def max_scale_rel_diff(self) -> float | None:
        """The largest relative scale difference over every compared tensor (None: nothing compared)."""
        values = [c.max_scale_rel_diff for c in self.compared]
        return max(values) if values else None

    @property
    def max_zero_point_diff(self) -> int | None:
        values = [c.max_zero_point_diff or 0 for c in self.compared]
        return max(values) if values else None

    @property
    def values_differ(self) -> int:
        return sum(c.values_differ for c in self.checks)

    def notes(self, limit: int = 5) -> list[str]:
        """The convert page's lines: that training's and export's qparams agree (with the largest difference), or
        the nodes where they do not, worst first."""
        run_time = [c for c in self.checks if not c.compared and not c.problem]
        tail = (f"; {len(run_time)} activation(s) quantized at run time from each input in training and export "
                "alike (nothing stored to compare)") if run_time else ""
        if not self.checks:
            return ["no fake quantizer found: nothing to compare between training and export"]
        bad = self.mismatched()
        if not bad:
            weights = sum(c.values for c in self.checks)
            return [f"qparams at export agree with training's: {len(self.compared)} fake quantizer(s) compared, "
                    f"scales differ by at most {_percent(self.max_scale_rel_diff or 0.0)}, zero points by at most "
                    f"{self.max_zero_point_diff or 0}, {weights:,} weight values quantize to the same integers"
                    + tail]
        largest = f"largest scale difference {_percent(self.max_scale_rel_diff)}, " \
            if self.max_scale_rel_diff is not None else ""
        lines = [f"qparams at export differ from training's at {len(bad)} of {len(self.checks)} fake quantizer(s) "
                 f"({largest}{self.values_differ:,} weight values quantize to other integers)" + tail]
        lines += ["  " + c.describe() for c in bad[:limit]]
        lines += [f"  {cause}" for cause in dict.fromkeys(c.note for c in bad if c.note.startswith("known cause"))]
        if len(bad) > limit:
            lines.append(f"  ... and {len(bad) - limit} more (summary.json's qat_qparams lists every one)")
        return lines

    def node_notes(self) -> dict[str, str]:
        """Node -> a short note for each mismatch, which the convert stage's graph shows on that node
        (``quantviz.stage_views.stage_view``), e.g. "qparams ≠ training's: scale 0.391 %, 20 of 72 integers"."""
        return {c.node: "qparams ≠ training's: " + ", ".join(c.differences(short=True)) for c in self.mismatched()}

    def metrics(self) -> dict[str, Any]:
        """The convert stage's metrics."""
        return {"qat_qparams_compared": len(self.compared), "qat_qparams_mismatched": len(self.mismatched()),
                "qat_qparams_max_scale_rel_diff": self.max_scale_rel_diff,
                "qat_qparams_values_differ": self.values_differ}

    def to_dict(self) -> dict[str, Any]:
        """summary.json's ``qat_qparams``."""
        return {"convert": self.convert, "agree": not self.mismatched(),
                "max_scale_rel_diff": self.max_scale_rel_diff, "max_zero_point_diff": self.max_zero_point_diff,
                "values_differ": self.values_differ, "mismatched": [c.node for c in self.mismatched()],
                "checks": [c.to_dict() for c in self.checks]}

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([c.to_dict() for c in self.checks])


def _percent(x: float) -> str:
    if x == 0:
        return "0"
    if x >= 1e-3:
        return f"{100 * x:.3g} %"
    return f"{x:.2g} (relative)"


def _rel_diff(training: torch.Tensor, export: torch.Tensor) -> float:
    t, e = training.detach().double().flatten(), export.detach().double().flatten()
    return float(((t - e).abs() / e.abs().clamp_min(torch.finfo(torch.float64).tiny)).max()) if e.numel() else 0.0


def _zp_diff(training: torch.Tensor | None, export: torch.Tensor | None, like: torch.Tensor) -> int:
    t = training.detach().double().flatten() if training is not None else torch.zeros(like.numel(), dtype=torch.double)
    e = export.detach().double().flatten() if export is not None else torch.zeros(like.numel(), dtype=torch.double)
    if t.numel() != e.numel():
        return 0
    return int((t - e).abs().max().round()) if t.numel() else 0


# -- torchao QAT (--flow qat) -------------------------------------------------------------------------------------
def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _granularity(config: Any) -> tuple[str, int | None]:
    """("per group 32" | "per channel" | "per token", group size or None) of an IntxFakeQuantizeConfig."""
    from torchao.quantization.granularity import PerAxis, PerGroup, PerToken

    g = config.granularity
    if isinstance(g, PerGroup):
        return f"per group {g.group_size}", g.group_size
    if isinstance(g, PerAxis):
        return "per channel", None
    if isinstance(g, PerToken):
        return "per token", None
    return str(g), None


def _symmetry(config: Any) -> str:
    return "asymmetric" if getattr(getattr(config, "mapping_type", None), "name", "") == "ASYMMETRIC" else "symmetric"


def _training_words(config: Any) -> str:
    sym = _symmetry(config)
    how = "learned (range learning)" if config.range_learning else \
        "from the weight at each forward (dynamic)" if config.is_dynamic else "fixed at the first forward (static)"
    precision = _dtype_name(config.scale_precision) if config.scale_precision is not None else "in the input's dtype"
    return f"{_dtype_name(config.dtype)} {sym} {_granularity(config)[0]}, scale {precision}, {how}"


def _export_block_words(weight: Any) -> str:
    shape, block = tuple(weight.shape), tuple(int(b) for b in getattr(weight, "block_size", ()) or ())
    if block == shape:
        gran = "per tensor"
    elif len(block) == 2 and block[0] == 1:
        gran = "per channel" if block[1] == shape[1] else f"per group {block[1]}"
    else:
        gran = "block " + "x".join(map(str, block))
    bits = getattr(weight, "target_dtype", None) or getattr(getattr(weight, "qdata", None), "dtype", None)
    scale = getattr(weight, "scale", None)
    return (f"{type(weight).__name__} {_dtype_name(bits)} {gran}"
            + (f", scale {_dtype_name(scale.dtype)}" if isinstance(scale, torch.Tensor) else ""))


def _activation_words(weight: Any) -> str:
    act = getattr(weight, "activation_quantization", None)
    return str(getattr(act, "value", act)).replace("_asym_", " asymmetric ").replace("_sym_", " symmetric ") \
        .replace("_", " ") if act else ""


def _weight_check(name: str, module: nn.Module, quantized: Any) -> QParamsCheck:
    from torchao.quantization.qat.fake_quantize_config import IntxFakeQuantizeConfig
    from torchao.quantization.quant_primitives import _DTYPE_TO_QVALUE_BOUNDS, ZeroPointDomain, quantize_affine

    fq = module.weight_fake_quantizer
    base = dict(node=name, tensor="weight", quantizes=f"{name}.weight", fake_quantizer=type(fq).__name__)
    if not isinstance(getattr(fq, "config", None), IntxFakeQuantizeConfig):
        return QParamsCheck(**base, training=str(getattr(fq, "config", "")), export=type(quantized).__name__,
                            note="not an IntxFakeQuantizeConfig: not compared")
    config = fq.config
    training = _training_words(config)
    scale_e, zero_e = getattr(quantized, "scale", None), getattr(quantized, "zero_point", None)
    qdata = getattr(quantized, "qdata", None)
    if not isinstance(scale_e, torch.Tensor) or qdata is None:
        return QParamsCheck(**base, training=training, export=type(quantized).__name__,
                            problem="training fake-quantized this weight and export left it float")
    export = _export_block_words(quantized)
    probe = copy.deepcopy(fq)  # its forward on the final weight: the qparams training's next step computes
    weight = module.weight.detach()
    with torch.no_grad():
        probe(weight)
    scale_t, zero_t = probe.scale.detach(), probe.zero_point.detach()
    problems = []
    gran, group = _granularity(config)
    block_t = (1, group or weight.shape[-1])
    block_e = tuple(int(b) for b in quantized.block_size)
    if block_t != block_e:
        problems.append(f"granularity: training {gran}, export {export.split(' ', 2)[2].split(',')[0]}")
    qmin, qmax = _DTYPE_TO_QVALUE_BOUNDS[config.dtype]
    export_range = (int(qdata.min()), int(qdata.max()))
    if export_range[0] < qmin or export_range[1] > qmax:
        problems.append(f"range: training {_dtype_name(config.dtype)} [{qmin}, {qmax}], export stores values in "
                        f"[{export_range[0]}, {export_range[1]}]")
    if config.zero_point_domain != ZeroPointDomain.INT:
        return QParamsCheck(**base, training=training, export=export, problem="; ".join(problems),
                            note=f"zero point domain {config.zero_point_domain.name}: integers not compared")
    ints_t = quantize_affine(weight, block_t, scale_t, zero_t, torch.int32, qmin, qmax)
    differ = int((ints_t != qdata.to(torch.int32)).sum()) if ints_t.shape == qdata.shape else int(qdata.numel())
    same_shape = scale_t.numel() == scale_e.numel()
    return QParamsCheck(
        **base, training=training, export=export, scales=int(scale_e.numel()) if same_shape else 0,
        max_scale_rel_diff=_rel_diff(scale_t, scale_e) if same_shape else None,
        max_zero_point_diff=_zp_diff(zero_t, zero_e, scale_e) if same_shape else None,
        values=int(qdata.numel()), values_differ=differ, problem="; ".join(problems))


def _activation_check(name: str, module: nn.Module, quantized: Any) -> QParamsCheck | None:
    fq = getattr(module, "activation_fake_quantizer", None)
    export = _activation_words(quantized)
    base = dict(node=name, tensor="activation", quantizes=f"input of {name}")
    if fq is None:
        return None if not export else QParamsCheck(
            **base, fake_quantizer="none", training="float (no activation fake quantizer)",
            export=f"{export}, at run time", problem=f"training kept this input float and export quantizes it "
                                                     f"({export})")
    config = getattr(fq, "config", None)
    training = _training_words(config) if config is not None and hasattr(config, "range_learning") else str(config)
    gran = _granularity(config)[0] if config is not None and hasattr(config, "granularity") else ""
    expected = f"{_dtype_name(getattr(config, 'dtype', ''))} {_symmetry(config)} {gran}"
    if not export:
        return QParamsCheck(**base, fake_quantizer=type(fq).__name__, training=training, export="float",
                            problem=f"training fake-quantized this input ({expected}) and export leaves it float")
    if gran == "per token" and getattr(config, "is_dynamic", False):
        same = export == expected
        return QParamsCheck(**base, fake_quantizer=type(fq).__name__, training=training,
                            export=f"{export}, at run time",
                            problem="" if same else f"training {expected}, export {export}",
                            note="computed at run time from each input, in training and in the exported program "
                                 "alike: nothing stored to compare")
    return QParamsCheck(**base, fake_quantizer=type(fq).__name__, training=training, export=export,
                        note="a static activation quantizer: not compared")


def compare_torchao(trained: nn.Module, converted: nn.Module, convert: str = "") -> QParamsComparison:
    """Every fake-quantized linear of ``trained`` (torchao QAT, after fine-tuning) against the same module of
    ``converted`` (after ``QATConfig(step="convert")`` and the PTQ config): weights by scale, zero point and
    integer values; per-token activations by how export quantizes them (their qparams are computed at run time)."""
    modules = dict(converted.named_modules())
    checks: list[QParamsCheck] = []
    for name, module in trained.named_modules():
        if not hasattr(module, "weight_fake_quantizer"):
            continue
        target = modules.get(name)
        quantized = getattr(target, "weight", None) if target is not None else None
        if module.weight_fake_quantizer is not None:
            checks.append(_weight_check(name, module, quantized))
        act = _activation_check(name, module, quantized)
        if act is not None:
            checks.append(act)
    return QParamsComparison(tuple(checks), convert)


# -- PT2E QAT (--flow qat_pt2e) -----------------------------------------------------------------------------------
def _is_fake_quantize(module: nn.Module) -> bool:
    return isinstance(getattr(module, "scale", None), torch.Tensor) and hasattr(module, "quant_min") \
        and hasattr(module, "activation_post_process")


def _value(gm: torch.fx.GraphModule, arg: Any) -> torch.Tensor:
    """A quantize/dequantize argument as a tensor: a number, or a get_attr node's tensor."""
    if isinstance(arg, torch.fx.Node):
        value: Any = gm
        for part in str(arg.target).split("."):
            value = getattr(value, part)
        return torch.as_tensor(value)
    return torch.as_tensor(arg)


def _is_q(node: torch.fx.Node) -> bool:
    t = str(node.target)
    return node.op == "call_function" and "quantize_per_" in t and "dequantize" not in t


def _is_dq(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and "dequantize_per_" in str(node.target)


def _made_from(node: torch.fx.Node) -> str:
    """The name of the node ``node`` was made from (``meta["from_node"]``: convert_pt2e records the fake quantizer's
    call it replaced), or ""."""
    chain = node.meta.get("from_node") or []
    return str(getattr(chain[-1], "name", "")) if chain else ""


def _pt2e_words(fq: nn.Module) -> str:
    scheme = str(getattr(fq, "qscheme", "")).replace("torch.", "").replace("_", " ")
    return (f"{_dtype_name(getattr(fq, 'dtype', ''))} [{fq.quant_min}, {fq.quant_max}] {scheme}, "
            f"{type(fq.activation_post_process).__name__}")


def _pt2e_weight_ints(fq: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """The weight as training's fake quantizer rounds it (its own kernel), as integers."""
    scale, zero = fq.scale.detach(), fq.zero_point.detach()
    if scale.numel() > 1:
        axis = int(fq.ch_axis)
        fake = torch.fake_quantize_per_channel_affine(weight, scale, zero.to(torch.int32), axis, fq.quant_min,
                                                      fq.quant_max)
        shape = [1] * weight.dim()
        shape[axis] = -1
        return torch.round(fake / scale.reshape(shape)) + zero.reshape(shape)
    fake = torch.fake_quantize_per_tensor_affine(weight, float(scale), int(zero), fq.quant_min, fq.quant_max)
    return torch.round(fake / float(scale)) + int(zero)


def fused_kernel_cause(fq: nn.Module, training: torch.Tensor, export: torch.Tensor) -> str:
    """Why a symmetric ``FusedMovingAvgObsFakeQuantize``'s scale differs between training and convert_pt2e, when
    that is the known cause: training's fused kernel (``torch.fused_moving_avg_obs_fake_quant``, ATen's
    ChooseQuantizationParams) and the observer ``convert_pt2e`` asks (``calculate_qparams``) compute it by different
    formulas from the same running min/max (pytorch/ao#4824, merged after torchao 0.18); "" otherwise."""
    obs = getattr(fq, "activation_post_process", None)
    if type(fq).__name__ != "FusedMovingAvgObsFakeQuantize" or not getattr(fq, "is_symmetric_quant", False) \
            or obs is None or not torch.isfinite(obs.min_val).all():
        return ""
    qmin, qmax = int(obs.quant_min), int(obs.quant_max)
    lo, hi = obs.min_val.double(), obs.max_val.double()
    sym_min, sym_max = -((qmax - qmin) // 2 + 1), (qmax - qmin) // 2
    step = torch.maximum((lo / sym_min).abs(), (hi / sym_max).abs())
    kernel = ((step * sym_max).clamp_min(0) - (step * sym_min).clamp_max(0)) / (qmax - qmin)
    observer = torch.maximum(-lo, hi) / ((qmax - qmin) / 2)
    if _rel_diff(training, kernel) > SCALE_TOLERANCE or _rel_diff(export, observer) > SCALE_TOLERANCE:
        return ""
    return (f"known cause: training's fused kernel (torch.fused_moving_avg_obs_fake_quant) computes this symmetric "
            f"scale as max(|min|/{-sym_min}, max/{sym_max})·{qmax - qmin + 1}/{qmax - qmin}, convert_pt2e's "
            f"{type(obs).__name__}.calculate_qparams as max(|min|, max)/{(qmax - qmin) / 2:g}, from the same running "
            "min/max (pytorch/ao#4824, merged after torchao 0.18)")


def compare_pt2e(prepared: torch.fx.GraphModule, converted: torch.fx.GraphModule,
                 convert: str = "convert_pt2e") -> QParamsComparison:
    """Every fake-quantize module of ``prepared`` (after fine-tuning) against the quantize/dequantize node of
    ``converted`` that took its place: an activation's quantize node (same input), a weight's dequantize node
    (same consumer; its folded integer weight compared too)."""
    nodes = list(converted.graph.nodes)
    checks: list[QParamsCheck] = []
    for n in prepared.graph.nodes:
        if n.op != "call_module" or not _is_fake_quantize(fq := prepared.get_submodule(str(n.target))):
            continue
        source = n.args[0]
        users = {u.name for u in n.users}
        stored_weight = isinstance(source, torch.fx.Node) and source.op == "get_attr"
        # a weight: a parameter, or what conv-bn QAT computes from one (weight * bn's factor), taken as an op's weight
        weight = stored_weight or any(len(u.args) > 1 and u.args[1] is n for u in n.users)
        base = dict(fake_quantizer=str(n.target), training=_pt2e_words(fq))
        made = [m for m in nodes if _made_from(m) == n.name]  # the q/dq convert made of this fake quantizer
        if weight:
            found = next((d for d in made if _is_dq(d)), None) or \
                next((d for d in nodes if _is_dq(d) and users & {u.name for u in d.users}
                          and isinstance(d.args[0], torch.fx.Node)
                          and (d.args[0].op == "get_attr" or (_is_q(d.args[0]) and d.args[0].args[0].name
                                                               == source.name))), None)
            quantizes = f"{source.name} of {', '.join(sorted(users))}"
        else:
            found = next((q for q in made if _is_q(q)), None) or \
                next((q for q in nodes if _is_q(q) and isinstance(q.args[0], torch.fx.Node)
                      and q.args[0].name == getattr(source, "name", None)), None)
            quantizes = f"{getattr(source, 'name', source)} -> {', '.join(sorted(users))}"
        kind: TensorKind = "weight" if weight else "activation"
        if found is None:
            checks.append(QParamsCheck(node=str(n.target), tensor=kind, quantizes=quantizes, export="float", **base,
                                       problem="training fake-quantized it and the converted program has no "
                                               "quantize/dequantize for it"))
            continue
        scale_e, zero_e = _value(converted, found.args[1]), _value(converted, found.args[2])
        qmin_e, qmax_e = int(found.args[-3]), int(found.args[-2])
        op = getattr(found.target, "__name__", str(found.target))  # e.g. "dequantize_per_tensor.default"
        export = f"{_dtype_name(found.args[-1])} [{qmin_e}, {qmax_e}] {op}"
        problems = []
        observer = getattr(fq, "activation_post_process", None)
        if observer is not None and hasattr(observer, "min_val") and not torch.isfinite(observer.min_val).all():
            problems.append("its observer never saw a value (no training step ran it): convert_pt2e wrote the "
                            "observer's default qparams")
        if (qmin_e, qmax_e) != (fq.quant_min, fq.quant_max):
            problems.append(f"range: training [{fq.quant_min}, {fq.quant_max}], export [{qmin_e}, {qmax_e}]")
        scale_t, zero_t = fq.scale.detach(), fq.zero_point.detach()
        same_shape = scale_t.numel() == scale_e.numel()
        values = differ = 0
        note = ""
        if weight and not stored_weight:  # conv-bn: convert folds bn into the weight it stores
            note = "a weight computed in the graph (conv-bn QAT): its integers are not compared"
        elif weight and found.args[0].op == "get_attr":
            stored = _value(converted, found.args[0])
            trained_weight = _value(prepared, source).detach()
            ints_t = _pt2e_weight_ints(fq, trained_weight)
            values = int(stored.numel())
            differ = int((ints_t != stored.to(ints_t.dtype)).sum()) if ints_t.shape == stored.shape else values
        rel = _rel_diff(scale_t, scale_e) if same_shape else None
        cause = fused_kernel_cause(fq, scale_t, scale_e) if rel is not None and rel > SCALE_TOLERANCE else ""
        checks.append(QParamsCheck(
            node=found.name, tensor=kind, quantizes=quantizes, export=export, **base, note=cause or note,
            scales=int(scale_e.numel()) if same_shape else 0,
            max_scale_rel_diff=rel, max_zero_point_diff=_zp_diff(zero_t, zero_e, scale_e) if same_shape else None,
            values=values, values_differ=differ, problem="; ".join(problems)))
    return QParamsComparison(tuple(checks), convert)
