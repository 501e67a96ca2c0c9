"""The app's "export_llm configuration" source (ui/llm_config_picker.py) and the pure logic it shares with the CLI
(quantviz/llm_config.py): the shipped YAML files found through the executorch package, the overrides read one a
line with the bad line named, the tiny-model overrides that make a shipped file run here, the fix for a file the
configuration names that does not exist, and the same PipelineConfig and LlmConfig from the CLI's flags and the
app's widgets. The page itself in a real browser: tests/test_llm_config_browser.py."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ui/ is the app's folder, not an installed package

from quantviz.cli import build_parser, config_from_args  # noqa: E402
from quantviz.llm_config import (LlmConfigError, bare_command, llm_spec, load_llm_config, parse_overrides,  # noqa: E402
                                 tiny_checkpoint, tiny_overrides, tiny_params)
from ui.llm_config_picker import (DEFAULT_YAML, default_overrides_text, model_key, overrides_text,  # noqa: E402
                                  picked_config, yaml_choices)


def test_the_shipped_yamls_are_found_through_the_executorch_package():
    import executorch

    choices = yaml_choices()
    package = Path(next(iter(executorch.__path__))).resolve()
    assert DEFAULT_YAML in choices and "qwen3/qwen3_xnnpack_q8da4w.yaml" in choices
    assert len(choices) >= 5
    for label, path in choices.items():
        assert path.is_file() and path.suffix == ".yaml" and path.parent.name == "config"
        assert path.resolve().is_relative_to(package / "examples" / "models")
        assert label == f"{path.parts[-3]}/{path.name}"


def test_the_header_names_a_shipped_yaml_and_the_override_files_by_their_names_once():
    from quantviz.config import PipelineConfig
    from quantviz.flows import describe_config

    config = PipelineConfig(flow="export_llm", llm_config=str(yaml_choices()[DEFAULT_YAML]),
                            llm_overrides=("+base.params=/tmp/x/params.json", "quantization.group_size=32"))
    assert describe_config(config) == ("export_llm llama/llama_xnnpack.yaml, +base.params=params.json, "
                                       "quantization.group_size=32")
    own = PipelineConfig(flow="export_llm", llm_config="my/own.yaml")  # not a shipped file: the path as given
    assert describe_config(own) == "export_llm my/own.yaml"


def test_overrides_are_read_one_a_line_and_a_bad_line_is_named():
    text = "# the tiny model\n+base.params=p.json\n\n  quantization.group_size=32  \nexport.max_seq_length=32 +x.y=1\n"
    assert parse_overrides(text) == ("+base.params=p.json", "quantization.group_size=32", "export.max_seq_length=32",
                                     "+x.y=1")
    assert parse_overrides("") == ()
    with pytest.raises(LlmConfigError) as caught:
        parse_overrides("quantization.group_size=32\n\nquantization.qmode 8da4w\n")
    err = caught.value
    assert err.line == 3 and err.stage == "source_transform"
    assert err.cause == "override line 3 'quantization.qmode' has no '='"
    assert "key=value" in err.fix and err.fix_overrides is None
    with pytest.raises(LlmConfigError, match=r"override line 1 '=32' does not start with a dotted key"):
        parse_overrides("=32")


def test_a_bad_value_or_file_names_what_is_wrong_without_a_traceback(tmp_path):
    yaml = yaml_choices()[DEFAULT_YAML]
    with pytest.raises(LlmConfigError) as caught:
        picked_config(yaml, "quantization.group_size=32\nquantization.group_size=many\n")
    assert caught.value.cause.startswith("override 2 'quantization.group_size=many' is not a valid LlmConfig value")
    with pytest.raises(LlmConfigError, match=r"override 1 '\+model.no_such_key=1' .*Key 'no_such_key' not in"):
        picked_config(yaml, "+model.no_such_key=1")
    # read as export_llm's Hydra reads it: a key the file lacks needs +, one it has must not take a single +; the
    # fix (++, add or replace) is offered only where it reads, and then it does
    for given in ("base.params=/p.json", "+quantization.group_size=16"):
        with pytest.raises(LlmConfigError) as caught:
            picked_config(yaml, f"quantization.qmode=8da4w\n{given}")
        forced = "++" + given.lstrip("+")
        assert caught.value.line == 2 and caught.value.fix_overrides == ("quantization.qmode=8da4w", forced)
        assert load_llm_config(str(yaml), caught.value.fix_overrides) is not None
    with pytest.raises(LlmConfigError) as caught:
        picked_config(yaml, "model.no_such_key=1")  # ++ would not read either (LlmConfig has no such key): no fix
    assert caught.value.fix_overrides is None and "Could not override 'model.no_such_key'" in caught.value.cause
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  use_kv_cache: [True\n")  # a YAML syntax error
    with pytest.raises(LlmConfigError, match="is not a valid LlmConfig YAML"):
        picked_config(broken, "")
    with pytest.raises(LlmConfigError, match="does not exist"):
        picked_config(tmp_path / "none.yaml", "")


def test_every_shipped_yaml_reads_as_export_llm_reads_it_but_three_that_say_why(monkeypatch):
    """Read with Hydra as export_llm reads them: llama_attention_sink.yaml (its empty ``export:``) and
    qwen2_5_xnnpack_q8da4w.yaml read (a merge into LlmConfig refused both before); the tiny overrides fit every file."""
    monkeypatch.delenv("LORA_ADAPTER_CHECKPOINT", raising=False)
    refused = {}
    for label, path in yaml_choices().items():
        try:
            llm = load_llm_config(str(path), tiny_overrides())
            assert llm.base.params == str(tiny_params()) and llm.export.max_context_length == 32, label
        except LlmConfigError as exc:
            refused[label] = exc
    assert set(refused) == {"qwen2_5/qwen2_5_coder_xnnpack_q8da4w.yaml", "qwen3/qwen3_multimethod.yaml",
                            "qwen3/qwen3_xnnpack_lora.yaml"}, sorted(refused)
    assert "Key 'metadata=" in refused["qwen2_5/qwen2_5_coder_xnnpack_q8da4w.yaml"].cause  # the file's own typo
    lora = refused["qwen3/qwen3_multimethod.yaml"]
    assert "'LORA_ADAPTER_CHECKPOINT' not found" in lora.cause and "environment variable LORA_ADAPTER_CHECKPOINT" in lora.fix
    assert len(yaml_choices()) - len(refused) >= 15


def test_the_tiny_overrides_make_a_shipped_yaml_a_small_model():
    assert tiny_params().is_file() and default_overrides_text() == "\n".join(tiny_overrides())
    config = picked_config(yaml_choices()[DEFAULT_YAML], default_overrides_text())
    assert config.flow == "export_llm" and config.llm_overrides == tiny_overrides()
    llm = load_llm_config(config.llm_config, config.llm_overrides)
    assert llm.base.params == str(tiny_params()) and llm.base.checkpoint == str(tiny_checkpoint())
    assert llm.quantization.group_size == 32 and llm.export.max_seq_length == 32
    assert llm.quantization.qmode == "8da4w" and llm.model.use_kv_cache  # the shipped file's own
    spec = llm_spec(config)
    assert sum(p.numel() for p in spec.model.parameters()) < 200_000  # 2 layers of width 64, vocabulary 512
    # a checkpoint, not export_llm's to_empty model (whose norms and RoPE tables are uninitialised memory): the
    # same model each time, so quantviz, reproduce.py and the bare export_llm call build the same one
    again = llm_spec(config).model.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in spec.model.state_dict().items())
    assert all(torch.isfinite(v).all() for v in again.values() if v.is_floating_point())
    assert model_key(config) != model_key(picked_config(config.llm_config, "quantization.group_size=16\n"
                                                        + default_overrides_text()))


def test_a_missing_params_file_gets_the_tiny_model_as_a_visible_fix():
    yaml = yaml_choices()[DEFAULT_YAML]
    config = picked_config(yaml, "+base.params=/nowhere/params.json\nquantization.group_size=64")
    with pytest.raises(LlmConfigError) as caught:
        llm_spec(config)
    err = caught.value
    assert err.cause == "base.params '/nowhere/params.json' named by the configuration do not exist on this machine"
    # the user's own override kept; the tiny params and what it needs added, the group size left as the user set it
    assert err.fix_overrides == ("quantization.group_size=64", f"++base.params={tiny_params()}",
                                 f"++base.checkpoint={tiny_checkpoint()}", "++export.max_seq_length=32",
                                 "++export.max_context_length=32")
    assert f"++base.params={tiny_params()}" in err.fix
    fixed = picked_config(yaml, overrides_text(err.fix_overrides))  # what Apply writes into the text area
    assert llm_spec(fixed).name == "export_llm:llama3"


def test_the_cli_and_the_app_make_the_same_config_of_a_yaml_and_overrides():
    yaml = str(yaml_choices()[DEFAULT_YAML])
    overrides = (*tiny_overrides(), "+base.model_class=llama3", "quantization.embedding_quantize='8,0'")
    args = build_parser().parse_args(["run", "export_llm", "--llm-config", yaml,
                                      *[f"--llm-set={o}" for o in overrides]])
    cli = config_from_args(args)
    app = picked_config(yaml, "\n".join(overrides))
    assert app == cli and bare_command(app) == bare_command(cli)
    from_cli, from_app = load_llm_config(cli.llm_config, cli.llm_overrides), load_llm_config(yaml, app.llm_overrides)
    assert asdict(from_app) == asdict(from_cli)
    assert from_app.quantization.embedding_quantize == "8,0"


@pytest.mark.e2e
def test_the_app_shows_a_bad_override_with_its_stage_cause_and_fix():
    from streamlit.testing.v1 import AppTest

    from ui.llm_config_picker import OWN

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["source"] = "export_llm configuration"  # opened on the source: no sample's run starts
    at.session_state["llm_yaml"] = OWN  # and no file yet: nothing runs
    at.run()
    assert not at.exception
    assert at.text_area(key="llm_overrides").value == default_overrides_text()  # prefilled, on screen
    assert "tiny model" in " ".join(c.value for c in at.sidebar.caption)
    assert "Type the path of an LlmConfig YAML file" in " ".join(i.value for i in at.sidebar.info)
    at.text_area(key="llm_overrides").set_value("+base.params=/nowhere/params.json")
    at.text_input(key="llm_yaml_path").set_value(str(yaml_choices()[DEFAULT_YAML])).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "Stage source_transform" in shown and "base.params '/nowhere/params.json'" in shown
    assert "Fix:" in shown and "Traceback" not in shown
    assert [b.label for b in at.button if b.key == "llm_apply_fix"] == ["Apply these overrides"]  # (unit test above)
    at.text_area(key="llm_overrides").set_value("quantization.group_size=32\nexport.max_seq_length 32").run()
    assert "override line 2 'export.max_seq_length' has no '='" in " ".join(e.value for e in at.error)
    assert not at.exception


def test_reproduce_py_of_an_export_llm_run_names_the_yaml_and_the_overrides():
    from quantviz.script import script_from_calls

    config = picked_config(yaml_choices()[DEFAULT_YAML], default_overrides_text())
    calls = {"source_transform": [f"llm_config = load_llm_config({config.llm_config!r}, {config.llm_overrides!r})"],
             "run": ["logits = module.forward((prompt, torch.tensor([0])))  # prefill"]}
    text = script_from_calls("export_llm", config, calls)
    compile(text, "reproduce.py", "exec")
    assert "load_model" not in text and "torch.manual_seed(SEED)" in text
    assert f"+base.params={tiny_params()}" in text and "llama_xnnpack.yaml" in text  # the fix is in the script
    assert " ".join(bare_command(config)) in text  # and the bare export_llm call with the same configuration
    assert "# logits = module.forward(" in text  # quantviz's runtime comparison: shown, not run


@pytest.mark.slow
def test_reproduce_py_of_an_export_llm_run_writes_the_same_pte(tmp_path):
    """The script runs export_llm's own steps with the YAML and the overrides: the same bytes as quantviz (the
    tiny model names a seeded checkpoint; without one export_llm leaves RMSNorm weights uninitialised)."""
    import subprocess

    from quantviz import Pipeline
    from quantviz.script import reproduce_script

    config = picked_config(yaml_choices()[DEFAULT_YAML], default_overrides_text()).with_changes(
        until="to_executorch")
    pipe = Pipeline(llm_spec(config), config).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    (tmp_path / "reproduce.py").write_text(reproduce_script("export_llm", pipe))
    done = subprocess.run([sys.executable, "reproduce.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "model.pte").read_bytes() == pipe.pte_bytes()
