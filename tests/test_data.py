"""Every figure names its data: evaluation, calibration (said to flatter the model) or synthetic held-out batches
drawn like the example inputs (token ids over the vocabulary, mask rows, floats with the example's spread)."""
import torch
from torch import nn

from quantviz import ModelSpec, PipelineConfig
from quantviz.data import evaluation_data, synthetic_batches


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.position = nn.Embedding(16, 8)  # smaller than the vocabulary: not the one token ids are drawn over
        self.words = nn.Embedding(300, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask, features):
        h = self.words(input_ids) * attention_mask.unsqueeze(-1) + features.mean()
        return self.head(h.mean(1))


def spec(**kw) -> ModelSpec:
    ids = torch.tensor([[5, 250, 7, 0], [9, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    feats = torch.full((2, 3), 2.0) + torch.arange(6.0).reshape(2, 3)
    return ModelSpec("enc", Encoder().eval(), (ids, mask, feats),
                     input_names=("input_ids", "attention_mask", "features"), **kw)


def test_without_evaluation_data_the_figures_say_they_are_on_the_calibration_data():
    data = evaluation_data(spec(), PipelineConfig())
    assert data.source == "calibration" and "flatter the model" in data.describe()
    assert "--held-out" in data.describe()


def test_the_factorys_evaluation_batches_are_used_and_named():
    s = spec(eval_batches=[(spec().example_inputs, torch.tensor([0, 1]))])
    data = evaluation_data(s, PipelineConfig())
    assert data.source == "evaluation" and data.labelled and len(data.batches) == 1


def test_synthetic_held_out_batches_are_drawn_like_the_examples_and_labelled_so():
    s = spec()
    data = evaluation_data(s, PipelineConfig(held_out=5))
    assert data.source == "synthetic held-out" and len(data.batches) == 5 and not data.labelled
    assert data.describe().startswith("synthetic held-out: 5 batch(es)")
    ids, mask, feats = zip(*data.batches)
    ids, mask, feats = torch.stack(ids), torch.stack(mask), torch.stack(feats)
    assert ids.dtype == torch.int64 and int(ids.min()) >= 0 and int(ids.max()) < 300  # the word vocabulary
    assert int(ids.max()) >= 16  # not the 16 positions
    assert mask.dtype == torch.int64 and set(mask.unique().tolist()) <= {0, 1}
    rows = {tuple(r.tolist()) for r in s.example_inputs[1]}
    assert all(tuple(r.tolist()) in rows for b in mask for r in b)  # each mask row is one of the example's
    ex = s.example_inputs[2]
    assert abs(float(feats.mean()) - float(ex.mean())) < 1.0 and feats.dtype == torch.float32
    assert "input_ids: token ids in [0, 300) (words)" in data.drawn
    again, _ = synthetic_batches(s, 5)
    assert all(torch.equal(a, b) for x, y in zip(again, data.batches) for a, b in zip(x, y))  # the same every run


def test_held_out_is_read_by_the_run_stage_only():
    from quantviz.flows import flow_of

    flow = flow_of(PipelineConfig())
    readers = [st.name for st in flow.stages if "held_out" in st.reads_under(PipelineConfig())]
    assert readers == ["run"]
