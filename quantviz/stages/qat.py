"""The QAT stages (``--flow qat``): torchao's quantization-aware training, as its docs write it::

    quantize_(model, QATConfig(activation_config=IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False),
                               weight_config=IntxFakeQuantizeConfig(torch.int4, group_size=32), step="prepare"))
    ... train ...
    quantize_(model, QATConfig(step="convert"))                       # the fake quantizers come out
    quantize_(model, Int8DynamicActivationIntxWeightConfig(...))      # the PTQ config the fake quantizers mimicked

``prepare_qat`` fake-quantizes a copy of the float model, ``train`` fine-tunes it on the factory's calibration
batches with the float model's outputs as the target (distillation: no labels needed; a language model's logits
by KL divergence, others by mean squared error) and records the loss curve, ``convert_qat`` removes the fake
quantizers and quantizes with the same torchao config the torchao flow uses (``quantize.linear_config``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec, call
from quantviz.runtime import first_output
from quantviz.stages.base import Diagnostics, Remedy, Stage, StageContext, StageOutput
from quantviz.stages.qat_qparams import compare_torchao
from quantviz.stages.quantize import describe, linear_config

QAT_READS = ("scheme", "group_size")


def fake_quantize_configs(config: PipelineConfig) -> tuple[object | None, object, str]:
    """(activation config or None, weight config, the call as text) mimicking ``linear_config(config)``."""
    from torchao.quantization.qat import IntxFakeQuantizeConfig

    act = IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False)
    act_text = 'IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False)'
    if config.scheme == "8da4w" and config.group_size:
        return act, IntxFakeQuantizeConfig(torch.int4, group_size=config.group_size), \
            f"{act_text}, IntxFakeQuantizeConfig(torch.int4, group_size={config.group_size})"
    if config.scheme == "8da4w":
        return act, IntxFakeQuantizeConfig(torch.int4, "per_channel"), \
            f"{act_text}, IntxFakeQuantizeConfig(torch.int4, 'per_channel')"
    if config.scheme == "8da8w":
        return act, IntxFakeQuantizeConfig(torch.int8, "per_channel"), \
            f"{act_text}, IntxFakeQuantizeConfig(torch.int8, 'per_channel')"
    return None, IntxFakeQuantizeConfig(torch.int8, "per_channel"), \
        "None, IntxFakeQuantizeConfig(torch.int8, 'per_channel')"



# -- prepare ------------------------------------------------------------------------------------------------------
def fake_quantized(model: nn.Module, config: PipelineConfig) -> nn.Module:
    """A copy of ``model`` with torchao's fake quantizers on its linear layers (QATConfig step "prepare")."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    act, weight, _ = fake_quantize_configs(config)
    model = copy.deepcopy(model)
    quantize_(model, QATConfig(activation_config=act, weight_config=weight, step="prepare"),
              filter_fn=lambda m, fqn: isinstance(m, nn.Linear))
    return model


def prepare(ctx: StageContext) -> StageOutput:
    act, _, text = fake_quantize_configs(ctx.config)
    model = fake_quantized(ctx.spec.model, ctx.config)
    fake = sum(1 for m in model.modules() if "FakeQuantized" in type(m).__name__)
    return StageOutput(model, graph_source=False, metrics={"fake_quantized_linears": fake},
                       notes=[f"{fake} linear layer(s) fake-quantized ({text.split(', ', 1)[-1]}); activations "
                              + ("int8 per token, asymmetric" if act is not None else "stay float")],
                       calls=["from torchao.quantization import quantize_",
                              "from torchao.quantization.qat import QATConfig, IntxFakeQuantizeConfig",
                              "qat_model = copy.deepcopy(model)",
                              f"quantize_(qat_model, QATConfig(activation_config={text.split(', Intx')[0]}, "
                              f"weight_config=Intx{text.split(', Intx')[1] if ', Intx' in text else text}, "
                              "step='prepare'), filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear))"])


def bare_prepare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``quantize_(qat_model, QATConfig(..., step="prepare"), filter_fn=<linear layers>)`` on a copy."""
    state["qat_model"] = fake_quantized(spec.model, config)


# -- train --------------------------------------------------------------------------------------------------------
@dataclass
class Training:
    """The fine-tuned fake-quantized model and its loss per step."""

    model: nn.Module
    losses: list[float] = field(default_factory=list)
    loss_name: str = ""


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, language_model: bool) -> torch.Tensor:
    """KL(teacher || student) over the last dimension for a language model's logits, else mean squared error."""
    if language_model:
        return nn.functional.kl_div(student.log_softmax(-1).flatten(0, -2), teacher.log_softmax(-1).flatten(0, -2),
                                    log_target=True, reduction="batchmean")
    return nn.functional.mse_loss(student, teacher)


