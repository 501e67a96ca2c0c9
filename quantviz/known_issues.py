"""Turn failures raised inside torch/executorch into a StageError with a cause, a hint and a fix.

Known limitations of the pinned versions get words a user understands; anything else keeps the library's
message, with the innermost chained cause (``__cause__``/``__context__``), the fx node it failed at, the stage
name and a generic hint added. Every hint that is a config change also comes as data in ``StageError.fix``.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Callable

import torch

from quantviz.config import ConfigChanges, PipelineConfig
from quantviz.errors import StageError
from quantviz.failure_site import find_failure_site
from quantviz.remedy import Remedy


@dataclass(frozen=True)
class KnownIssue:
    stage: str
    pattern: str  # regex on the text of the exception and every exception it chains
    message: str  # may use the pattern's named groups and {cause}: the innermost cause, "Type: first line"
    hint: str
    fix: ConfigChanges = field(default_factory=dict)  # the hint's config change (StageError.fix)
    requires: ConfigChanges = field(default_factory=dict)  # config values under which this explanation holds
    # regex on the innermost exception's traceback (file, function, line text): for asserts that say nothing
    where: str = ""


KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        "delegate", r"",  # a bare assert: matched by where it was raised
        "VulkanPartitioner's quantized convolution pattern needs per-channel weight scales: its "
        "QuantizedConvolutionMatch asserts that the weight's dequantize has a scales tensor, and per-tensor weights "
        "give a scalar ({cause})",
        "quantize weights per channel (--per-channel), as Vulkan's own tests do", fix={"per_channel": True},
        requires={"backend": "vulkan", "per_channel": False}, where=r"quantized_convolution\.py.*\n.*weight_scales"),
    KnownIssue(
        "prepare", r"running the '(?P<pass_name>\w+)' pass(?s:.*)call_module is not supported",
        "{pass_name} failed: {cause}: the quantizer's pass could not run the _guards_fn call_module that torch 2.13's "
        "ExportedProgram.module() inserts into the graph it hands to prepare_pt2e (Arm's TOSA and Ethos-U quantizers "
        "run graph passes in transform_for_annotation, and their pass base refuses call_module nodes)",
        "export without the guard submodule: --no-check-guards (prepare_pt2e(ep.module(check_guards=False), "
        "quantizer)); the model is not changed, only the guard check that module() would add",
        fix={"check_guards": False}, requires={"check_guards": True}),
    KnownIssue(
        "delegate", r"requires group_size to be a multiple of (?P<n>\d+)",
        "XNNPACK takes groupwise int4 weights only in groups of a multiple of {n} input channels ({cause})",
        "use --group-size 32 (or 64, 128), or --group-size 0 for per-channel weights",
        fix={"group_size": 32}, requires={"flow": "torchao"}),
    KnownIssue(
        "emit", r"Missing out variants: \{(?P<ops>[^}]*torchao::[^}]*)\}",
        "to_executorch found no out-variant kernel for {ops}: torchao's affine quantize/dequantize ops have no "
        "ExecuTorch kernel, so every op that uses them must be delegated (XNNPACK takes 8da4w/8da8w linears on "
        "their inputs' shapes) or fused (quantized embeddings: --quantize-embeddings with the fuse stage)",
        "delegate to XNNPACK (--backend xnnpack, --partitioner auto); the delegate stage's notes name the ops it "
        "left out, keep those float with --skip-module NAME",
        fix={"partitioner": "auto"}, requires={"flow": "torchao"}),
    KnownIssue(
        "emit", r"Missing out variants: \{(?P<ops>[^}]*add_relu[^}]*)\}",
        "to_executorch found no out-variant kernel for {ops}: ExecuTorch's QuantFusionPass fused a pattern into "
        "an operator that executorch 1.5.1 cannot run (quantized add+relu fuses to quantized_decomposed::add_relu, "
        "which has no .out kernel)",
        "use --fusion quantviz (quantviz's own add_relu kernel, which has one) or --fusion none (the pattern then "
        "runs as dequantize, float ops, quantize), or a partitioner that takes add+relu (--partitioner demo or "
        "xnnpack with --flow pt2e)",
        fix={"fusion": "quantviz"}),
    KnownIssue(
        "delegate", r"Invalid partition, found dependency cycles",
        "the partitioner grouped ops into one delegate although a path between two of them runs through an op "
        "outside it, so the delegate would both feed that op and wait for it ({cause}; seen on decoders under dynamic "
        "quantization: Qwen3-style ones at the q/k RMSNorm, whose pow is taken and an op beside it not, and "
        "Llama-style ones)",
        "split the delegates per op: --delegate-granularity op (every op the partitioner takes becomes its own "
        "delegate, XNNPACK's per_op_mode, so no delegate can close a cycle; the same ops stay delegated)",
        fix={"delegate_granularity": "op"}, requires={"flow": "pt2e", "delegate_granularity": "graph"}),
    KnownIssue(
        "train", r"Expected more than 1 value per channel when training",
        "a BatchNorm layer in training mode gets one value per channel ({cause}): the calibration batches hold one "
        "sample and the layer's feature map is 1x1 by then, so the batch has no variance to normalise by",
        "fine-tune on calibration batches of more than one sample (the factory's calibration_batches); under "
        "--flow qat_pt2e the exported graph does not check this and the loss turns NaN one step later instead"),
    KnownIssue(
        "train", r"Tensor dtype mismatch! Expected: Long, Got: float",
        "the fake-quantized model computes an integer index as float ({cause}): prepare_qat_pt2e's quantizer "
        "(XNNPACKQuantizer's _convert_scalars_to_attrs) turns the Python number of every add/mul into a float32 "
        "tensor constant, also in index arithmetic such as torch.arange(n) + past_seen_tokens",
        "rerun with --keep-integer-scalars: quantviz.passes.keep_integer_scalars keeps those scalars integer before "
        "prepare_qat_pt2e (the model is not changed; the pass shows in the prepare stage's calls)",
        fix={"keep_integer_scalars": True}, requires={"flow": "qat_pt2e", "keep_integer_scalars": False}),
    KnownIssue(
        "delegate", r"running the '(?P<pass_name>ConvertToLinearPass)' pass",
        "{pass_name} failed: {cause}. XNNPACK's {pass_name}, run by to_backend on every partition, rebuilds "
        "each nn.Linear from the ops to_edge decomposed it into, and could not (a linear on a non-contiguous 3-D "
        "input, e.g. tokens after a transpose, decomposes to expand + bmm)",
        "use --lowering transform_and_lower: to_edge_transform_and_lower keeps aten.linear whole for XNNPACK, so "
        "there is nothing to rebuild (or --partitioner none to lower without XNNPACK)",
        fix={"lowering": "transform_and_lower"}, requires={"lowering": "to_backend"}),
)

def cause_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it chains, outermost first. An implicit ``__context__`` that is only a failed
    lookup (KeyError, AttributeError, ...) the library then replaced with a better error is left out."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        nxt = e.__cause__
        if nxt is None and not e.__suppress_context__:
            nxt = e.__context__
            if isinstance(nxt, _INCIDENTAL):
                break
        e = nxt
    return chain


def cause_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (or ``"Type (the library gave no message)"``)."""
    first = _first_line(exc)
    return f"{type(exc).__name__}: {first[:500]}" if first else f"{type(exc).__name__} (the library gave no message)"


