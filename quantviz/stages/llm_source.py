"""source_transform (export_llm): load the model the LLM config names and apply export_llm's source transforms
(custom SDPA with the KV cache, torchao ``quantize_`` for ``quantization.qmode``, embedding quantization, dtype),
exactly as ``export_llama_lib._prepare_for_llama_export`` does. Its artifact is export_llm's ``LLMEdgeManager``,
which the later export_llm stages advance in place."""
from __future__ import annotations

from collections import Counter

import torch

from quantviz import llm_config
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "export_llm: load the model and apply its source transforms (SDPA, KV cache, quantize_, embeddings)"
EXPLANATION = (
    "export_llm builds the model its configuration names and rewrites it in Python before export: the custom SDPA "
    "op with its KV cache, torchao quantize_ for the linear layers (quantization.qmode) and quantized embeddings "
    "(quantization.embedding_quantize). There is no graph yet: the page lists the modules the transforms made."
)
READS = ("llm_config", "llm_overrides")


def module_counts(model: torch.nn.Module) -> Counter:
    """How many modules of each class the model has (what the transforms swapped in shows here)."""
    return Counter(type(m).__name__ for m in model.modules())


def weight_formats(model: torch.nn.Module) -> Counter:
    """How many parameters are plain tensors and how many torchao tensor subclasses (quantized weights)."""
    return Counter(type(p.data).__name__ if type(p.data) is not torch.Tensor else "float Tensor"
                   for p in model.parameters())


def run(ctx: StageContext) -> StageOutput:
    from executorch.examples.models.llama.export_llama_lib import _prepare_for_llama_export

    if not ctx.spec.name.startswith("export_llm:"):
        from quantviz.errors import StageError

        raise StageError("source_transform", f"the export_llm flow builds the model its configuration names, not "
                                             f"{ctx.spec.name!r}",
                         "load the model with quantviz.llm_config.llm_spec(config) (CLI: quantviz run export_llm "
                         "--llm-config FILE.yaml; the app: the model source 'export_llm configuration')")
    llm = llm_config.of_config(ctx.config)
    before = module_counts(ctx.spec.model)
    torch.manual_seed(llm_config.SEED)  # the same weights as the float model when no checkpoint is named
    manager = _prepare_for_llama_export(llm)
    manager.quantviz_llm_config = llm  # the merged LlmConfig the later stages read (export_llm mutates it too)
    after = module_counts(manager.model)
    swapped = {k: v for k, v in after.items() if before.get(k, 0) != v}
    notes = [f"{llm.base.model_class.value}: use_kv_cache={llm.model.use_kv_cache}, "
             f"use_sdpa_with_kv_cache={llm.model.use_sdpa_with_kv_cache}, qmode={llm.quantization.qmode}, "
             f"group_size={llm.quantization.group_size}, embedding_quantize={llm.quantization.embedding_quantize}, "
             f"max_seq_length={llm.export.max_seq_length}, dtype={llm.model.dtype_override.value}",
             "modules the source transforms changed: " + (", ".join(f"{k} {before.get(k, 0)} -> {v}"
                                                                    for k, v in sorted(swapped.items())) or "none"),
             "weights: " + ", ".join(f"{v} {k}" for k, v in weight_formats(manager.model).most_common())]
    if not llm.base.checkpoint:
        notes.append(f"no base.checkpoint: random weights drawn after torch.manual_seed({llm_config.SEED}) "
                     "(export_llm alone draws them unseeded)")
    calls = ["from executorch.examples.models.llama.export_llama_lib import _prepare_for_llama_export",
             f"llm_config = load_llm_config({ctx.config.llm_config!r}, {ctx.config.llm_overrides!r})",
             "builder = _prepare_for_llama_export(llm_config)  # load + source transforms"]
    return StageOutput(manager, graph_source=False, calls=calls, notes=notes,
                       metrics={"modules_changed": sum(abs(v - before.get(k, 0)) for k, v in swapped.items())})


STAGE = Stage("source_transform", run, DESCRIPTION, EXPLANATION, reads=READS,
              remedy=Remedy("check the LLM config's model and quantization keys against export_llm's LlmConfig"))
