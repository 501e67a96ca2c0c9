"""ExecuTorch's ``export_llm`` configuration as quantviz reads it: an ``LlmConfig`` YAML file plus ``key=value``
overrides, merged the way ``python -m executorch.extension.llm.export.export_llm --config FILE key=value`` merges
them (the dataclass schema, then the file, then the overrides; Hydra's ``+key=value`` means the same here), and
the :class:`~quantviz.model_spec.ModelSpec` of the model it names::

    llm = load_llm_config("llama_xnnpack.yaml", ("+base.params=params.json", "quantization.group_size=32"))
    llm.model.use_kv_cache          # True
    spec = llm_spec(PipelineConfig(llm_config="llama_xnnpack.yaml", llm_overrides=(...)))
    spec.example_inputs             # (tokens (1, 1), {"input_pos": tensor([0])}): forward(tokens, attn_options)

The YAML files ExecuTorch ships (``executorch/examples/models/*/config/*.yaml``) are listed by
:func:`shipped_llm_configs`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from quantviz.config import PipelineConfig
from quantviz.errors import LoadError
from quantviz.model_spec import ModelSpec

SEED = 0  # weights are drawn from this seed when the configuration names no checkpoint (export_llm draws unseeded)


def load_llm_config(path: str, overrides: tuple[str, ...] = ()) -> Any:
    """The ``LlmConfig`` of ``path`` (a YAML file) with ``overrides`` (``key=value`` or ``+key=value``) applied."""
    from executorch.extension.llm.export.config.llm_config import LlmConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    file = Path(path)
    if not file.is_file():
        raise LoadError(f"the LLM configuration {path!r} does not exist (`quantviz llm-configs` lists the YAML files "
                        "ExecuTorch ships)")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise LoadError(f"LLM config overrides are key=value, as export_llm takes them: {', '.join(bad)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(LlmConfig), OmegaConf.load(file),
                                 OmegaConf.from_dotlist([o.removeprefix("+") for o in overrides]))
        return OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError) as exc:
        raise LoadError(f"the LLM configuration {path!r} with {list(overrides)} is not a valid LlmConfig: "
                        f"{str(exc).splitlines()[0]}") from exc


def of_config(config: PipelineConfig) -> Any:
    """A fresh ``LlmConfig`` for ``config`` (export_llm's steps change the one they are given)."""
    return load_llm_config(config.llm_config, config.llm_overrides)


def bare_command(config: PipelineConfig) -> list[str]:
    """The export_llm command line of ``config``, as a user runs it."""
    return ["python", "-m", "executorch.extension.llm.export.export_llm", "--config", config.llm_config,
            *config.llm_overrides]


def llm_spec(config: PipelineConfig) -> ModelSpec:
    """The float model the configuration names (export_llm's own model class and loader, before its source
    transforms) with its example inputs: ``(tokens, {"input_pos": ...})`` with a KV cache, ``(tokens,)`` without."""
    from executorch.examples.models.llama.export_llama_lib import _load_llama_model

    llm = of_config(config)
    torch.manual_seed(SEED)
    try:
        manager = _load_llama_model(copy.deepcopy(llm))
    except Exception as exc:  # noqa: BLE001 - export_llm's loader failed on this configuration
        raise LoadError(f"export_llm's loader could not build {llm.base.model_class.value}: "
                        f"{type(exc).__name__}: {exc}") from exc
    inputs = tuple(manager.example_inputs)
    if manager.example_kwarg_inputs:
        inputs = (*inputs, dict(manager.example_kwarg_inputs))
    names = ("tokens", "attn_options")[:len(inputs)] if isinstance(inputs[-1], dict) else ("tokens",)
    return ModelSpec(name=f"export_llm:{llm.base.model_class.value}", model=manager.model.eval(),
                     example_inputs=inputs, input_names=names,
                     description=f"export_llm configuration {config.llm_config} {' '.join(config.llm_overrides)}")


def shipped_llm_configs() -> list[Path]:
    """The LlmConfig YAML files in the installed executorch wheel (examples/models/*/config)."""
    import executorch

    roots = [Path(p) / "examples" / "models" for p in executorch.__path__]  # a namespace package: no __file__
    return sorted(f for root in roots for f in root.glob("*/config/*.yaml"))