def explain(stage: str, exc: BaseException, config: PipelineConfig | None = None,
            remedy: Remedy | None = None,
            differs: Callable[[PipelineConfig, PipelineConfig], bool] | None = None) -> StageError:
    """The StageError for an exception a stage raised (``config``: the run's, for the fix; default config if
    None; ``remedy``: the stage's own, from its record, when no known issue explains the failure). A StageError
    keeps its words and gains its causes, failing node and traceback. ``differs`` tells which fixes change what
    the config does (see ``Remedy.fix_for``)."""
    if isinstance(exc, StageError):
        return _with_context(exc, exc)
    chain = cause_chain(exc)
    text = "\n".join(str(e) for e in chain)
    inner = cause_line(chain[-1])
    config = config or PipelineConfig()
    for issue in KNOWN_ISSUES:
        if issue.stage != stage or not _holds(config, issue.requires):
            continue
        m = re.search(issue.pattern, text)
        if m and issue.where and not re.search(issue.where, "".join(traceback.format_tb(chain[-1].__traceback__))):
            m = None
        if m:
            error = StageError(stage, issue.message.format(cause=inner, **m.groupdict()), issue.hint,
                               fix=dict(issue.fix))
            return _with_context(error, exc, name_site=True)
    remedy = remedy or Remedy("")
    error = StageError(stage, _message(chain), remedy.hint, fix=remedy.fix_for(config, differs))
    return _with_context(error, exc, name_site=True)


