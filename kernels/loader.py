"""Load the kernel libraries into this process, at most once.

The PyTorch library registers ``torch.ops.quantviz.*`` (and this package adds their fake kernels); the runtime
library registers ``quantviz::<op>.out`` into the ExecuTorch kernel registry inside the wheel's
``libexecutorch.so``, the same registry ``executorch.extension.pybindings.portable_lib`` runs with. Registering an
op twice aborts the runtime, so each load first asks the registries whether the ops are already there: a second
call, or a second copy of the library, is a no-op.

Example::

    libs = load()          # builds on first use, then loads
    torch.ops.quantviz.add(a, 0.1, 0, -128, 127, b, 0.1, 0, -128, 127, 0.2, 0, -128, 127)
"""
from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

from quantviz_kernels.build import build_library
from quantviz_kernels.ops import OPS  # noqa: F401  re-exported: loader.OPS was its first home


@dataclass(frozen=True)
class KernelLibraries:
    torch_library: Path
    runtime_library: Path
    torch_loaded_now: bool    # False when the ops were already registered (another copy, an earlier call)
    runtime_loaded_now: bool


def torch_ops_registered() -> bool:
    import torch

    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("quantviz::add", "CPU")
    except RuntimeError:  # "operator quantviz::add does not exist"
        return False


def runtime_ops_registered() -> bool:
    from executorch.extension.pybindings import portable_lib

    return "quantviz::add.out" in set(portable_lib._get_operator_names())


@functools.cache  # the process-wide "already loaded" guard is this cache
def load() -> KernelLibraries:
    """Build (if needed) and load both libraries; later calls return the first call's result."""
    import torch

    from quantviz_kernels.fakes import register_fakes

    torch_lib, runtime_lib = build_library("torch"), build_library("executorch")
    torch_now = not torch_ops_registered()
    if torch_now:
        torch.ops.load_library(str(torch_lib))
        register_fakes()
    runtime_now = not runtime_ops_registered()
    if runtime_now:
        ctypes.CDLL(str(runtime_lib), mode=ctypes.RTLD_GLOBAL)
    return KernelLibraries(torch_lib, runtime_lib, torch_now, runtime_now)
