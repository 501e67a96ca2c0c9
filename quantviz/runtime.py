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


def as_module(artifact: Any) -> Any:
    """A callable model from a reference artifact: a module as it is, an ExportedProgram's ``module()``.

    Example: ``as_module(pipe.artifact("capture"))(*example_inputs)``.
    """
    if artifact is not None and hasattr(artifact, "module") and hasattr(artifact, "graph_signature"):
        return artifact.module()
    return artifact


def output_leaves(out: Any) -> list[tuple[str, Any]]:
    """Every leaf of a model's output with its path, in torch.export's flattening order (the order of the runtime's
    flat output list): ``[("logits", t), ("aux[0]", t2)]``; a plain tensor is ``[("output", t)]``.

    >>> output_leaves({"logits": torch.zeros(1), "n": 3})
    [('logits', tensor([0.])), ('n', 3)]
    """
    if isinstance(out, torch.Tensor):
        return [("output", out)]
    leaves, _ = torch.utils._pytree.tree_flatten_with_path(out)
    return [(_path_text(path), leaf) for path, leaf in leaves]


def _path_text(path: tuple) -> str:
    text = ""
    for key in path:
        if hasattr(key, "key"):      # dict key
            text += ("." if text else "") + str(key.key)
        elif hasattr(key, "idx"):    # sequence index
            text += f"[{key.idx}]"
        elif hasattr(key, "name"):   # attribute (dataclass, named tuple)
            text += ("." if text else "") + str(key.name)
        else:
            text += str(key)
    return text or "output"


def first_output(out: Any) -> torch.Tensor:
    """A model's first floating-point tensor output (the first tensor when none is floating), in torch.export's
    flattening order (models may return a tensor, a tuple, a list or a dict, as most model libraries do; the runtime
    returns the flattened list)."""
    if isinstance(out, torch.Tensor):
        return out
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    if not leaves:
        raise TypeError(f"the model returned no tensor (got {type(out).__name__})")
    return next((t for t in leaves if t.dtype.is_floating_point), leaves[0])


def concat_outputs(outs: list[Any]) -> torch.Tensor:
    """The first outputs of several batches as one (rows, features) tensor. Batches of other lengths (a dynamic
    sequence dimension: (1, 8, V) and (1, 5, V)) give a row per position, ``(13, V)``, when their last dimension
    agrees (else one value a row)."""
    firsts = [first_output(o).detach() for o in outs]
    if len({t.shape[1:] for t in firsts}) > 1:
        last = {t.shape[-1] if t.dim() else 1 for t in firsts}
        width = next(iter(last)) if len(last) == 1 else 1
        return torch.cat([t.reshape(-1, width) for t in firsts])
    return torch.cat([t.flatten(1) if t.dim() > 1 else t.reshape(-1, 1) for t in firsts])


def output_scale(edge: Any) -> float | None:
    """The scale of the dequantize that makes the program's (first) output, if it ends in one."""
    if edge is None or not hasattr(edge, "exported_program"):
        return None
    out = next(n for n in edge.exported_program().graph.nodes if n.op == "output").args[0]
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    floating = [n for n in outs if isinstance(n, torch.fx.Node) and isinstance(n.meta.get("val"), torch.Tensor)
                and n.meta["val"].dtype.is_floating_point]
    first = floating[0] if floating else outs[0]  # the output first_output picks
    if isinstance(first, torch.fx.Node) and "dequantize_per_tensor" in str(first.target) \
            and isinstance(first.args[1], float):
        return first.args[1]
    return None
