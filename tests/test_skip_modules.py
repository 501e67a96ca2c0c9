"""pt2e's SkipModulesQuantizer: a module kept float, and the nodes that would share quantization parameters with
its (now float) output stay float too, so prepare_pt2e can resolve every shared spec."""
import pytest
import torch
from torch import nn

from quantviz import ModelSpec, Pipeline, PipelineConfig


class ConvReshape(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).reshape(x.shape[0], -1))  # the reshape shares the conv's output qparams


@pytest.mark.e2e
def test_a_skipped_conv_whose_output_a_reshape_shares_runs_to_the_runtime(monkeypatch):
    from quantviz.quantizers import skip_modules

    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 6)
    spec = ModelSpec("conv_reshape", ConvReshape().eval(), (x,), calibration_batches=[(x,)])
    pipe = Pipeline(spec, PipelineConfig(flow="pt2e", skip_modules=("conv",))).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    convert = pipe.results["convert"].graph
    assert [p.ops for p in convert.patterns if "conv2d" in p.ops] == []  # the conv stays float
    assert any("linear" in p.ops for p in convert.patterns)  # the rest is quantized
    monkeypatch.setattr(skip_modules, "drop_dangling_shared_specs", lambda model: [])
    before = Pipeline(spec, PipelineConfig(flow="pt2e", skip_modules=("conv",), until="prepare")).run()
    assert "KeyError" in before.failed.error.message  # what prepare_pt2e said before the fix
