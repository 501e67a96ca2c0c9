"""The text_lm sample (a character LM trained on pydoc_data.topics) and the language-model figures: perplexity,
next-token accuracy, top-1 agreement and greedy generation for float, reference and runtime, in summary.json, the
CLI's output and the run page's notes; ``--max-ppl-increase`` for compare and recover."""
from __future__ import annotations

import math

import pytest
import torch

from quantviz.measure.language import first_difference, greedy, perplexity, top1_agreement
from quantviz.recover.trial import Target, Trial
from sample_models import text_lm


# -- the sample ---------------------------------------------------------------------------------------------------
def test_held_out_text_is_disjoint_from_training_text():
    train, held = text_lm.topics()
    assert held and train and not set(train) & set(held)
    spec = text_lm.make_spec()
    training = text_lm.corpus(train)
    for (x,), _ in spec.eval_batches:  # no held-out window occurs in the training text
        assert text_lm.decode(x[0]) not in training
    assert text_lm.decode(spec.language_model.prompt[0]) not in training
    calib = {text_lm.decode(b[0][0]) for b in spec.calibration_batches}
    assert all(c in training for c in calib)  # calibration comes from the training text


def test_float_perplexity_is_far_below_the_uniform_vocabulary():
    spec = text_lm.make_spec()
    with torch.no_grad():
        logits = torch.cat([spec.model(*x) for x, _ in spec.eval_batches])
    targets = torch.cat([y for _, y in spec.eval_batches])
    ppl = perplexity(logits, targets)
    assert ppl < 10 < text_lm.VOCAB  # trained: 6.37 on these 1,024 held-out characters (uniform would be 97)
    assert spec.language_model is not None and spec.language_model.prompt.shape == spec.example_inputs[0].shape
    assert text_lm.decode(text_lm.encode("with x:\n")) == "with x:\n"


# -- the measures -------------------------------------------------------------------------------------------------
def test_perplexity_agreement_and_generation_measures():
    assert perplexity(torch.zeros(1, 4, 10), torch.zeros(1, 4, dtype=torch.long)) == pytest.approx(10.0)
    sure = torch.full((1, 2, 5), -30.0)
    sure[0, :, 3] = 30.0
    assert perplexity(sure, torch.tensor([[3, 3]])) == pytest.approx(1.0)
    a, b = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]), torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    assert top1_agreement(a, b) == 0.5
    assert first_difference([1, 2, 3], [1, 5, 3]) == 2 and first_difference([1, 2], [1, 2]) is None

    def count_up(window: torch.Tensor) -> torch.Tensor:  # logits whose argmax is the last token + 1
        return torch.nn.functional.one_hot(window + 1, 10).float()

    assert greedy(count_up, torch.tensor([[0, 1, 2]]), 4) == [3, 4, 5, 6]


def test_ppl_increase_target():
    target = Target("ppl_increase", 5.0)
    near = Trial((), "base", ok=True, sqnr_db=20.0, float_perplexity=4.0, runtime_perplexity=4.1)
    far = Trial((), "single", ok=True, sqnr_db=25.0, float_perplexity=4.0, runtime_perplexity=8.0)
    assert near.perplexity_increase_pct == pytest.approx(2.5)
    assert target.met(near) and not target.met(far) and target.score(near) > target.score(far)
    assert target.reached(far) == "ppl +100.0% (4.000 -> 8.000)"
    assert not target.met(Trial((), "base", ok=True, sqnr_db=30.0))  # no perplexity: not met


# -- end to end: torchao 8da4w to the ExecuTorch runtime ------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_pipe(flow):
    return flow("sample:text_lm", flow="torchao")


def test_language_figures_reach_the_runtime(lm_pipe):
    assert lm_pipe.ok, lm_pipe.failed and lm_pipe.failed.error
    n = lm_pipe.numerics()
    assert 1 < n["float_perplexity"] < 10
    for level in ("reference", "runtime"):
        assert n["float_perplexity"] <= n[f"{level}_perplexity"] < 2 * n["float_perplexity"]  # 8da4w: +6%
        assert 0.5 < n[f"{level}_top1_agreement"] <= 1.0
        assert 1 <= n[f"{level}_first_divergent_step"] <= n["generation_steps"] + 1
    assert n["runtime_next_token_accuracy"] == n["runtime_accuracy"]  # labels are the next characters
    assert n["runtime_perplexity_increase_pct"] == pytest.approx(
        100 * (n["runtime_perplexity"] / n["float_perplexity"] - 1))
    run = lm_pipe.results["run"]
    lang = run.artifact.language
    assert len(lang.generated["runtime"]) == lang.steps == 32 and lang.positions == 16 * 64
    step = lang.first_divergence["runtime"]
    if step is not None:  # the step named is where the tokens first differ
        assert lang.generated["runtime"][:step - 1] == lang.generated["float"][:step - 1]
        assert lang.generated["runtime"][step - 1] != lang.generated["float"][step - 1]
    assert any(note.startswith("language model, on pydoc_data.topics") for note in run.notes)
    assert any("greedy generation, 32 steps: runtime" in note for note in run.notes)


def test_language_figures_in_summary_and_cli(lm_pipe, capsys):
    from quantviz.cli import _check_ppl, _finish
    from quantviz.outputs import summary

    data = summary(lm_pipe)
    lm = data["language_model"]
    assert set(lm["perplexity"]) == {"float", "reference", "runtime"}
    assert lm["perplexity"]["runtime"] == data["numerics"]["runtime_perplexity"]
    assert math.isfinite(lm["top1_agreement_with_float"]["runtime"])
    assert len(lm["generation"]["text"]["float"]) == 32
    assert _finish(lm_pipe, "sample:text_lm") == 0
    out = capsys.readouterr().out
    assert "perplexity float 6.3" in out and "greedy generation, 32 steps: runtime" in out
    up = data["numerics"]["runtime_perplexity_increase_pct"]
    assert _check_ppl(data["numerics"], up + 1) == 0 and _check_ppl(data["numerics"], up - 1) == 3
    assert "more than" in capsys.readouterr().err
    assert _check_ppl({}, 5) == 3


def test_other_models_have_no_language_figures(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e")
    assert "float_perplexity" not in pipe.numerics() and pipe.results["run"].artifact.language is None
