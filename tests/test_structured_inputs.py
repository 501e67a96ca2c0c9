"""Structured inputs: a factory returning ``(model, (tokens, {"input_pos": pos}))`` (forward takes a dict, as
export_llm's models do) is accepted, and the flow reaches the runtime, which takes the flat leaves."""
from __future__ import annotations

import pytest
import torch

from quantviz import Pipeline, PipelineConfig
from quantviz.errors import LoadError
from quantviz.loading import as_spec, load_model, nested_tensors

FACTORY = '''
import torch
from torch import nn


class DictLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(64, 32), nn.Embedding(16, 32)
        self.fc, self.head = nn.Linear(32, 64), nn.Linear(64, 64)

    def forward(self, tokens, options):
        x = self.tok(tokens) + self.pos(options["input_pos"] + torch.arange(tokens.shape[1]))
        return self.head(torch.relu(self.fc(x)))


def make():
    torch.manual_seed(0)
    return DictLM().eval(), (torch.randint(0, 64, (1, 4)), {"input_pos": torch.tensor([2])})
'''


def test_nested_inputs_are_accepted_and_other_values_refused():
    ids, pos = torch.zeros(1, 4, dtype=torch.long), torch.tensor([0])
    assert nested_tensors((ids, {"input_pos": pos})) and nested_tensors([ids, [pos]])
    assert not nested_tensors({"input_pos": 3}) and not nested_tensors({})
    spec = as_spec((torch.nn.Identity(), (ids, {"input_pos": pos})), "m")
    assert isinstance(spec.example_inputs[1], dict)
    with pytest.raises(LoadError, match="dicts, lists and tuples of tensors"):
        as_spec((torch.nn.Identity(), (ids, {"input_pos": "start"})), "m")


def test_dict_inputs_reach_the_runtime(tmp_path):
    (tmp_path / "dict_lm.py").write_text(FACTORY)
    spec = load_model(f"{tmp_path / 'dict_lm.py'}:make")
    pipe = Pipeline(spec, PipelineConfig(flow="pt2e")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    n = pipe.numerics()
    assert n["reference_vs_runtime_sqnr_db"] >= 30 and 20 < n["float_vs_runtime_sqnr_db"] < float("inf")
    leaves = pipe.results["run"].artifact.runtime_leaves[0]
    assert leaves[0].shape == (1, 4, 64)
    from quantviz.timing.measure import time_pipeline

    timing = time_pipeline(pipe, repeat=2, with_float=False)  # ETDump runs get the leaves too
    assert len(timing.report.total.runs_ms) == 2 and all(t > 0 for t in timing.report.total.runs_ms)


def test_a_buffer_the_program_writes_is_shown_as_a_mutable_buffer():
    from quantviz.graph import snapshot
    from quantviz.render.dot import node_label, node_tooltip

    class Cache(torch.nn.Module):  # a KV-cache-like buffer updated in place at the given position
        def __init__(self):
            super().__init__()
            self.register_buffer("k_cache", torch.zeros(8, 4))
            self.register_buffer("scale", torch.ones(4))

        def forward(self, x, options):
            self.k_cache.index_copy_(0, options["input_pos"], x)
            return self.k_cache.sum(0) * self.scale

    ep = torch.export.export(Cache(), (torch.randn(1, 4), {"input_pos": torch.tensor([2])}))
    view = snapshot(ep, "export")
    marked = {n.mutable_buffer for n in view.nodes if n.mutable_buffer}
    assert marked == {"k_cache"}  # the read-only buffer is not marked
    node = next(n for n in view.nodes if n.mutable_buffer)
    assert "mutable buffer" in node_label(node) and "KV cache" in node_tooltip(node)
    assert view.to_dict()["nodes"][view.nodes.index(node)]["mutable_buffer"] == "k_cache"
