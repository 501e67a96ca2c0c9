"""ExecuTorch's ``export_llm`` configuration as quantviz reads it: an ``LlmConfig`` YAML file plus ``key=value``
overrides, merged the way ``python -m executorch.extension.llm.export.export_llm --config FILE key=value`` merges
them (the dataclass schema, then the file, then the overrides; Hydra's ``+key=value`` means the same here), and
the :class:`~quantviz.model_spec.ModelSpec` of the model it names::

    llm = load_llm_config("llama_xnnpack.yaml", ("+base.params=params.json", "quantization.group_size=32"))
    llm.model.use_kv_cache          # True
    spec = llm_spec(PipelineConfig(llm_config="llama_xnnpack.yaml", llm_overrides=(...)))
    spec.example_inputs             # (tokens (1, 1), {"input_pos": tensor([0])}): forward(tokens, attn_options)

The YAML files ExecuTorch ships (``executorch/examples/models/*/config/*.yaml``) are listed by
:func:`shipped_llm_configs`. They name no weights this machine has (a checkpoint is given on export_llm's command
line; without ``base.params`` export_llm builds a 4096-wide layer): :func:`tiny_overrides` are the overrides that make
any of them run here in seconds (quantviz's 2-layer llama3 params file and a seeded random checkpoint, groups of 32), which
the app prefills where the user sees and edits them. :func:`parse_overrides` reads overrides one a line (the app's
text area), naming the line at fault; the CLI's ``--llm-set`` and the app give the same ``PipelineConfig``
(:func:`llm_pipeline_config`)::

    config = llm_pipeline_config(shipped_llm_configs()[0], parse_overrides("\n".join(tiny_overrides())))
"""
from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from quantviz.config import PipelineConfig
from quantviz.errors import LoadError
from quantviz.model_spec import ModelSpec

SEED = 0  # weights are drawn from this seed when the configuration names no checkpoint (export_llm draws unseeded)
STAGE = "source_transform"  # the stage that reads the configuration (the model is built from it before it runs)
ENV_MISSING = re.compile(r"Environment variable '([^']+)' not found")  # OmegaConf's ${oc.env:NAME}, unset
OVERRIDE = re.compile(r"^\+{0,2}[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")  # key=value, Hydra's +key=value


class LlmConfigError(LoadError):
    """An export_llm configuration that cannot be read or built, as the CLI prints it and the app shows it: the stage
    that reads it, the ``cause`` (naming the file, or the override and its line), the ``fix`` in words and, when a
    config change is the fix, ``fix_overrides`` (the whole override list that applies it: the user sees it)."""

    def __init__(self, cause: str, fix: str, fix_overrides: tuple[str, ...] | None = None, line: int | None = None):
        self.stage, self.cause, self.fix, self.fix_overrides, self.line = STAGE, cause, fix, fix_overrides, line
        super().__init__(f"{cause}; fix: {fix}")

    def __reduce__(self) -> tuple:  # pickles whole: a session worker's load error reaches the app as itself
        return (type(self), (self.cause, self.fix, self.fix_overrides, self.line))


TINY_PARAMS = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512, "multiple_of": 32,
               "norm_eps": 1e-5, "rope_theta": 500000.0, "use_scaled_rope": True}  # a llama3 shape, 2 layers


def tiny_params() -> Path:
    """quantviz's tiny llama3 params file (``TINY_PARAMS``: 2 layers, width 64, vocabulary 512), written under the
    temporary folder when missing or different, so export_llm's own loader reads it like any params file."""
    path = Path(tempfile.gettempdir()) / "quantviz" / "export_llm_tiny_params.json"
    text = json.dumps(TINY_PARAMS, indent=1) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)  # atomic: another process never reads half a file
    return path


TINY_CONTEXT = 32  # tokens


