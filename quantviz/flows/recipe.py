"""recipe: ExecuTorch's export recipes. quantviz calls ``executorch.export.export(model, samples, recipe)`` itself,
once, and shows every stage of the ``ExportSession`` it returns as a stage of its own (``quantviz.stages.session``),
then runs the .pte like every flow.

Which stages a session has depends on the recipe (its ``pipeline_stages``, or ExecuTorch's default pipeline for an
``nn.Module``: SOURCE_TRANSFORM, QUANTIZE, TORCH_EXPORT, TO_EDGE_TRANSFORM_AND_LOWER, EDGE_PROGRAM_MANAGER_TRANSFORM
when the lowering recipe has edge passes, TO_EXECUTORCH), so the slots are resolved per config.
"""
from __future__ import annotations

from quantviz.backends import recipe_type_of
from quantviz.config import PipelineConfig
from quantviz.flows.base import Flow
from quantviz.measure.readable import Precision
from quantviz.stages import run
from quantviz.stages.session import session_stage


def session_stage_types(config: PipelineConfig) -> list[str]:
    """The StageType values the recipe's session runs for an ``nn.Module``, in order (as
    ``ExportSession._get_default_pipeline`` chooses them when the recipe names none)."""
    from executorch.export import ExportRecipe

    recipe = ExportRecipe.get_recipe(recipe_type_of(config.recipe))
    if recipe.pipeline_stages:
        return [getattr(s, "value", s) for s in recipe.pipeline_stages]
    types = ["source_transform", "quantize", "torch_export", "to_edge_transform_and_lower"]
    if recipe.lowering_recipe and recipe.lowering_recipe.edge_manager_transform_passes:
        types.append("edge_program_manager_transform")
    return types + ["to_executorch"]


def calibrates(config: PipelineConfig) -> bool:
    """The static pt2e recipes calibrate (``*static*``, Arm's ``tosa_int8``/``a16w8``, Ethos-U's); the dynamic and
    weight-only ones calibrate nothing."""
    return "static" in config.recipe or any(k in config.recipe for k in ("tosa_int8", "a16w8", "ethos_u"))


def precision(config: PipelineConfig) -> Precision:
    """What the recipe's name says: int16 activations for a16w8, 4-bit weights for int4w; else int8."""
    activations = "int16" if config.activation_bits == 16 or "a16w8" in config.recipe else "int8"
    return Precision(activations, 4 if "int4w" in config.recipe else 8)


# executorch.export.export takes a dict of modules, one per method; quantviz's session stages hand it forward only
REFUSAL = ("quantviz's recipe flow hands executorch.export.export the model's forward only (not yet a dict of "
           "modules, one per method)")


def resolve(config: PipelineConfig) -> Flow:
    """The recipe flow for ``config.recipe``: the session's stages, then quantviz's run stage."""
    types = session_stage_types(config)
    stages = tuple(session_stage(t, first=i == 0) for i, t in enumerate(types))
    reference = next((t for t in ("torch_export", "quantize") if t in types), types[0])
    lowered = next((t for t in reversed(types) if t not in ("to_executorch",)), types[-1])
    return Flow("recipe", f"executorch.export.export with the {config.recipe} recipe",
                slots=(*stages, run.STAGE),
                roles={"session": types[0], "reference": reference, "lowered": lowered, "program": "to_executorch",
                       "runtime": "run"},
                default_backend=None, calibration=calibrates, precision_of=precision, methods_refusal=REFUSAL)


FLOW = Flow("recipe", "executorch.export.export with an ExportRecipe (--recipe NAME): every ExportSession stage",
            slots=(run.STAGE,), roles={}, resolve=resolve, example=PipelineConfig(recipe="xnnpack_fp32"),
            default_backend=None,  # the recipe names its backend (quantviz.backends.backend_of: recipe_backend)
            rank=3, calibration=calibrates, precision_of=precision, methods_refusal=REFUSAL)
