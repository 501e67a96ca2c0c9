"""Benchmark: each quantviz kernel against the float reference path (dequantize -> float op -> quantize, as the
reference model runs it in PyTorch) and, for add, against ExecuTorch's own quantized_decomposed::add; plus the
same quantviz kernels inside the ExecuTorch runtime.

    .venv/bin/python bench/kernels.py              # prints a Markdown table (median of 30 runs)
    .venv/bin/python bench/kernels.py --threads 1  # single-threaded PyTorch for the float path

Sizes: add/mul 1x64x56x56, conv2d 1x32x56x56 -> 64 (3x3, pad 1), depthwise 1x64x56x56 (3x3), linear 128x512 ->
512, pools 1x64x56x56 (2x2), mean 1x256x7x7. int8. The kernels are single-threaded.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def cases():
    from quantviz_kernels.tests.cases import _finish, in_qparams, weights

    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randint(-128, 128, shape, generator=g, dtype=torch.int32).to(torch.int8)  # noqa: E731
    q = in_qparams(torch.int8, 0.05)
    yield "add", "1x64x56x56", _finish("add", torch.int8, "b", (r(1, 64, 56, 56), *q, r(1, 64, 56, 56), *q))
    yield "mul", "1x64x56x56", _finish("mul", torch.int8, "b", (r(1, 64, 56, 56), *q, r(1, 64, 56, 56), *q))
    w, ws, wz = weights(g, 64, 32, 3, 3, per_channel=True)
    yield "conv2d", "1x32x56x56 -> 64, 3x3", _finish("conv2d", torch.int8, "b", (
        r(1, 32, 56, 56), *q, w, ws, wz, torch.randn(64), [1, 1], [1, 1], [1, 1], 1))
    w, ws, wz = weights(g, 64, 1, 3, 3, per_channel=True)
    yield "conv2d", "depthwise 1x64x56x56, 3x3", _finish("conv2d", torch.int8, "b", (
        r(1, 64, 56, 56), *q, w, ws, wz, torch.randn(64), [1, 1], [1, 1], [1, 1], 64))
    w, ws, wz = weights(g, 512, 512, per_channel=True)
    yield "linear", "128x512 -> 512", _finish("linear", torch.int8, "b", (r(128, 512), *q, w, ws, wz, torch.randn(512)))
    yield "max_pool2d", "1x64x56x56, 2x2", _finish("max_pool2d", torch.int8, "b", (
        r(1, 64, 56, 56), *q, [2, 2], [2, 2], [0, 0], [1, 1]))
    yield "avg_pool2d", "1x64x56x56, 2x2", _finish("avg_pool2d", torch.int8, "b", (
        r(1, 64, 56, 56), *q, [2, 2], [2, 2], [0, 0]))
    yield "mean", "1x256x7x7", _finish("mean", torch.int8, "b", (r(1, 256, 7, 7), *q, True))
    yield "hardtanh", "1x64x56x56", _finish("hardtanh", torch.int8, "b", (r(1, 64, 56, 56), *q, 0.0, 6.0))


class RefAdd(torch.nn.Module):
    """The reference add pattern (dequantize, add, quantize); QuantFusionPass turns it into ExecuTorch's
    quantized_decomposed::add, whose kernel exists in the runtime only. Its patterns are uint8-only."""

    def __init__(self, args: tuple):
        super().__init__()
        self.args = args

    def forward(self, a, b):
        from quantviz_kernels.reference import reference

        return reference("add", a, *self.args[1:5], b, *self.args[6:])


def executorch_add_ms(args: tuple, repeat: int) -> tuple[float, list[str]]:
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    tensors = (args[0], args[5])
    edge = to_edge(torch.export.export(RefAdd(args), tensors),
                   compile_config=EdgeCompileConfig(_check_ir_validity=False))
    program = edge.transform([QuantFusionPass(_fix_node_meta_val=True)]).to_executorch()
    ops = [o.name for o in program.executorch_program.execution_plan[0].operators]
    buffer = program.buffer
    method = _load_for_executorch_from_buffer(buffer)
    return median_ms(lambda: method.forward(tensors), repeat), ops


def runtime_ms(op: str, args: tuple, repeat: int) -> float:
    from quantviz_kernels.tests.test_runtime import OpModule
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    module = OpModule(op, args)
    tensors = tuple(args[i] for i in module.slots)
    program = to_edge(torch.export.export(module, tensors),
                      compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch()
    buffer = program.buffer
    method = _load_for_executorch_from_buffer(buffer)
    ms = median_ms(lambda: method.forward(tensors), repeat)
    del method, buffer
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the float path (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed::add for ATen
    from quantviz_kernels import load
    from quantviz_kernels.reference import reference

    load()
    print(f"torch threads: {torch.get_num_threads()}; median of {args.repeat} runs, ms\n")
    print("| kernel | size | quantviz (ATen) | quantviz (runtime) | float reference path | speed-up vs float |")
    print("|---|---|---|---|---|---|")
    for op, size, case in cases():
        kernel = getattr(torch.ops.quantviz, op)
        ours = median_ms(lambda: kernel(*case.args), args.repeat)
        ref = median_ms(lambda: reference(op, *case.args), args.repeat)
        rt = runtime_ms(op, case.args, args.repeat)
        print(f"| {op} | {size} | {ours:.3f} | {rt:.3f} | {ref:.3f} | {ref / ours:.1f}x |")
    # ExecuTorch's own quantized add, against quantviz::add, both in the runtime; uint8 (ExecuTorch's patterns)
    from quantviz_kernels.tests.cases import _finish, in_qparams

    g = torch.Generator().manual_seed(1)
    a, b = (torch.randint(0, 256, (1, 64, 56, 56), generator=g, dtype=torch.int32).to(torch.uint8) for _ in "ab")
    q = in_qparams(torch.uint8, 0.05)
    case = _finish("add", torch.uint8, "b", (a, *q, b, *q))
    et, ops = executorch_add_ms(case.args, args.repeat)
    assert ops == ["quantized_decomposed::add"], ops
    ours = runtime_ms("add", case.args, args.repeat)
    print(f"\nadd, uint8 1x64x56x56, in the runtime: quantviz::add.out {ours:.3f} ms, "
          f"ExecuTorch quantized_decomposed::add.out {et:.3f} ms ({et / ours:.1f}x)")


if __name__ == "__main__":
    main()
