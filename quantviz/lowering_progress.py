"""Progress from inside ExecuTorch's lowering calls, which give none: on a 30-layer decoder ``to_edge`` runs for
minutes and ``to_backend`` for more, and the page would otherwise sit still.

Inside ``with lowering_progress(ctx.progress, partitioners):`` the calls report, in order:

- edge (``_gen_edge_manager_for_partitioners``, ``to_edge``): "functionalizing the graph", "decomposing (the
  partitioner keeps N op kinds whole)", "converting to the edge dialect (N nodes)", "edge dialect: N nodes";
- delegate (``to_backend``): "partitioning N nodes", "N partitions", "partition k/n extracted", "partition k/n
  compiled by XnnpackBackend".

The hooks wrap ExecuTorch functions the calls look up at run time (``backend_api.create_submodule_from_nodes``, the
backend's ``preprocess``, ``_program._generate_edge_program``) and the partitioner objects given. They are
installed once and report only to the thread that opened the ``with`` (others, e.g. another session's run, pass
straight through); nothing about the calls' results changes::

    with lowering_progress(ctx.progress, [partitioner]):
        edge = to_edge_transform_and_lower(program, partitioner=[partitioner])
"""
from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence

Progress = Callable[[float, str], None]
Phase = Literal["edge", "delegate"]  # which half of to_edge_transform_and_lower a report comes from


@dataclass
class _Sink:
    """The reporting state of one ``with lowering_progress(...)`` block (one thread)."""
    progress: Progress
    partitioners: int  # how many partitioners the call was given
    current: int = 0  # the partitioner now partitioning (1-based), 0 before any
    partitions: int = 0  # partitions the current partitioner made
    extracted: int = 0  # partitions cut out of the graph so far (create_submodule_from_nodes)
    compiled: int = 0  # partitions the backend has compiled so far (preprocess)
    backends: set[str] = field(default_factory=set)  # the backend ids the partitions were tagged for
    decomposing: bool = False  # the edge step "decomposing" was reported
    edge_share: float = 1.0  # the part of the stage's fraction the edge steps take (the rest: delegation)

    def say(self, fraction: float, text: str, phase: Phase = "delegate") -> None:
        prefix = f"partitioner {self.current}/{self.partitioners}: " if self.partitioners > 1 and self.current else ""
        if self.edge_share >= 1.0:  # the stage makes one of the two: each reports 0..1
            lo, width = 0.0, 1.0
        else:
            lo, width = (0.0, self.edge_share) if phase == "edge" else (self.edge_share, 1.0 - self.edge_share)
        self.progress(lo + width * min(1.0, max(0.0, fraction)), prefix + text)

    def partition_done(self, counter: Literal["extracted", "compiled"], start: float, span: float,
                       what: str) -> None:
        """One more partition ``counter`` (extracted or compiled), said as "partition k/n <what>" at ``start`` +
        ``span`` * k/n of the current partitioner's share; nothing before the partitions are known."""
        if not self.partitions:
            return
        done = getattr(self, counter) + 1
        setattr(self, counter, done)
        self.say(self.share(start + span * done / self.partitions), f"partition {done}/{self.partitions} {what}")

    def share(self, part: float) -> float:
        """``part`` (0..1) of the current partitioner's share of the whole delegation."""
        n = max(1, self.partitioners)
        return (max(1, self.current) - 1 + part) / n


_local = threading.local()
_installed: set[str] = set()  # the hooks in place ("global", backend class names): installed once per process
_lock = threading.Lock()


def _sink() -> _Sink | None:
    return getattr(_local, "sink", None)


def _nodes(program: Any) -> int:
    try:
        return len(program.graph.nodes)
    except Exception:  # noqa: BLE001 - progress text only
        return 0


@contextlib.contextmanager
def lowering_progress(progress: Progress, partitioners: Sequence[Any] = (), edge_share: float = 1.0
                      ) -> Iterator[None]:
    """Report progress from the lowering calls made in this thread inside the block (see the module doc).
    ``edge_share``: the fraction of the stage the edge steps fill when one stage makes both (0.3: edge reports
    0..0.3, delegation 0.3..1); 1.0 when the stage does one of them (each then reports 0..1)."""
    _install_global_hooks()
    sink = _Sink(progress, len(partitioners), edge_share=edge_share)
    restore = [_wrap_partitioner(p, i + 1) for i, p in enumerate(partitioners)]
    previous, _local.sink = _sink(), sink
    try:
        yield
    finally:
        _local.sink = previous
        for undo in restore:
            undo()


