"""Models return what model libraries return: a tensor, a tuple, or a dict. The first tensor (in torch.export's
flattening order, which is the runtime's output order) is the one compared end to end."""
import pytest
import torch
from torch import nn

from quantviz import ModelSpec, Pipeline, PipelineConfig
from quantviz.runtime import first_output


def test_first_output_follows_the_flattening_order():
    a, b = torch.ones(2), torch.zeros(3)
    assert first_output(a) is a
    assert first_output((a, b)) is a and first_output([a, 7]) is a
    assert first_output({"logits": a, "aux": b}) is a
    with pytest.raises(TypeError, match="no tensor"):
        first_output({"n": 3})


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return {"logits": self.fc(h), "features": h}


@pytest.mark.e2e
def test_a_model_returning_a_dict_reaches_run_and_is_compared():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    spec = ModelSpec("dict_net", DictNet().eval(), (x,), calibration_batches=[(torch.randn(1, 3, 16, 16),)] * 4)
    pipe = Pipeline(spec, PipelineConfig(flow="pt2e", partitioner="xnnpack")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    n = pipe.numerics()
    assert n["float_vs_runtime_sqnr_db"] > 15 and n["reference_vs_runtime_sqnr_db"] > 15
