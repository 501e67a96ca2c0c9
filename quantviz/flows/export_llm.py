"""export_llm: ExecuTorch's own LLM path (``python -m executorch.extension.llm.export.export_llm --config FILE
key=value ...``) run step by step: export_llm's ``LLMEdgeManager`` stages, each a page with its graph::

    config = PipelineConfig(llm_config="llama_xnnpack.yaml", llm_overrides=("+base.params=params.json",))
    pipe = Pipeline(llm_spec(config), config).run()
    pipe.pte_bytes()      # the bytes export_llm writes with that configuration

The XNNPACK lowering path (``_to_edge_and_lower_llama_xnnpack``) only: other backends' configurations stop at
pt2e_quantize, naming it. Multimethod configurations (prefill and decode) are not run.
"""
from quantviz.config import PipelineConfig
from quantviz.flows.base import Absent, Flow, OwnModel
from quantviz.model_spec import ModelSpec
from quantviz.stages import llm_emit, llm_export, llm_lower, llm_quantize, llm_run, llm_source

def build(config: PipelineConfig) -> ModelSpec:
    """The model the LlmConfig names (``quantviz.llm_config.llm_spec``)."""
    from quantviz.llm_config import llm_spec

    return llm_spec(config)


FLOW = Flow(
    "export_llm", "ExecuTorch's export_llm (an LlmConfig YAML and key=value overrides), step by step",
    slots=(llm_source.STAGE, llm_export.STAGE, llm_quantize.STAGE,
           Absent("calibrate", "export_llm calibrates inside pt2e_quantize (on the example inputs, or lm-eval tasks "
                               "when quantization.calibration_tasks is set)"),
           llm_lower.STAGE, llm_emit.STAGE, llm_run.STAGE),
    roles={"float_graph": "export", "reference": "pt2e_quantize", "lowered": "lower", "program": "to_executorch",
           "delegated": "lower", "runtime": "run"},
    default_backend="xnnpack",  # the XNNPACK lowering path only (other backends' configurations stop, named)
    example=PipelineConfig(llm_config="llm.yaml"), rank=4,
    own_model=OwnModel(build, "quantviz run export_llm --llm-config FILE.yaml [--llm-set KEY=VALUE ...]",
                       "a prefill of the example tokens and decode steps in the runtime (the run stage)"))
