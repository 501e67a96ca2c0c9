"""quantviz's own quantized operators: C++ kernels for PyTorch and the ExecuTorch runtime, and the patterns
that lower reference (dequantize -> float op -> quantize) patterns to them.

Layout: ``ops.py`` the table of operators; ``csrc/core/`` framework-free kernels; ``csrc/torch_ops.cpp`` and
``csrc/et_ops.cpp`` the two thin registrations; ``build.py`` and ``loader.py`` build once and load once;
``patterns/`` one pattern and replacement per operator; ``fusion_pass.py`` applies them to an edge program;
``tests/`` checks numerics against the reference, PyTorch against the runtime, ``opcheck``, and that every
operator is in every place a new one must touch (listed in ``ops.py``).

Example::

    from quantviz_kernels import load, fuse
    load()
    edge, records = fuse(edge)   # records: which node groups became which quantviz op
"""
from quantviz_kernels.loader import KernelLibraries, load
from quantviz_kernels.ops import OPERATORS, OPS

__all__ = ["OPERATORS", "OPS", "KernelLibraries", "load", "fuse"]


def fuse(edge):
    """Apply the quantviz patterns to every method of an EdgeProgramManager (see fusion_pass.fuse)."""
    from quantviz_kernels.fusion_pass import fuse as _fuse

    return _fuse(edge)