def tiny_checkpoint() -> Path:
    """A checkpoint for ``TINY_PARAMS``: random weights drawn from ``SEED`` (llama_transformer's own initialisation),
    written next to the params file when missing. Without a checkpoint export_llm builds the model on the meta device
    and ``to_empty``s it: the weights with ``reset_parameters`` are drawn, but the RMSNorm weights and the RoPE tables
    keep whatever memory they got, so two processes never make the same model (nor the same .pte)."""
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs

    path = tiny_params().with_name(f"export_llm_tiny_seed{SEED}_ctx{TINY_CONTEXT}.pth")
    if not path.is_file():
        with torch.random.fork_rng():  # the caller's random state is left alone
            torch.manual_seed(SEED)
            model = construct_transformer(ModelArgs(**TINY_PARAMS, max_seq_len=TINY_CONTEXT,
                                                    max_context_len=TINY_CONTEXT))
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(model.state_dict(), partial)
        partial.replace(path)
    return path


def tiny_overrides() -> tuple[str, ...]:
    """The overrides that make a shipped YAML run here with no download: the tiny params file and its seeded random
    checkpoint, int4 groups of 32 (the shipped 128 exceed its width) and a 32-token context."""
    # ++ (add or replace, in Hydra's grammar): every shipped file takes them, whether it names the key or not
    return (f"++base.params={tiny_params()}", f"++base.checkpoint={tiny_checkpoint()}",
            "++quantization.group_size=32", f"++export.max_seq_length={TINY_CONTEXT}",
            f"++export.max_context_length={TINY_CONTEXT}")


def parse_overrides(text: str) -> tuple[str, ...]:
    """``key=value`` overrides one a line (blank lines and ``#`` comments skipped; a line of several
    space-separated overrides, as on export_llm's command line, is split); LlmConfigError naming the first bad line."""
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for item in line.split():
            if not OVERRIDE.match(item):
                why = "has no '='" if "=" not in item else "does not start with a dotted key"
                raise LlmConfigError(f"override line {number} {item!r} {why}",
                                     "write it as key=value, e.g. quantization.group_size=32 (one a line, as "
                                     "export_llm takes them on its command line)", line=number)
            out.append(item)
    return tuple(out)


def override_key(item: str) -> str:
    """``quantization.group_size`` of ``+quantization.group_size=32``."""
    return item.lstrip("+").split("=", 1)[0]


def llm_pipeline_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> PipelineConfig:
    """The ``PipelineConfig`` of an export_llm YAML and its overrides: what ``quantviz run export_llm --llm-config
    FILE --llm-set KEY=VALUE ...`` and the app's "export_llm configuration" source both run."""
    return PipelineConfig(llm_config=str(path), llm_overrides=tuple(overrides))


def shipped_label(path: Path) -> str:
    """``llama/llama_xnnpack.yaml``: a shipped YAML by its model folder and name."""
    return f"{path.parts[-3]}/{path.name}"


def load_llm_config(path: str, overrides: tuple[str, ...] = ()) -> Any:
    """The ``LlmConfig`` of ``path`` (a YAML file) with ``overrides`` applied exactly as ``export_llm --config FILE
    key=value ...`` reads them (Hydra composes the file with the overrides, ``+key`` adding a key the file lacks,
    ``++key`` adding or replacing; then the merge into ``LlmConfig``); a LlmConfigError naming the file or the
    override at fault."""
    file = Path(path)
    if not file.is_file():
        raise LlmConfigError(f"the LLM configuration {path!r} does not exist",
                             "choose one of the YAML files ExecuTorch ships (quantviz.llm_config."
                             "shipped_llm_configs()), or give the path of an existing file")
    bad = [o for o in overrides if not OVERRIDE.match(o)]
    if bad:
        raise LlmConfigError(f"LLM config overrides are key=value, as export_llm takes them: {', '.join(bad)}",
                             "write each as key=value, e.g. quantization.group_size=32")
    try:
        return _composed(file, tuple(overrides))
    except Exception as exc:  # noqa: BLE001 - sorted below: a configuration error, or re-raised
        if not isinstance(exc, _config_errors()):
            raise
        error = exc
    in_file = _error_of(file, ())  # what is at fault: the file alone, else the first override that breaks it
    if in_file is not None:
        variable = ENV_MISSING.search(str(in_file))  # the file reads ${oc.env:NAME}: the environment, not the file
        raise LlmConfigError(f"the LLM configuration {path!r} is not a valid LlmConfig YAML: {_first_line(in_file)}",
                             f"set the environment variable {variable[1]} (the file reads it) before starting "
                             "quantviz, as export_llm needs it too" if variable else
                             "correct the file: its keys are LlmConfig's (base, model, export, quantization, "
                             "backend, ...)") from in_file
    for number in range(1, len(overrides) + 1):
        at = _error_of(file, tuple(overrides[:number]))
        if at is None:
            continue
        item = overrides[number - 1]
        forced = "++" + item.lstrip("+")  # Hydra's add-or-replace: the fix when only the + prefix was wrong
        fixed = (*overrides[:number - 1], forced, *overrides[number:])
        if forced != item and _error_of(file, fixed[:number]) is None:
            raise LlmConfigError(f"override {number} {item!r} does not fit the file: {_first_line(at)}",
                                 f"write it {forced} (++ adds the key or replaces the file's value)",
                                 fix_overrides=tuple(fixed), line=number) from at
        raise LlmConfigError(f"override {number} {item!r} is not a valid LlmConfig value: {_first_line(at)}",
                             "correct or remove it (the keys and values are LlmConfig's)", line=number) from at
    raise LlmConfigError(f"the LLM configuration {path!r} with {list(overrides)} is not a valid LlmConfig: "
                         f"{_first_line(error)}", "set the value it names with an override, or correct the file"
                         ) from error


