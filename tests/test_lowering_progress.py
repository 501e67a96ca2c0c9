"""Progress from inside ExecuTorch's lowering calls (quantviz.lowering_progress): the edge steps and the
partitions, k of n, reported to the thread that asked, and the calls' results unchanged."""
from __future__ import annotations

import threading

import torch

from quantviz.lowering_progress import lowering_progress


class TwoBlocks(torch.nn.Module):
    """Two linears with a cumsum between (not taken by XNNPACK): two partitions."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.b(torch.cumsum(self.a(x), -1))


def lower(events: list | None):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(TwoBlocks().eval(), (torch.randn(2, 8),))
    partitioner = XnnpackPartitioner()
    if events is None:
        return to_edge_transform_and_lower(program, partitioner=[partitioner])
    with lowering_progress(lambda f, t: events.append((f, t)), [partitioner], edge_share=0.3):
        return to_edge_transform_and_lower(program, partitioner=[partitioner])


def test_edge_steps_and_partitions_k_of_n_are_reported_in_order():
    events: list = []
    lowered = lower(events)
    texts = [t for _, t in events]
    assert texts[0].startswith("functionalizing the graph")
    assert any(t.startswith("converting to the edge dialect") for t in texts)
    assert any(t.startswith("edge dialect: ") for t in texts)
    assert "2 partition(s) found" in texts
    assert texts.index("partition 1/2 extracted") < texts.index("partition 2/2 extracted")
    assert texts[-1] == "partition 2/2 compiled by XnnpackBackend"
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # edge fills 0..0.3, delegation 0.3..1
    assert max(f for f, t in events if "edge" in t or "function" in t) <= 0.3
    delegates = [n for n in lowered.exported_program().graph.nodes if "call_delegate" in str(n.target)]
    assert len(delegates) == 2


def test_other_threads_and_calls_outside_the_block_report_nothing():
    events: list = []
    lower(None)  # hooks installed by the other test or not: outside a block, silent
    other = threading.Thread(target=lower, args=(None,))
    with lowering_progress(lambda f, t: events.append(t)):
        other.start()
        other.join()
    assert events == []


def test_the_edge_and_delegate_stages_send_their_progress_events():
    from quantviz import Pipeline, PipelineConfig
    from quantviz.model_spec import ModelSpec

    events: list = []
    spec = ModelSpec(name="two_blocks", model=TwoBlocks().eval(), example_inputs=(torch.randn(2, 8),))
    pipe = Pipeline(spec, PipelineConfig(flow="pt2e", backend="xnnpack", until="delegate"),
                    on_event=lambda e: events.append((e.stage, e.text)) if e.kind == "progress" else None).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    edge = [t for s, t in events if s == "edge"]
    delegate = [t for s, t in events if s == "delegate"]
    assert edge[-2].startswith("converting to the edge dialect") and edge[-1].startswith("edge dialect: ")
    assert delegate[-1] == f"partition {pipe.results['delegate'].metrics['delegate_calls']}/" \
                           f"{pipe.results['delegate'].metrics['delegate_calls']} compiled by XnnpackBackend"
