"""The same inputs through the PyTorch operator and through a .pte in the ExecuTorch runtime give identical
bytes, for every operator, dtype and case; and the runtime library never registers twice."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from quantviz_kernels.tests.cases import all_cases

CASES = all_cases()


class OpModule(torch.nn.Module):
    """Calls one quantviz op; tensor arguments are the program's inputs, the rest are baked in."""

    def __init__(self, op: str, args: tuple):
        super().__init__()
        self.op, self.args = op, args
        self.slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]

    def forward(self, *tensors):
        args = list(self.args)
        for i, t in zip(self.slots, tensors):
            args[i] = t
        return getattr(torch.ops.quantviz, self.op)(*args)


def run_in_runtime(op: str, args: tuple) -> tuple[torch.Tensor, list[str]]:
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    module = OpModule(op, args)
    tensors = tuple(args[i] for i in module.slots)
    program = to_edge(torch.export.export(module, tensors),
                      compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch()
    buffer = program.buffer  # the runtime does not copy it: keep it alive while the module runs
    operators = [o.name + "." + o.overload for o in program.executorch_program.execution_plan[0].operators]
    out = _load_for_executorch_from_buffer(buffer).forward(tensors)[0]
    return out, operators


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_runtime_bytes_equal_the_pytorch_op(case):
    expected = getattr(torch.ops.quantviz, case.op)(*case.args)
    got, operators = run_in_runtime(case.op, case.args)
    assert operators == [f"quantviz::{case.op}.out"]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.numpy().tobytes() == expected.numpy().tobytes()


def test_loading_twice_is_a_no_op():
    from quantviz_kernels import load

    first = load()
    load.cache_clear()  # forget the in-process guard: the registries themselves must stop a second registration
    try:
        second = load()
    finally:
        load.cache_clear()
        load()
    assert not second.torch_loaded_now and not second.runtime_loaded_now
    assert second.runtime_library == first.runtime_library


def test_a_second_copy_of_the_libraries_does_not_abort(tmp_path):
    """A fresh process loads, then is handed a copy of both libraries at another path (as after a rebuild): the
    load is skipped because the ops are registered, the process does not abort, and the ops still run."""
    script = f"""
import shutil, torch
from quantviz_kernels import load
import quantviz_kernels.loader as L
libs = load()
L.load.cache_clear()
copy_t = shutil.copy(libs.torch_library, {str(tmp_path)!r} + '/t.so')
copy_r = shutil.copy(libs.runtime_library, {str(tmp_path)!r} + '/r.so')
L.build_library = lambda kind: __import__('pathlib').Path(copy_t if kind == 'torch' else copy_r)
again = L.load()
assert not again.torch_loaded_now and not again.runtime_loaded_now, again
a = torch.zeros(3, dtype=torch.int8)
print(torch.ops.quantviz.add(a, 0.1, 0, -128, 127, a, 0.1, 0, -128, 127, 0.1, 0, -128, 127).tolist())
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("[0, 0, 0]")