def fine_tune(model: nn.Module, spec: ModelSpec, config: PipelineConfig,
              progress: Callable[[float, str], None] | None = None) -> list[float]:
    """Fine-tune ``model`` in place on ``spec``'s calibration batches, the float model's outputs as the target
    (a user's training loop: Adam, ``config.qat_steps`` steps at ``config.qat_lr``); the loss per step."""
    batches = spec.calibration_data(10 ** 9)
    language_model = spec.language_model is not None
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=config.qat_lr)
    with torch.no_grad():
        targets = [first_output(call(spec.model, b)).detach() for b in batches]
    exported = isinstance(model, torch.fx.GraphModule)  # prepare_qat_pt2e's: train() is not for exported models
    if exported:
        from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

        move_exported_model_to_train(model)
    else:
        model.train()
    losses: list[float] = []
    for step in range(config.qat_steps):
        i = step % len(batches)
        loss = distillation_loss(first_output(call(model, batches[i])), targets[i], language_model)
        if not torch.isfinite(loss):
            raise not_finite(model, spec, batches[i], loss.item(), step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress is not None and step % 10 == 0:
            progress(step / max(1, config.qat_steps), f"step {step}: loss {losses[-1]:.4g}")
    if exported:
        move_exported_model_to_eval(model)
    else:
        model.eval()
    return losses


def single_value_batchnorms(model: nn.Module, spec: ModelSpec, batch: object) -> dict[str, tuple[int, ...]]:
    """The BatchNorm layers of ``model`` whose running statistics are no longer finite, each with the input shape
    the float model's layer of that name gets from ``batch`` (the names are the float model's: prepare_qat_pt2e keeps
    them on the buffers)::

        {"features.9.conv.1.1": (1, 192, 1, 1), ...}
    """
    bad = {n.rsplit(".", 1)[0] for n, b in model.named_buffers()
           if n.endswith(("running_mean", "running_var")) and not torch.isfinite(b).all()}
    modules = dict(spec.model.named_modules())
    names = [n for n in modules if n in bad] + sorted(bad - set(modules))  # the model's order
    shapes: dict[str, tuple[int, ...]] = {n: () for n in names}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(i[0].shape)))
             for n in names if n in modules]
    try:
        with torch.no_grad():
            call(spec.model, batch)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def not_finite(model: nn.Module, spec: ModelSpec, batch: object, loss: float, step: int) -> Exception:
    """The train stage's error for a loss that is not finite, with its cause where it is known: BatchNorm layers
    trained on one value per channel (batch 1 and a 1x1 feature map: the unbiased running variance divides by
    n - 1 = 0, and PT2E QAT's conv-bn folds the NaN running variance into the weights from the next step on), else
    an infinite value met by a fake quantizer."""
    from quantviz.errors import StageError

    bns = single_value_batchnorms(model, spec, batch)
    single = {n: s for n, s in bns.items() if len(s) >= 2 and s[1] and math.prod(s) // s[1] == 1}
    if single:
        first, shape = next(iter(single.items()))
        more = f" and {len(single) - 1} more" if len(single) > 1 else ""
        return StageError(
            "train", f"the distillation loss is {loss} at step {step}: BatchNorm {first}{more} trained on one value "
                     f"per channel (input {shape}): the running variance's update divides by n - 1 = 0 and is NaN, "
                     "and the fake-quantized conv-bn scales its weights by it",
            "fine-tune on calibration batches of more than one sample (the factory's calibration_batches; eager "
            "PyTorch refuses this batch in training mode: 'Expected more than 1 value per channel when training')",
            metrics={"qat_nan_step": step, "single_value_batchnorms": len(single)})
    return StageError("train", f"the distillation loss is {loss} at step {step}: the fake-quantized model's output "
                               "is not finite" + (f" (non-finite BatchNorm statistics: {', '.join(bns)})" if bns else ""),
                      "a fake quantizer met an infinite value (an additive -inf attention mask is one: fake "
                      "quantization turns it into NaN); keep that op float (--skip-module), or use --flow qat, whose "
                      "fake quantizers sit on the linear layers only", metrics={"qat_nan_step": step})


def train(ctx: StageContext) -> StageOutput:
    model = copy.deepcopy(ctx.previous())
    batches = ctx.spec.calibration_data(10 ** 9)
    language_model = ctx.spec.language_model is not None
    losses = fine_tune(model, ctx.spec, ctx.config, ctx.progress)
    name = "KL divergence to the float model's logits" if language_model else "MSE to the float model's outputs"
    result = Training(model, losses, name)
    notes = [f"{len(losses)} step(s) on {len(batches)} calibration batch(es), Adam lr {ctx.config.qat_lr:g}; loss "
             f"({name}): first {losses[0]:.4g}, last {losses[-1]:.4g}, lowest {min(losses):.4g}"
             if losses else "no fine-tuning steps (--qat-steps 0): convert takes the prepared model as it is"]
    return StageOutput(result, graph_source=False, notes=notes,
                       metrics={"qat_first_loss": losses[0] if losses else float("nan"),
                                "qat_last_loss": losses[-1] if losses else float("nan"), "qat_steps": len(losses)},
                       calls=["opt = torch.optim.Adam(qat_model.parameters(), lr=%g)" % ctx.config.qat_lr,
                              f"for step in range({ctx.config.qat_steps}):  # the float model's outputs as targets",
                              "    loss = distill(qat_model(*batches[step % len(batches)]), float_outputs[...])",
                              "    opt.zero_grad(); loss.backward(); opt.step()"])


def bare_train(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """The training loop a user writes (``fine_tune``), on the prepared model in place."""
    fine_tune(state["qat_model"], spec, config)


# -- convert ------------------------------------------------------------------------------------------------------
def convert(ctx: StageContext) -> StageOutput:
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    trained = ctx.previous().model
    model = copy.deepcopy(trained)
    quantize_(model, QATConfig(step="convert"))  # FakeQuantizedLinear -> Linear
    base, text = linear_config(ctx.config)
    given: dict[str, str] = {}

    def chosen(m: nn.Module, fqn: str) -> bool:
        if isinstance(m, nn.Linear):
            given[fqn] = text
            return True
        return False

    quantize_(model, base, filter_fn=chosen)
    rows = describe(model, given)
    # training's qparams (the fake quantizers on the fine-tuned weights) against those quantize_ stored
    qparams = compare_torchao(trained, model, convert=f"QATConfig(step='convert'), then quantize_(model, {text})")
    return StageOutput(model.eval(), graph_source=False, table=rows,
                       metrics={"quantized_weights": len(rows), **qparams.metrics()},
                       notes=[f"fake quantizers removed; {len(rows)} weight(s) quantized with {text}",
                              *qparams.notes()], diagnostics=Diagnostics(qat_qparams=qparams),
                       calls=["quantize_(qat_model, QATConfig(step='convert'))",
                              f"quantize_(qat_model, {text}, filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear))"])


def bare_convert(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``quantize_(qat_model, QATConfig(step="convert"))``, then ``quantize_`` with the PTQ config it mimicked."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    model = state["qat_model"]
    quantize_(model, QATConfig(step="convert"))
    quantize_(model, linear_config(config)[0], filter_fn=lambda m, fqn: isinstance(m, nn.Linear))
    state["reference"] = model.eval()


PREPARE = Stage("prepare_qat", prepare, "torchao QAT prepare: fake-quantize the linear layers (QATConfig)",
                "A copy of the float model gets fake quantizers on its linear layers' weights and activations: "
                "the forward pass rounds as the quantized model will, the backward pass passes gradients straight "
                "through.", reads=QAT_READS,
                remedy=Remedy("try --scheme 8da8w", ({"scheme": "8da8w"},)), bare=bare_prepare)
TRAIN = Stage("train", train, "fine-tune the fake-quantized model on the calibration data (distillation)",
              "A short fine-tune with the fake quantizers in place, the float model's outputs as the target, so the "
              "weights learn to live with the rounding. The loss curve is on this page.",
              reads=("qat_steps", "qat_lr"),
              remedy=Remedy("try a smaller --qat-lr", ({"qat_lr": 1e-5},)), bare=bare_train)
CONVERT = Stage("convert_qat", convert, "torchao QAT convert, then quantize_ with the PTQ config it mimicked",
                "The fake quantizers come out (QATConfig step='convert') and quantize_ quantizes the fine-tuned "
                "weights with the configuration the torchao flow uses, so PTQ and QAT differ only in the weights.",
                reads=QAT_READS, remedy=Remedy("try --scheme 8da8w", ({"scheme": "8da8w"},)), bare=bare_convert)
