"""Build XNNPACKQuantizer's conv-bn pattern graphs once per process.

``XNNPACKQuantizer.annotate`` exports its conv[-bn][-relu] patterns with ``torch.export`` on every call
(``_do_annotate_conv_bn`` -> ``torchao...utils._get_aten_graph_module_for_pattern``, 12 exports): seconds per
``prepare_pt2e``, most of the prepare stage on small models, paid again by every run of a sweep or a recovery.
The pattern graphs depend only on the pattern (its code and what it closes over: the conv function, relu or not,
in place or not) and the example inputs' shapes and dtypes, so within :func:`cached_pattern_graphs` each is
exported once per process and handed out as a deep copy (the matcher rewrites the graph it is given). The patch
is undone when the block ends; the cache stays, which is what a warm worker keeps::

    with cached_pattern_graphs():
        observed = prepare_pt2e(ep.module(), quantizer)
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import threading
from typing import Any, Callable, Iterator

import torch

# the modules that call the pattern builder by a name of their own (imported from torchao)
CALLERS = ("executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils",)
NAME = "_get_aten_graph_module_for_pattern"

_GRAPHS: dict[tuple, Any] = {}
_LOCK = threading.Lock()
STATS = {"built": 0, "reused": 0}


def pattern_key(pattern: Any, example_inputs: tuple, is_cuda: bool, kwargs: dict) -> tuple | None:
    """What a pattern graph depends on, or None when it cannot be told (then it is built every time)."""
    fn = getattr(pattern, "fn", pattern)  # torchao's WrapperModule holds the pattern function as .fn
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        cells = tuple(c.cell_contents for c in (fn.__closure__ or ()))
        shapes = tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else ("value", x)
                       for x in example_inputs)
        key = (code, cells, shapes, is_cuda, tuple(sorted(kwargs.items())))
        hash(key)
    except (TypeError, ValueError):
        return None
    return key


def _cached(build: Callable[..., Any]) -> Callable[..., Any]:
    def get(pattern: Any, example_inputs: tuple, is_cuda: bool = False, **kwargs: Any) -> Any:
        key = pattern_key(pattern, example_inputs, is_cuda, kwargs)
        if key is None:
            return build(pattern, example_inputs, is_cuda, **kwargs)
        with _LOCK:
            graph = _GRAPHS.get(key)
        if graph is None:
            graph = build(pattern, example_inputs, is_cuda, **kwargs)
            with _LOCK:
                _GRAPHS[key] = graph
            STATS["built"] += 1
        else:
            STATS["reused"] += 1
        return copy.deepcopy(graph)

    get.quantviz_cached = True  # type: ignore[attr-defined]
    return get


@contextlib.contextmanager
def cached_pattern_graphs() -> Iterator[None]:
    """Within the block, the callers in ``CALLERS`` build each pattern graph once per process."""
    patched: list[tuple[Any, Any]] = []
    for name in CALLERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        original = getattr(module, NAME, None)
        if original is None or getattr(original, "quantviz_cached", False):
            continue
        setattr(module, NAME, _cached(original))
        patched.append((module, original))
    try:
        yield
    finally:
        for module, original in patched:
            setattr(module, NAME, original)
