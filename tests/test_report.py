"""The standalone HTML report: one file, every stage, inline SVG, opened by a real browser offline."""
import re
import subprocess
import sys

import pytest

from quantviz.flows import FLOWS
STAGES = FLOWS["fx"].names  # the default flow's stages
from quantviz_devtools.browser import dump_dom, require_chromium
from quantviz_devtools.tools import require_tool

pytestmark = pytest.mark.e2e


def test_report_opens_in_chromium_offline_with_every_stage(tmp_path):
    require_tool("dot")  # the report's inline SVG needs graphviz
    require_chromium()
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "quantviz.cli", "report", "sample:digits_cnn", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert not re.search(r"""(src|href)=["']https?:""", text)  # nothing to fetch
    dom = dump_dom(out.as_uri())
    for stage in STAGES:
        assert f'id="stage-{stage}"' in dom
    sections = re.findall(r'<section id="stage-(\w+)" class="stage">(.*?)</section>', dom, re.S)
    with_svg = {name for name, body in sections if "<svg" in body}
    assert with_svg == set(STAGES) - {"run"}  # run has no graph: it runs the .pte
    assert 'id="qv_conv1"' in dom  # the trace stage's conv node, findable by id
    assert "dq → conv2d → q" in dom and "dq → relu → q" in dom  # fx: conv and relu are separate patterns
    assert "float_accuracy" in dom and 'id="stage-summary"' in dom
    charts = re.search(r'<section id="charts" class="charts">(.*?)</section>', dom, re.S)
    assert charts, "no Charts section"
    # default flow: no quantviz kernels and no sensitivity run, so SQNR per node and accuracy
    figures = re.findall(r'<figure class="chart" id="chart-(\w+)">', charts.group(1))
    assert figures == ["sqnr_by_node", "accuracy_bars"]
    assert charts.group(1).count("<svg") == 2 and "<script" not in charts.group(1)
