"""Synthetic graph models shaped like quantized CNNs, of any size, for benchmarks and scale tests.

    g = synthetic_graph(10_000)
    len(g.nodes)   # 10000

Each layer is ``weight -> dq`` and ``dq(activation) -> conv -> q``; every third layer closes a residual
``dq, dq -> add -> q``. Module paths nest as ``stages.S.blocks.B.convJ`` like a real network's.
"""
from __future__ import annotations

from quantviz.graph.model import GraphView, NodeView, QParams
from quantviz.graph.patterns import find_patterns

_Q = QParams(scheme="per_tensor", dtype="torch.int8", scale=0.02, zero_point=0, quant_min=-128, quant_max=127)


def synthetic_graph(n_nodes: int, blocks_per_stage: int = 16, stage: str = "synthetic") -> GraphView:
    nodes: list[NodeView] = [NodeView("x", "x", "placeholder", "x", "input", shape=[1, 16, 32, 32])]
    nodes.append(NodeView("q_in", "q_in", "call_function", "quantized_decomposed.quantize_per_tensor.default",
                          "quantize", inputs=["x"], qparams=_Q))
    last_q, skip_q, layer = "q_in", "q_in", 0
    while len(nodes) < n_nodes - 2:
        s, b, j = layer // (blocks_per_stage * 3), (layer // 3) % blocks_per_stage, layer % 3
        path = f"stages.{s}.blocks.{b}.conv{j}"
        i = layer

        def add(name: str, kind: str, target: str, inputs: list[str], qp: QParams | None = None,
                op: str = "call_function", mpath: str | None = path) -> None:
            nodes.append(NodeView(name, name, op, target, kind, inputs=inputs, qparams=qp, module_path=mpath,
                                  module_type="Conv2d" if target.endswith("convolution.default") else None,
                                  shape=[1, 16, 32, 32], dtype="torch.float32"))

        add(f"w{i}", "parameter", f"w{i}", [], op="placeholder", mpath=None)
        add(f"dqw{i}", "dequantize", "quantized_decomposed.dequantize_per_tensor.default", [f"w{i}"], _Q)
        add(f"dq{i}", "dequantize", "quantized_decomposed.dequantize_per_tensor.default", [last_q], _Q)
        add(f"conv{i}", "float_op", "aten.convolution.default", [f"dq{i}", f"dqw{i}"])
        add(f"q{i}", "quantize", "quantized_decomposed.quantize_per_tensor.default", [f"conv{i}"], _Q)
        last_q = f"q{i}"
        if j == 2:  # residual add closing the block
            bpath = f"stages.{s}.blocks.{b}"
            add(f"dqa{i}", "dequantize", "quantized_decomposed.dequantize_per_tensor.default", [last_q], _Q,
                mpath=bpath)
            add(f"dqs{i}", "dequantize", "quantized_decomposed.dequantize_per_tensor.default", [skip_q], _Q,
                mpath=bpath)
            add(f"add{i}", "float_op", "aten.add.Tensor", [f"dqa{i}", f"dqs{i}"], mpath=bpath)
            add(f"qa{i}", "quantize", "quantized_decomposed.quantize_per_tensor.default", [f"add{i}"], _Q,
                mpath=bpath)
            last_q = skip_q = f"qa{i}"
        layer += 1
    nodes.append(NodeView("dq_out", "dq_out", "call_function", "quantized_decomposed.dequantize_per_tensor.default",
                          "dequantize", inputs=[last_q], qparams=_Q))
    nodes.append(NodeView("output", "output", "output", "output", "output", inputs=["dq_out"]))
    return GraphView(stage=stage, nodes=nodes, patterns=find_patterns(nodes))