_INCIDENTAL = (KeyError, AttributeError, StopIteration, ImportError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else ""


def _message(chain: list[BaseException]) -> str:
    """The outermost error, and the innermost cause when the outer message does not already say it:
    ``ConvertToLinearPass failed: RuntimeError: t() expects ...``."""
    outer, inner = chain[0], chain[-1]
    if inner is outer or not _first_line(inner) or _first_line(inner) in str(outer):
        return cause_line(outer)
    wrapper = re.search(r"error occurred when running the '(\w+)' pass", str(outer))
    if wrapper:
        return f"{wrapper.group(1)} failed: {cause_line(inner)}"
    return f"{cause_line(outer)}; caused by {cause_line(inner)}"


def _with_context(error: StageError, exc: BaseException, name_site: bool = False) -> StageError:
    """Fill ``causes``, ``site`` and ``details`` from ``exc``; with ``name_site``, the message names the node."""
    if not error.causes:
        chain = cause_chain(exc)
        error.causes = [cause_line(e) for e in (chain[1:] if isinstance(exc, StageError) else chain)]
    if error.site is None:
        error.site = find_failure_site(exc)
        if error.site is not None and name_site:
            error.message += f" (at {error.site.short()})"
    if not error.details:
        error.details = "".join(traceback.format_exception(exc))
    return error


def _holds(config: PipelineConfig, values: ConfigChanges) -> bool:
    return all(getattr(config, k, None) == v for k, v in values.items())


def runtime_preflight(edge) -> StageError | None:
    """A StageError for programs known to *abort* the ExecuTorch runtime process (no exception to catch), found
    before the program is loaded; None when none is known. Each check is one private step below."""
    if edge is None or not hasattr(edge, "exported_program"):
        return None
    ep = edge.exported_program()
    return _float_zero_point_dequantize(ep) or _broadcast_quantized_add(ep) or _float32_scale_quantize_per_channel(ep)


def _float_zero_point_dequantize(ep) -> StageError | None:
    """executorch 1.5.1's ``dequantize_per_channel`` kernel aborts on float zero points, which the fx flow's
    embedding weights (``float_qparams_weight_only_qconfig``) carry; only ExecuTorch's QuantFusionPass removes
    that dequantize (it fuses embeddings into ``embedding_byte``)."""
    constants = _constants(ep)
    for node in ep.graph.nodes:
        if node.op != "call_function" or "dequantize_per_channel" not in str(node.target):
            continue
        tensor = constants.get(getattr(node.args[2], "name", "")) if len(node.args) > 2 else None
        if tensor is not None and tensor.is_floating_point():
            return StageError(
                "run", f"{node.name} dequantizes per channel with float zero points (embedding weights quantized "
                       "with float qparams); executorch 1.5.1's dequantize_per_channel kernel aborts the process on "
                       "them, so the program was not run",
                "use --fusion executorch or --fusion both: QuantFusionPass fuses the embedding into "
                "quantized_decomposed::embedding_byte, which takes float zero points (or use --flow pt2e)",
                fix={"fusion": "executorch"})
    return None


def _constants(ep) -> dict[str, torch.Tensor]:
    """Placeholder name -> the lifted constant (parameter, buffer or tensor constant) it stands for."""
    sig = ep.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    values = {**ep.state_dict, **ep.constants}
    return {placeholder: values[target] for placeholder, target in names.items() if target in values}


def _float32_scale_quantize_per_channel(ep) -> StageError | None:
    """executorch 1.5.1's portable ``quantize_per_channel`` kernel takes float64 scales only and aborts the process
    on float32 ones, which per-channel weights carry when ``convert_pt2e(..., fold_quantize=False)`` leaves their
    quantize in the program (OpenVINO's delegate needs them so; outside its delegate the portable kernel runs them)."""
    constants = _constants(ep)
    for node in ep.graph.nodes:
        if node.op != "call_function" or "quantize_per_channel" not in str(node.target) \
                or "dequantize" in str(node.target) or len(node.args) < 2:
            continue
        scale = constants.get(getattr(node.args[1], "name", ""))
        if scale is None or scale.dtype != torch.float32:
            continue
        source = getattr(node.args[0], "name", "its input")
        return StageError(
            "run", f"{node.name} quantizes {source} per channel at run time with float32 scales; executorch "
                   "1.5.1's portable quantize_per_channel kernel takes float64 scales only and aborts the process "
                   "on them, so the program was not run",
            "fold the weights' quantize into int8 constants (convert_pt2e's default, fold_quantize=True), as "
            "quantviz's convert does when nothing is delegated; a backend that needs them unfolded (OpenVINO: "
            "fold_quantize=False) must take every quantized weight into its delegate")
    return None


def _broadcast_quantized_add(ep) -> StageError | None:
    """ExecuTorch's QuantFusionPass fuses any uint8 ``dq -> add -> q`` into ``quantized_decomposed::add``, also
    when the two inputs broadcast (a per-channel scale or bias, an attention bias); executorch 1.5.1's kernel
    asserts equal element counts, equal ranks and equal dtypes, and aborts the process otherwise."""
    for node in ep.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target))  # "quantized_decomposed.add.default"
        if node.op != "call_function" or not name.startswith("quantized_decomposed.") \
                or name.split(".")[-2] not in ("add", "add_relu"):
            continue
        vals = [a.meta.get("val") for a in (node.args[0], node.args[5]) if isinstance(a, torch.fx.Node)]
        if len(vals) != 2 or not all(isinstance(v, torch.Tensor) for v in vals):
            continue
        (a, b) = vals
        if a.numel() == b.numel() and a.dim() == b.dim() and a.dtype == b.dtype:
            continue
        trace = (node.meta.get("stack_trace") or "").strip().splitlines()
        where = f" ({trace[-1].strip()})" if trace else ""
        return StageError(
            "run", f"{node.name} is a quantized_decomposed::add of inputs {tuple(a.shape)} {a.dtype} and "
                   f"{tuple(b.shape)} {b.dtype}{where}: ExecuTorch's QuantFusionPass fused a broadcasting add, and "
                   "executorch 1.5.1's quantized add kernel aborts the process unless both inputs have the same size, "
                   "rank and dtype, so the program was not run",
            "use --fusion none (the add then runs as dequantize, add, quantize) or --flow pt2e",
            fix={"fusion": "none"})
    return None
