"""The export_llm flow: an LlmConfig YAML (the one ExecuTorch ships for XNNPACK: KV cache, custom SDPA, 8da4w,
4-bit embeddings) with key=value overrides on a tiny llama3 params file this test writes, run as export_llm's own
LLMEdgeManager steps. Fast tests: the config merge, the stage list, the model and its dict inputs. The slow test runs
the whole flow (about a minute of CPU) and the bare ``python -m executorch.extension.llm.export.export_llm`` call
with the same configuration: the same .pte bytes, and decode steps reaching the runtime with dict inputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantviz import PipelineConfig
from quantviz.backends import backend_name
from quantviz.config import ConfigError, config_flags
from quantviz.errors import LoadError
from quantviz.flows import flow_of
from quantviz.llm_config import bare_command, llm_spec, load_llm_config, shipped_llm_configs
from quantviz.stages.llm_run import decode_inputs, flat

PARAMS = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512, "multiple_of": 32,
          "norm_eps": 1e-5, "rope_theta": 500000.0, "use_scaled_rope": True}
STAGES = ("source_transform", "export", "pt2e_quantize", "lower", "to_executorch", "run")


def xnnpack_yaml() -> Path:
    return next(p for p in shipped_llm_configs() if p.parts[-3:] == ("llama", "config", "llama_xnnpack.yaml"))


def tiny_llama(folder: Path) -> PipelineConfig:
    """A 2-layer llama3 params file and a seeded checkpoint in ``folder``, and the config naming them."""
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs

    (folder / "params.json").write_text(json.dumps(PARAMS))
    torch.manual_seed(0)
    model = construct_transformer(ModelArgs(**PARAMS, max_seq_len=32, max_context_len=32))
    torch.save(model.state_dict(), folder / "ckpt.pth")
    overrides = ("+base.model_class=llama3", f"+base.params={folder / 'params.json'}",
                 f"+base.checkpoint={folder / 'ckpt.pth'}", "quantization.group_size=32",
                 "+export.max_seq_length=32", "+export.max_context_length=32")
    return PipelineConfig(llm_config=str(xnnpack_yaml()), llm_overrides=overrides)


def test_llm_config_merges_the_file_and_the_overrides(tmp_path):
    config = tiny_llama(tmp_path)
    llm = load_llm_config(config.llm_config, config.llm_overrides)
    assert llm.model.use_kv_cache and llm.model.use_sdpa_with_kv_cache  # from the YAML
    assert llm.quantization.qmode == "8da4w" and llm.quantization.embedding_quantize == "4,32"
    assert llm.quantization.group_size == 32 and llm.export.max_seq_length == 32  # from the overrides
    assert llm.base.params.endswith("params.json")
    assert config.flow == "export_llm" and backend_name(config) == "xnnpack"  # --llm-config is the export_llm flow
    assert "--llm-config" in config_flags(config) and "--flow" not in config_flags(config)
    assert bare_command(config)[:5] == ["python", "-m", "executorch.extension.llm.export.export_llm", "--config",
                                        config.llm_config]
    with pytest.raises(LoadError, match="key=value"):
        load_llm_config(config.llm_config, ("quantization.group_size",))
    with pytest.raises(LoadError, match="not a valid LlmConfig"):
        load_llm_config(config.llm_config, ("model.no_such_key=1",))
    with pytest.raises(ConfigError, match="needs an LLM config"):
        PipelineConfig(flow="export_llm")


def test_the_flow_is_export_llms_steps_each_a_stage(tmp_path):
    flow = flow_of(tiny_llama(tmp_path))
    assert flow.names == STAGES
    assert "calibrate" in flow.absent
    assert flow.roles["program"] == "to_executorch" and flow.roles["lowered"] == "lower"


def test_the_model_takes_tokens_and_a_dict_and_decode_steps_follow_it(tmp_path):
    spec = llm_spec(tiny_llama(tmp_path))
    tokens, options = spec.example_inputs
    assert tokens.shape == (1, 3) and set(options) == {"input_pos"} and spec.input_names == ("tokens", "attn_options")
    steps = decode_inputs(spec.example_inputs, 4, PARAMS["vocab_size"], dynamic=True)
    assert [s[0].shape[1] for s in steps] == [3, 1, 1, 1]  # a prefill, then one token a call
    assert [int(s[1]["input_pos"]) for s in steps] == [0, 3, 4, 5]
    assert [t.shape for t in flat(steps[1])] == [(1, 1), (1,)]  # the runtime's flat inputs
    with torch.no_grad():  # the float model (export_llm's own loader) runs them, its KV cache filling up
        logits = [spec.model(*s) for s in steps]
    assert logits[-1].shape[-1] == PARAMS["vocab_size"] and torch.isfinite(logits[-1]).all()
    fixed = decode_inputs(spec.example_inputs, 3, PARAMS["vocab_size"], dynamic=False)
    assert [int(s[1]["input_pos"]) for s in fixed] == [0, 3, 6] and fixed[2][0].shape == (1, 3)


def test_cli_wants_export_llm_as_the_model_name(tmp_path, capsys):
    from quantviz.cli import main

    config = tiny_llama(tmp_path)
    args = ["run", "sample:digits_cnn", "--llm-config", config.llm_config, "--out", str(tmp_path / "o")]
    assert main(args) == 1
    assert "an export_llm configuration names its own model: quantviz run export_llm --llm-config" in \
        capsys.readouterr().err
    assert main(["run", "export_llm", "--out", str(tmp_path / "o")]) == 1  # the flow's model without its config
    assert "quantviz run export_llm --llm-config FILE.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_export_llm_config_through_quantviz_matches_the_bare_call(tmp_path):
    from quantviz import Pipeline

    config = tiny_llama(tmp_path)
    pipe = Pipeline(llm_spec(config), config).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert tuple(pipe.results) == STAGES
    for name in ("export", "pt2e_quantize", "lower", "to_executorch"):  # every step a graph
        assert pipe.results[name].graph is not None and pipe.results[name].graph.nodes
    assert pipe.results["export"].metrics["mutable_buffers"] == 2 * PARAMS["n_layers"]  # k and v caches
    assert any("SDPACustom 0 -> 2" in n for n in pipe.results["source_transform"].notes)
    assert pipe.results["lower"].metrics["delegates"] >= 1
    n = pipe.numerics()
    assert n["decode_steps"] == 4 and n["reference_vs_runtime_sqnr_db"] > 30 and n["float_vs_runtime_sqnr_db"] > 10
    assert any("{'input_pos': [3]}" in note for note in pipe.results["run"].notes)

    out = tmp_path / "bare.pte"
    cmd = [sys.executable, *bare_command(config)[1:], f"+export.output_name={out}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes() == pipe.pte_bytes()


@pytest.mark.slow
def test_a_shipped_qwen2_5_config_with_the_tiny_overrides_matches_the_bare_call(tmp_path):
    """The shipped Qwen2.5 XNNPACK q8da4w file, read as export_llm reads it (Hydra compose, ``++`` overrides), with
    quantviz's tiny llama3 params: the bare call and quantviz write the same .pte bytes."""
    from quantviz import Pipeline
    from quantviz.llm_config import tiny_overrides

    name = ("qwen2_5", "config", "qwen2_5_xnnpack_q8da4w.yaml")
    yaml = next(p for p in shipped_llm_configs() if p.parts[-3:] == name)
    config = PipelineConfig(llm_config=str(yaml), llm_overrides=tiny_overrides())
    pipe = Pipeline(llm_spec(config), config).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] > 30

    out = tmp_path / "bare.pte"
    cmd = [sys.executable, *bare_command(config)[1:], f"++export.output_name={out}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes() == pipe.pte_bytes()
