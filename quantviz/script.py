"""A Python script that reproduces a pipeline with bare torch/executorch calls.

    text = reproduce_script("sample:digits_cnn", pipe)
    Path("reproduce.py").write_text(text)   # python reproduce.py writes model.pte

The stage calls are the ones each stage recorded (``StageResult.calls``); quantviz is used only to load
the model and its data, and for its two small passes. ``script_from_calls`` builds the same script from calls
kept elsewhere (a recovery's winning trial, run in a worker); with ``measure`` the script also prints the
float-vs-runtime SQNR on the evaluation data, as the run stage measures it.
"""
from __future__ import annotations

from quantviz.config import PipelineConfig
from quantviz.pipeline import Pipeline

PREAMBLE = '''"""Reproduces quantviz's run of {model_ref} with {config}.{header}"""
import copy

import torch
from executorch.exir import ExecutorchBackendConfig

import executorch.kernels.quantized  # noqa: F401  quantized_decomposed kernels and out variants
from quantviz import PipelineConfig, load_model
from quantviz.model_spec import call, flat_inputs  # noqa: F401  model(*args, **kwargs); the runtime's flat inputs
from quantviz.stages.trace import SkippingTracer  # noqa: F401  used when modules are skipped

spec = load_model({model_ref!r})
model, example_inputs = spec.model, spec.example_inputs
example_kwargs, dynamic_shapes = spec.example_kwargs, spec.dynamic_shapes  # keyword inputs, dynamic dims (or none)
calibration_batches = spec.calibration_data({batches})
'''

LLM_PREAMBLE = '''"""Reproduces quantviz's run of the export_llm configuration {path} with the overrides {overrides}:
export_llm's own LLMEdgeManager steps, as quantviz ran them (writes model.pte). The same configuration through
export_llm itself:

    {bare}
{header}"""
import torch

import executorch.kernels.quantized  # noqa: F401  quantized_decomposed kernels and out variants
from executorch.examples.models.llama.export_llama_lib import get_quantizer_and_quant_params
from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner
from quantviz.llm_config import SEED, load_llm_config
from quantviz.stages.llm_emit import additional_passes

torch.manual_seed(SEED)  # the weights quantviz drew when the configuration names no checkpoint
'''

MEASURE = '''# --- the figure quantviz reports: float vs runtime SQNR on the evaluation data ---
from quantviz.data import evaluation_data
from quantviz.measure.metrics import sqnr_db
from quantviz.runtime import first_output

data = evaluation_data(spec, PipelineConfig(held_out={held_out}))
with torch.no_grad():
    floats = torch.cat([first_output(call(model, batch)).flatten() for batch in data.batches])
runtime = torch.cat([first_output(list(module.forward(flat_inputs(batch)))).flatten() for batch in data.batches])
print(f"float vs runtime SQNR {{sqnr_db(floats, runtime)!r}} dB on {{data.describe()}}")
'''


def reproduce_script(model_ref: str, pipe: Pipeline, header: str = "", measure: bool = False) -> str:
    """The script for every stage of ``pipe`` that ran successfully."""
    failed = pipe.failed
    calls = {name: r.calls for name, r in pipe.results.items() if r.ok}
    why = failed.error.message if failed is not None and failed.error else ""
    return script_from_calls(model_ref, pipe.config, calls, failed.name if failed else None, why, header, measure)


def script_from_calls(model_ref: str, config: PipelineConfig, calls: dict[str, list[str]],
                      failed: str | None = None, why: str = "", header: str = "", measure: bool = False) -> str:
    """The script from each stage's calls, in order (``calls``: stage -> lines, the stages that ran); ``header``
    goes into the docstring; ``measure`` adds the SQNR print when the run stage ran::

        script_from_calls("sample:digits_cnn", trial_config, trial.calls, measure=True)
    """
    text = f"\n\n{header.rstrip()}\n".replace('"""', "'''") if header else ""
    if config.llm_config:  # export_llm: the configuration is the model; its runtime comparison stays quantviz's
        from quantviz.llm_config import bare_command

        lines = [LLM_PREAMBLE.format(path=config.llm_config, overrides=" ".join(config.llm_overrides) or "(none)",
                                     bare=" ".join(bare_command(config)), header=text.lstrip("\n"))]
    else:
        lines = [PREAMBLE.format(model_ref=model_ref, config=config, batches=config.calibration_batches,
                                 header=text)]
    for name, stage_calls in calls.items():
        lines.append(f"# --- {name} ---")
        commented = bool(config.llm_config) and name == "run"  # prompt and decode steps: quantviz's, for reading
        lines.extend(f"# {line}" if commented else line for line in stage_calls)
        lines.append("")
    if failed is not None:
        lines.append(f"# stage '{failed}' failed in quantviz: {why}")
    if "emit" in calls:
        lines.append('print("wrote model.pte,", len(et_program.buffer), "bytes")')
    if measure and "run" in calls:
        lines.append(MEASURE.format(held_out=config.held_out))
    return "\n".join(lines) + "\n"
