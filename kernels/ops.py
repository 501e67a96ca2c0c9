"""The quantviz operators, one row each: the table the Python side takes its operator lists from.

``OPS`` (what the tests and the loader go through) and the fake kernels (``fakes.FAKES``, from each row's output
shape rule) are derived from ``OPERATORS``; the fusion patterns are found in ``patterns/``. What cannot be
derived is code, one piece per place. A new operator ``NAME`` touches:

1. ``csrc/core/<header>``: its framework-free kernel (the row's ``kernel`` function);
2. ``csrc/torch_ops.cpp``: the functional op and its ``.out`` variant, ``QV_DEF("NAME", ...)`` and ``QV_IMPL(NAME)``;
3. ``csrc/et_ops.cpp``: the runtime kernel, ``EXECUTORCH_LIBRARY(quantviz, "NAME.out", NAME_out)``;
4. a row here (its output shape rule a key of ``fakes.SHAPES``; add a rule there for a new kind of shape);
5. ``reference.FLOAT_OPS["NAME"]``: the float op the reference quantizes;
6. ``patterns/<file>.py``: a ``FusionPattern`` lowering to ``quantviz::NAME`` (a new file needs an ``ORDER``);
7. ``tests/cases.py``: its argument sets in ``cases_for``.

``kernels/tests/test_registry.py`` collects every operator named in any of these places and fails naming the
place an operator is missing from.

Example::

    [op.name for op in OPERATORS if op.header == "pool.h"]   # ['max_pool2d', 'avg_pool2d', 'mean']
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operator:
    name: str  # torch.ops.quantviz.<name>, and quantviz::<name>.out in the runtime
    header: str  # csrc/core/<header>: the framework-free kernel
    kernel: str  # the kernel's C++ function in that header
    shape: str  # how the output's shape follows from the arguments: a key of fakes.SHAPES


OPERATORS: tuple[Operator, ...] = (
    Operator("add", "elementwise.h", "binary", "same"),
    Operator("add_relu", "elementwise.h", "binary", "same"),
    Operator("mul", "elementwise.h", "binary", "same"),
    Operator("hardtanh", "elementwise.h", "hardtanh", "same"),
    Operator("linear", "matmul.h", "linear", "linear"),
    Operator("conv2d", "matmul.h", "conv2d", "conv2d"),
    Operator("max_pool2d", "pool.h", "max_pool2d", "max_pool2d"),
    Operator("avg_pool2d", "pool.h", "avg_pool2d", "avg_pool2d"),
    Operator("mean", "pool.h", "mean_hw", "mean"),
)
OPS: tuple[str, ...] = tuple(op.name for op in OPERATORS)
