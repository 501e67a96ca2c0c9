"""The graph model read off real stage artifacts: kinds, qparams, patterns, delegates, JSON."""
import json

from quantviz.graph import GraphView
from quantviz.graph.snapshot import normalise_module_path


def test_fx_convert_of_conv_add_has_four_q_four_dq_and_three_patterns(flow):
    g = flow("sample:conv_add", until="convert").results["convert"].graph
    counts = g.kind_counts()
    assert counts["quantize"] == 4 and counts["dequantize"] == 4
    labels = sorted(p.label() for p in g.patterns)
    assert labels == ["dq → add → relu → q", "dq → conv2d → q", "dq → conv2d → q"]
    add = next(p for p in g.patterns if p.op == "add")
    assert len(add.input_dqs) == 2 and add.output_q is not None
    assert set(add.members) >= set(add.input_dqs) | {add.anchor, add.output_q}


def test_qparams_are_decoded_per_tensor(flow):
    g = flow("sample:conv_add", until="convert").results["convert"].graph
    q = [n for n in g.nodes if n.kind == "quantize"]
    for n in q:
        assert n.qparams.scheme == "per_tensor"
        assert n.qparams.dtype == "torch.uint8" and (n.qparams.quant_min, n.qparams.quant_max) == (0, 255)
        assert 0 < n.qparams.scale < 1 and 0 <= n.qparams.zero_point <= 255


def test_capture_has_weight_q_dq_and_module_paths(flow):
    g = flow("sample:conv_add", until="capture").results["capture"].graph
    assert g.kind_counts()["quantize"] == 6 and g.kind_counts()["dequantize"] == 6
    convs = [n for n in g.nodes if n.target == "aten.conv2d.default"]
    assert sorted(n.module_path for n in convs) == ["conv1", "conv2"]
    assert all(n.shape == [1, 8, 16, 16] and n.dtype == "torch.float32" for n in convs)
    assert all(n.source and n.source.startswith("sample_models/conv_add.py:") for n in convs)


def test_per_channel_weights_report_axis_and_channel_count(flow):
    g = flow("sample:digits_cnn", flow="pt2e", per_channel=True, until="convert").results["convert"].graph
    per_channel = [n for n in g.nodes if n.qparams and n.qparams.scheme == "per_channel"]
    assert len(per_channel) == 3  # conv1, conv2, fc weights
    assert sorted(n.qparams.channels for n in per_channel) == [8, 10, 16]
    assert all(n.qparams.axis == 0 and len(n.qparams.scale) == n.qparams.channels for n in per_channel)


def test_dynamic_linear_pattern_has_choose_qparams_and_no_output_q(flow):
    g = flow("sample:mlp_dynamic", flow="pt2e", mode="dynamic", until="convert").results["convert"].graph
    assert g.kind_counts()["choose_qparams"] == 3
    linears = [p for p in g.patterns if p.op == "linear"]
    assert len(linears) == 3 and all(p.output_q is None for p in linears)
    dq_act = [n for n in g.nodes if n.kind == "dequantize" and n.qparams and n.qparams.scheme == "dynamic"]
    assert len(dq_act) == 3


def test_observers_are_their_own_kind(flow):
    g = flow("sample:conv_add", until="prepare").results["prepare"].graph
    assert g.kind_counts()["observer"] == 4 and not g.patterns


def test_json_round_trip_keeps_every_field(flow):
    g = flow("sample:conv_add", until="edge").results["edge"].graph
    text = json.dumps(g.to_dict())
    back = GraphView.from_dict(json.loads(text))
    assert back.nodes == g.nodes and back.patterns == g.patterns
    assert back.kind_counts() == g.kind_counts()


def test_module_path_normalisation():
    assert normalise_module_path("L['self'].features[0].conv") == "features.0.conv"
    assert normalise_module_path("features.3.block.1") == "features.3.block.1"
