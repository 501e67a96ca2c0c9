"""The recipe flow's stages: ExecuTorch's ``executorch.export.export`` with an ``ExportRecipe``, one call, and each
stage of the ``ExportSession`` it returns shown as a stage of its own.

quantviz makes the user's call itself, once, in the session's first stage, and then reads
``session.get_stage_artifacts()``: each later stage's page is that stage's artifact, with the session's own
duration (``context["duration_ms"]``); what the user called is what they see::

    session = executorch.export.export(model, samples, ExportRecipe.get_recipe(XNNPackRecipeType.FP32))
    session.get_stage_artifacts()[StageType.TORCH_EXPORT].data["forward"]   # the ExportedProgram

A session stage that had nothing to do (``SOURCE_TRANSFORM`` for a recipe without torchao configs, ``QUANTIZE``
for one without pt2e quantizers) hands its input on unchanged; its page says so.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from quantviz.backends import recipe_type_of
from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.quantize import describe


@dataclass
class SessionRun:
    """The session quantviz ran, and the samples it gave it."""

    session: Any  # executorch.export.ExportSession
    recipe: Any  # the ExportRecipe
    samples: list[tuple]  # the example inputs list passed to export (the first is exported, all calibrate)

    def artifact(self, stage_type: str) -> Any:
        """The session's artifact of ``stage_type`` (a StageType value), or None when it has none."""
        for key, value in self.session.get_stage_artifacts().items():
            if getattr(key, "value", key) == stage_type:
                return value
        return None

    def previous(self, stage_type: str) -> Any:
        """The artifact of the session stage that ran before ``stage_type``, or None."""
        keys = [getattr(k, "value", k) for k in self.session.get_stage_artifacts()]
        i = keys.index(stage_type) if stage_type in keys else 0
        return self.artifact(keys[i - 1]) if i > 0 else None


def recipe_samples(spec: ModelSpec, config: PipelineConfig) -> list[tuple]:
    """The example inputs list handed to ``export``: its first sample is exported, all of them calibrate a pt2e
    recipe; the calibration batches (the example inputs when there are none)."""
    return spec.calibration_data(config.calibration_batches)


def export_call(config: PipelineConfig) -> list[str]:
    rtype = recipe_type_of(config.recipe)
    cls = type(rtype)
    return [f"from {cls.__module__.rsplit('.', 1)[0]} import {cls.__name__}",
            "from executorch.export import ExportRecipe, export",
            f"recipe = ExportRecipe.get_recipe({cls.__name__}.{rtype.name})",
            f"samples = calibration_batches  # {config.calibration_batches} at most: the first is exported, all "
            "calibrate a pt2e recipe",
            "session = export(model, samples, recipe)",
            "artifacts = session.get_stage_artifacts()  # StageType -> PipelineArtifact (.data, .context)"]


def run_session(spec: ModelSpec, config: PipelineConfig) -> SessionRun:
    """``executorch.export.export(model, samples, recipe)`` on a copy of the model (the float model is kept for
    numerics; the session's own SOURCE_TRANSFORM copies too)."""
    from executorch.export import ExportRecipe, export

    recipe = ExportRecipe.get_recipe(recipe_type_of(config.recipe))
    samples = recipe_samples(spec, config)
    session = export(copy.deepcopy(spec.model).eval(), samples, recipe)
    return SessionRun(session, recipe, samples)


def _method(data: Any) -> Any:
    """The ``forward`` method's artifact of a per-method dict (the session keeps one per method)."""
    return data.get("forward", next(iter(data.values()))) if isinstance(data, dict) and data else data


def _graph_source(value: Any) -> Any:
    """What quantviz can draw of a session artifact: programs and graph modules; a plain module is not drawn."""
    if hasattr(value, "exported_program") or hasattr(value, "graph_signature"):
        return value
    return value if hasattr(value, "graph") and hasattr(value, "code") else False


def recipe_configs(recipe: Any, model: Any) -> dict[str, str]:
    """Module -> the recipe's torchao config that quantized it (``Int8DynamicActivationIntxWeightConfig(weight_dtype=
    int4, PerAxis(axis=0))``), by each ``AOQuantizationConfig``'s filter (none: every linear, as quantize_ does)."""
    import torch

    quant = getattr(recipe, "quantization_recipe", None)
    configs = list(getattr(quant, "ao_quantization_configs", None) or [])
    given: dict[str, str] = {}
    for name, module in model.named_modules():
        for c in configs:
            base = getattr(c, "ao_base_config", c)
            chosen = c.filter_fn(module, name) if getattr(c, "filter_fn", None) else \
                isinstance(module, torch.nn.Linear)
            if chosen and name not in given:
                given[name] = _config_text(base)
    return given


def _config_text(base: Any) -> str:
    """A torchao config in one line: its class and the fields that say the scheme (dtypes and granularity)."""
    keep = ("weight_dtype", "weight_granularity", "group_size", "granularity", "act_mapping_type")
    fields = {k: v for k, v in vars(base).items() if k in keep} if hasattr(base, "__dict__") else {}
    text = ", ".join(f"{k}={str(v).replace('torch.', '').replace('MappingType.', '')}" for k, v in fields.items())
    return f"{type(base).__name__}({text})"


