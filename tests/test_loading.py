import textwrap

import pytest
import torch

from quantviz import LoadError, ModelSpec, load_model
from quantviz.model_spec import call
from quantviz.runtime import first_output
from sample_models import SAMPLES


def test_every_sample_loads_with_inputs_that_run_the_model():
    for name in SAMPLES:
        spec = load_model(f"sample:{name}")
        assert spec.description == SAMPLES[name]
        out = call(spec.model, spec.example)  # keyword inputs too (kwargs_decoder)
        out = first_output(out)  # prefill_decode's forward returns (logits, keys, values)
        assert isinstance(out, torch.Tensor) and out.numel() > 0


def test_unknown_sample_lists_the_available_ones():
    with pytest.raises(LoadError) as e:
        load_model("sample:does_not_exist")
    assert "does_not_exist" in str(e.value)
    for name in SAMPLES:
        assert name in str(e.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        load_model(str(tmp_path / "missing.py") + ":f")


def test_missing_factory_lists_the_functions_in_the_file(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def make():\n    return None\n")
    with pytest.raises(LoadError) as e:
        load_model(f"{f}:nope")
    assert "no factory function 'nope'" in str(e.value) and "make" in str(e.value)


def test_wrong_return_value_says_what_a_factory_must_return(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def make():\n    return 42\n")
    with pytest.raises(LoadError) as e:
        load_model(f"{f}:make")
    assert "returned int" in str(e.value) and "ModelSpec" in str(e.value)


def test_tuple_factory_becomes_a_spec(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(textwrap.dedent("""
        import torch
        def make():
            return torch.nn.Linear(4, 2), (torch.randn(1, 4),)
    """))
    spec = load_model(f"{f}:make")
    assert isinstance(spec, ModelSpec) and spec.example_inputs[0].shape == (1, 4)


def test_pt2_round_trip_and_refusal_of_pickles(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    ep = torch.export.export(model, (torch.randn(1, 4),))
    path = tmp_path / "m.pt2"
    torch.export.save(ep, str(path))
    spec = load_model(str(path))
    assert spec.exported_program is not None and spec.example_inputs[0].shape == (1, 4)

    pickled = tmp_path / "evil.pt2"
    torch.save({"a": 1}, str(pickled), _use_new_zipfile_serialization=False)
    with pytest.raises(LoadError, match="refusing|not a readable"):
        load_model(str(pickled))
    truncated = tmp_path / "cut.pt2"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(LoadError):
        load_model(str(truncated))


def test_digits_splits_are_disjoint_and_sized():
    from sample_models.digits_cnn import N_CALIB, N_EVAL, load_splits

    s = load_splits()
    assert len(s["calib"][1]) == N_CALIB and len(s["eval"][1]) == N_EVAL
    assert len(s["train"][1]) == 1797 - N_CALIB - N_EVAL