def _wrap_partitioner(partitioner: Any, index: int) -> Callable[[], None]:
    """Shadow the instance's ``partition`` and ``ops_to_not_decompose`` with reporting wrappers; return the undo."""
    wrapped: list[str] = []

    def on_instance(name: str, make: Callable[[Callable], Callable]) -> None:
        original = getattr(partitioner, name, None)
        if original is None or name in vars(partitioner):
            return
        try:
            setattr(partitioner, name, make(original))
            wrapped.append(name)
        except (AttributeError, TypeError):  # slots or a frozen object: no progress from it
            pass

    def partition(original):
        @functools.wraps(original)
        def call(program, *args, **kwargs):
            sink = _sink()
            if sink is None:
                return original(program, *args, **kwargs)
            sink.current, sink.partitions, sink.extracted, sink.compiled = index, 0, 0, 0
            sink.say(sink.share(0.0), f"partitioning {_nodes(program):,} nodes")
            result = original(program, *args, **kwargs)
            tags = getattr(result, "partition_tags", None) or {}
            sink.partitions = len(tags)
            sink.backends |= {getattr(spec, "backend_id", "") for spec in tags.values()}
            _install_backend_hooks(sink.backends)
            sink.say(sink.share(0.1), f"{len(tags)} partition(s) found")
            return result
        return call

    def ops_to_not_decompose(original):
        @functools.wraps(original)
        def call(program, *args, **kwargs):
            result = original(program, *args, **kwargs)
            sink = _sink()
            if sink is not None and not sink.current and not sink.decomposing:  # asked again later: silent
                sink.decomposing = True
                kept = len(result[0]) if isinstance(result, tuple) and result else 0
                sink.say(0.4, f"functionalized ({_nodes(program):,} nodes); decomposing, {kept} op kind(s) kept "
                              "whole for the partitioner", "edge")
            return result
        return call

    on_instance("partition", partition)
    on_instance("ops_to_not_decompose", ops_to_not_decompose)

    def undo() -> None:
        for name in wrapped:
            with contextlib.suppress(AttributeError):
                delattr(partitioner, name)
    return undo


def _install_global_hooks() -> None:
    with _lock:
        if "global" in _installed:
            return
        from executorch.exir.backend import backend_api
        from executorch.exir.program import _program

        extract = backend_api.create_submodule_from_nodes

        @functools.wraps(extract)
        def create_submodule_from_nodes(*args, **kwargs):
            result = extract(*args, **kwargs)
            if (sink := _sink()) is not None:
                sink.partition_done("extracted", 0.1, 0.4, "extracted")
            return result

        backend_api.create_submodule_from_nodes = create_submodule_from_nodes

        pre = _program._apply_pre_decomposition_transforms

        @functools.wraps(pre)
        def apply_pre_decomposition_transforms(program, *args, **kwargs):
            sink = _sink()
            if sink is not None and not sink.current:
                sink.say(0.05, f"functionalizing the graph ({_nodes(program):,} nodes)", "edge")
            return pre(program, *args, **kwargs)

        _program._apply_pre_decomposition_transforms = apply_pre_decomposition_transforms

        generate = _program._generate_edge_program

        @functools.wraps(generate)
        def generate_edge_program(config, program, *args, **kwargs):
            sink = _sink()
            if sink is not None and sink.current:  # the backend's own edge programs, inside delegation: silent
                sink = None
            if sink is not None:
                sink.say(0.7, f"converting to the edge dialect ({_nodes(program):,} nodes)", "edge")
            result = generate(config, program, *args, **kwargs)
            if sink is not None:
                sink.say(1.0, f"edge dialect: {_nodes(result):,} nodes", "edge")
            return result

        _program._generate_edge_program = generate_edge_program
        _installed.add("global")


def _install_backend_hooks(backend_ids: set[str]) -> None:
    """Wrap ``preprocess`` of the backends the partitions were tagged for (once per backend class)."""
    from executorch.exir.backend.backend_details import BackendDetails

    with _lock:
        for cls in BackendDetails.__subclasses__():
            if cls.__name__ not in backend_ids or cls.__name__ in _installed:
                continue
            original = cls.__dict__.get("preprocess")
            if not isinstance(original, (classmethod, staticmethod)):
                continue
            fn = original.__func__
            is_static = isinstance(original, staticmethod)

            def make(fn=fn, name=cls.__name__, is_static=is_static):
                @functools.wraps(fn)
                def preprocess(*args, **kwargs):
                    result = fn(*args, **kwargs)
                    if (sink := _sink()) is not None:
                        sink.partition_done("compiled", 0.5, 0.5, f"compiled by {name}")
                    return result
                return staticmethod(preprocess) if is_static else classmethod(preprocess)

            setattr(cls, "preprocess", make())
            _installed.add(cls.__name__)