def _passed_through(recipe: Any, stage_type: str) -> bool:
    """True when the session's stage had nothing to do for ``recipe`` (it hands its input on unchanged)."""
    quant = getattr(recipe, "quantization_recipe", None)
    if stage_type == "source_transform":
        return not (quant and quant.ao_quantization_configs)
    if stage_type == "quantize":
        return not (quant and quant.quantizers)
    return False


def session_stage(stage_type: str, first: bool) -> Stage:
    """The quantviz stage showing the session's ``stage_type`` (a StageType value); the ``first`` one makes the
    user's export call, the others read the session it returned (``ctx.role("session")``)."""
    description, explanation, overlay = DESCRIPTIONS[stage_type]

    def run(ctx: StageContext) -> StageOutput:
        if first:  # executorch.export.export takes a list of positional example tuples
            from quantviz.stages.trace import refuse_structured

            refuse_structured(ctx.spec, stage_type, "the recipe flow: executorch.export.export (ExportSession) "
                              "takes a list of positional example input tuples",
                              fix={"flow": "pt2e", "recipe": ""})  # --recipe NAME would select this flow again
        done = run_session(ctx.spec, ctx.config) if first else ctx.role("session")
        calls = export_call(ctx.config) if first else \
            [f"artifacts[StageType.{stage_type.upper()}].data['forward']  # made by the export call (first stage)"]
        artifact = done.artifact(stage_type)
        value = _method(artifact.data)
        notes, table = [], None
        if _passed_through(done.recipe, stage_type):
            notes.append("nothing to do for this recipe: the session handed its input on unchanged, and its "
                         "duration is the one ExportSession recorded for the shared artifact")
        elif stage_type == "source_transform":
            table = describe(value, recipe_configs(done.recipe, value))
            notes.append(f"{len(table)} weight(s) quantized by torchao's quantize_ (the recipe's "
                         "ao_quantization_configs)")
        ms = artifact.get_context("duration_ms")
        if first:
            notes.insert(0, "quantviz made the export call here (the whole session runs in it); every session "
                            "stage shows ExportSession's own duration")
        if ms:  # ExportSession records whole milliseconds: 0 says only "under 1 ms", no duration is shown then
            notes.append(f"ExportSession's own duration: {ms} ms")
        elif ms is not None:
            notes.append("ExportSession's own duration: under 1 ms (it records whole milliseconds)")
        return StageOutput(done if first else value, graph_source=_graph_source(value), calls=calls, notes=notes,
                           seconds=ms / 1000.0 if ms else None, table=table)

    return Stage(stage_type, run, description, explanation,
                 reads=("recipe", "calibration_batches") if first else (),
                 overlay=overlay,  # type: ignore[arg-type]
                 remedy=Remedy("the recipe's own call failed: check that the model runs eagerly and exports with "
                               "torch.export; or step through the same quantization with --flow torchao or "
                               "--flow pt2e to see where", ({"recipe": "xnnpack_fp32"},)),
                 bare=bare if first else None)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """The user's one call: ``executorch.export.export(model, samples, recipe)``."""
    done = run_session(spec, config)
    state["program"] = done.session.get_executorch_program_manager()
    state["session"] = done


# StageType value -> (description, explanation, the blame pair colouring its graph)
DESCRIPTIONS: dict[str, tuple[str, str, str]] = {
    "source_transform": (
        "ExportSession SOURCE_TRANSFORM: torchao quantize_ with the recipe's configs",
        "The recipe's torchao configurations applied with quantize_ (on a copy of the model).",
        "float_vs_reference_sqnr_db"),
    "quantize": (
        "ExportSession QUANTIZE: prepare_pt2e, calibration on the samples, convert_pt2e",
        "The recipe's pt2e quantizers: the model is exported, observed, calibrated on the samples given to export, "
        "and converted to a reference q/dq model.", "float_vs_reference_sqnr_db"),
    "torch_export": (
        "ExportSession TORCH_EXPORT: torch.export.export of the (quantized) model",
        "torch.export captures the model the earlier stages made as an ATen-dialect program.",
        "float_vs_reference_sqnr_db"),
    "to_edge_transform_and_lower": (
        "ExportSession TO_EDGE_TRANSFORM_AND_LOWER: edge dialect and the recipe's partitioners",
        "The program in ExecuTorch's edge dialect with the recipe's partitioners applied: what they take becomes "
        "delegate calls.", "reference_vs_fused_sqnr_db"),
    "to_edge": ("ExportSession TO_EDGE: edge dialect", "The program in ExecuTorch's edge dialect.",
                "reference_vs_fused_sqnr_db"),
    "to_backend": ("ExportSession TO_BACKEND: the recipe's partitioners", "What the partitioners take becomes "
                   "delegate calls.", "reference_vs_fused_sqnr_db"),
    "edge_program_manager_transform": (
        "ExportSession EDGE_PROGRAM_MANAGER_TRANSFORM: the recipe's edge passes", "The recipe's edge-program "
        "passes.", "reference_vs_fused_sqnr_db"),
    "to_executorch": (
        "ExportSession TO_EXECUTORCH: out variants, memory planning, .pte bytes",
        "to_executorch plans memory and serialises the program; its buffer is the .pte.",
        "fused_vs_runtime_sqnr_db"),
}