def _first_line(exc: BaseException) -> str:
    """The message's own lines, without OmegaConf's indented ``full_key: ...`` details."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith(" ")]
    return " ".join(lines) if lines else type(exc).__name__


def _config_errors() -> tuple[type[BaseException], ...]:
    """What a bad file or override raises in Hydra's composition and OmegaConf's merge."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    return HydraException, OmegaConfBaseException, ValueError, YAMLError


def _error_of(file: Path, overrides: tuple[str, ...]) -> Exception | None:
    """The configuration error reading ``file`` with ``overrides`` raises, or None when they read."""
    try:
        _composed(file, overrides)
    except Exception as exc:  # noqa: BLE001 - a configuration error is returned, any other re-raised
        if isinstance(exc, _config_errors()):
            return exc
        raise
    return None


_HYDRA_LOCK = threading.Lock()  # Hydra's compose API keeps its state in a process-wide singleton


def _composed(file: Path, overrides: tuple[str, ...]) -> Any:
    """export_llm's reading of ``file`` and ``overrides`` (``hydra_main``: the file as Hydra's primary config, the
    overrides in Hydra's grammar, then ``OmegaConf.merge(OmegaConf.structured(LlmConfig), composed)``)."""
    from executorch.extension.llm.export.config.llm_config import LlmConfig
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    with _HYDRA_LOCK:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(file.parent.resolve()), version_base=None):
                composed = compose(config_name=file.name, overrides=list(overrides))
        finally:
            GlobalHydra.instance().clear()
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LlmConfig), composed))


def missing_files(llm: Any) -> list[str]:
    """The files the LlmConfig names (``base.params``, ``base.checkpoint``) that do not exist here."""
    return [f"base.{key} {getattr(llm.base, key)!r}" for key in ("params", "checkpoint")
            if getattr(llm.base, key) and not Path(getattr(llm.base, key)).is_file()]


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
    missing = missing_files(llm)
    if missing:
        kept = tuple(o for o in config.llm_overrides if override_key(o) not in ("base.params", "base.checkpoint"))
        added = tuple(o for o in tiny_overrides() if override_key(o) not in map(override_key, kept))
        raise LlmConfigError(f"{' and '.join(missing)} named by the configuration do not exist on this machine",
                             "give their paths with overrides, or run quantviz's tiny model (random weights): "
                             + " ".join(added), fix_overrides=(*kept, *added))
    torch.manual_seed(SEED)
    try:
        manager = _load_llama_model(copy.deepcopy(llm))
    except Exception as exc:  # noqa: BLE001 - export_llm's loader failed on this configuration
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise LlmConfigError(f"export_llm's loader could not build {llm.base.model_class.value}: "
                             f"{type(exc).__name__}: {first}",
                             "export_llm's own loader raised this, so the bare export_llm call stops here too: "
                             "change what the message names with an override, or check base.model_class, "
                             "base.params and base.checkpoint against each other (a checkpoint must fit the params' "
                             "shape)") from exc
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
