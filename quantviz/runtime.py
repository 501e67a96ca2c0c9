"""The ExecuTorch runtime and model outputs, at the lowest layer: stages and numerics both build on this.

    module = load_program(program.buffer)            # keep the buffer referenced while the module lives
    out = first_output(module.forward(example_inputs))
"""
from __future__ import annotations

from typing import Any

import torch


def load_program(buffer: bytes) -> Any:
    """Load ``.pte`` bytes into the runtime. The caller must keep ``buffer`` alive as long as the module."""
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    import executorch.kernels.quantized  # noqa: F401  registers the quantized_decomposed runtime kernels

    return _load_for_executorch_from_buffer(buffer)


def first_output(out: Any) -> torch.Tensor:
    """A model's first tensor output, in torch.export's flattening order (models may return a tensor, a tuple, a
    list or a dict, as most model libraries do; the runtime returns the flattened list)."""
    if isinstance(out, torch.Tensor):
        return out
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    if not leaves:
        raise TypeError(f"the model returned no tensor (got {type(out).__name__})")
    return leaves[0]


def concat_outputs(outs: list[Any]) -> torch.Tensor:
    """The first outputs of several batches as one (rows, features) tensor."""
    firsts = [first_output(o).detach() for o in outs]
    return torch.cat([t.flatten(1) if t.dim() > 1 else t.reshape(-1, 1) for t in firsts])


def output_scale(edge: Any) -> float | None:
    """The scale of the dequantize that makes the program's (first) output, if it ends in one."""
    if edge is None or not hasattr(edge, "exported_program"):
        return None
    out = next(n for n in edge.exported_program().graph.nodes if n.op == "output").args[0]
    first = out[0] if isinstance(out, (list, tuple)) else out
    if isinstance(first, torch.fx.Node) and "dequantize_per_tensor" in str(first.target) \
            and isinstance(first.args[1], float):
        return first.args[1]
    return None
