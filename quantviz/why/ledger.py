"""The pattern ledger: every reference quantized pattern, and what became of it.

The reference patterns are those of the flow's reference model (convert in fx/pt2e, the captured program in the
torchao flow); delegation is read at the delegate stage and fusion at the flow's last edge program (fuse, where
the flow has one)::

    ledger = build_ledger(pipe)          # pipe ran at least to the flow's last edge program (fuse)
    for row in ledger.rows:
        print(row.pattern, row.label, row.fate, row.reason)

Fates: ``delegated`` (to which backend, which call), ``fused`` (into which quantized operator, by which
pass), ``unfused`` (left as q/dq around a float op, with the partitioner's reasons and the nearest fusion
pattern's first mismatch), ``removed`` (gone before delegation, e.g. folded away).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.graph.diff import diff_graphs
from quantviz.errors import StageError
from quantviz.lowering import partitioner_name
from quantviz.pipeline import Pipeline
from quantviz.pipeline_view import PipelineView
from quantviz.why.fusion_match import PatternGraph, explain_unfused, executorch_patterns


@dataclass
class LedgerRow:
    pattern: str  # id in the reference stage's graph (convert, or capture in the torchao flow)
    label: str
    op: str
    members: list[str]
    dtype: str | None
    module_path: str | None
    source: str | None
    fate: str  # "delegated", "fused", "unfused", "removed"
    where: str = ""  # backend + delegate call, or fused operator + pass
    reason: str = ""  # for unfused: why, in words
    reason_kind: str = ""  # "partitioner", "dtype", "users", "target", "no_pattern", "filter", ...
    partition_reasons: list[str] = field(default_factory=list)
    node: str | None = None  # the anchor's id in the delegate/fuse-stage graph
    cost_ms: float | None = None  # measured: median ms of the runtime's events on it (quantviz.timing), when timed
    cost_share: float | None = None  # that time's share of the whole run


@dataclass
class Ledger:
    model: str
    config: PipelineConfig  # the run's (``to_dict`` at the edge)
    rows: list[LedgerRow]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.fate] = out.get(r.fate, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "config": self.config.to_dict(), "counts": self.counts(),
                "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        """Plain-text table, one row a pattern."""
        head = f"{'id':<5} {'pattern':<34} {'module':<22} {'fate':<10} where / why"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            detail = r.where if r.fate in ("delegated", "fused") else r.reason
            if r.cost_ms is not None:
                detail = f"[{r.cost_ms:.3f} ms, {r.cost_share:.1%} of the run] {detail}"
            lines.append(f"{r.pattern:<5} {r.label[:34]:<34} {(r.module_path or '-')[:22]:<22} {r.fate:<10} {detail}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def default_patterns() -> tuple[PatternGraph, ...]:
    return tuple(executorch_patterns())


def build_ledger(pipe: PipelineView, patterns: tuple[PatternGraph, ...] | None = None) -> Ledger:
    """What became of every quantized pattern (delegated, fused, unfused, removed), read from the reference, delegate
    and lowered stages. A pipeline whose artifacts live in a worker process (``quantviz.process_run``) carries the
    ledger that worker built (``precomputed_ledger``).

        build_ledger(pipe).counts()   # {"delegated": 5, "unfused": 1}
    """
    precomputed = getattr(pipe, "precomputed_ledger", None)
    if precomputed is not None and patterns is None:
        return precomputed
    needed = ledger_stages(pipe)
    for stage in needed:
        r = pipe.results.get(stage)
        if r is None or not r.ok:
            raise StageError(stage, f"the ledger needs the '{stage}' stage, which has not run successfully",
                             f"run the pipeline at least until '{needed[-1]}' (--until {needed[-1]})")
    patterns = default_patterns() if patterns is None else patterns
    convert, delegate, fuse = (pipe.results[s] for s in needed)
    cd = diff_graphs(convert.graph, delegate.graph)
    df = diff_graphs(delegate.graph, fuse.graph)
    d_patterns = {p.anchor: p for p in delegate.graph.patterns}
    fused_by_pattern = {pid: op for op, pid in df.fused.items()}
    live = {n.name: n for n in delegate.artifact.exported_program().graph.nodes}
    reasons: dict[str, list[str]] = delegate.diagnostics.partition_reasons
    partitioner = partitioner_name(pipe.config)
    supported = _supported_targets(pipe.config)
    rows = []
    for p in convert.graph.patterns:
        row = LedgerRow(p.id, p.label(), p.op, p.members, p.dtype, p.module_path, p.source, "removed")
        if p.anchor in cd.delegated:
            call = delegate.graph.node(cd.delegated[p.anchor])
            row.fate, row.where = "delegated", f"{call.backend} ({call.id})"
            rows.append(row)
            continue
        descendants = [b for a, b in cd.kept if a == p.anchor and "/" not in b]
        anchor = next((b for b in descendants if b in d_patterns), None) or \
            next((b for b in descendants if delegate.graph.node(b).kind == "float_op"), None)  # decomposed ops
        if anchor is None:
            row.reason = "its op was removed before delegation"
            rows.append(row)
            continue
        row.node = anchor
        d_pattern = d_patterns.get(anchor)
        if d_pattern is not None and d_pattern.id in fused_by_pattern:
            op = fuse.graph.node(fused_by_pattern[d_pattern.id])
            by = "quantviz's patterns" if op.target.startswith("quantviz.") else "QuantFusionPass"
            row.fate, row.where = "fused", f"{op.target} ({op.id}) by {by}"
            rows.append(row)
            continue
        row.fate = "unfused"
        parts = []
        if partitioner != "none":
            why = [r for m in [anchor, *(d_pattern.members if d_pattern else [])] for r in reasons.get(m, [])]
            row.partition_reasons = list(dict.fromkeys(why))
            if not row.partition_reasons and supported is not None and _op_key(live.get(anchor)) not in supported:
                row.partition_reasons = [f"XNNPACK partitioner: no config for {_op_key(live.get(anchor))}"]
            if row.partition_reasons:
                parts.append("; ".join(row.partition_reasons))
        verdict = explain_unfused(live[anchor], patterns) if anchor in live and pipe.config.fusion != "none" \
            else None
        if verdict is not None:
            parts.append(verdict.reason)
            row.reason_kind = verdict.kind if not row.partition_reasons else "partitioner"
        else:
            parts.append("fusion is off (--fusion none)")
            row.reason_kind = row.reason_kind or "fusion_off"
        row.reason = "; ".join(parts)
        rows.append(row)
    return Ledger(pipe.spec.name, pipe.config, rows)


def ledger_stages(pipe: PipelineView) -> tuple[str, str, str]:
    """(reference, delegate, lowered): the stages the ledger reads in this flow, e.g. ("convert", "delegate",
    "fuse"); the torchao flow has no fuse stage, so its lowered program is the delegate stage's."""
    roles = pipe.flow.roles
    return roles.get("reference", "convert"), "delegate", roles.get("lowered", "fuse")


def _supported_targets(config: PipelineConfig) -> set[str] | None:
    """The op names the config's partitioner takes, when its backend lists them (``Backend.supported_ops``)."""
    if partitioner_name(config) in ("none", "demo"):
        return None
    backend = backend_of(config)
    return backend.supported_ops() if backend.supported_ops is not None else None


def _op_key(node: Any) -> str:
    """``convolution.default`` style name (what XNNPACK's configs are keyed by)."""
    if node is None:
        return "?"
    from executorch.exir.backend.canonical_partitioners.config_partitioner import format_target_name

    return format_target_name(getattr(node.target, "__name__", str(node.target)))


@dataclass
class FateChange:
    pattern: str
    label: str
    before: str
    after: str
    after_detail: str


def what_if(pipe: Pipeline, **changes: Any) -> tuple[Pipeline, list[FateChange]]:
    """Re-run from the stage ``changes`` affect (a fork: earlier stages are shared) and compare ledgers.

        other, changed = what_if(pipe, duplicate_dequant="on")
        other, changed = what_if(pipe, skip_modules=("block.norm2",))
    """
    config = pipe.config.with_changes(**changes)
    last = pipe.role("lowered") or "fuse"
    if pipe.flow.index(config.until) < pipe.flow.index(last):
        config = config.with_changes(until=last)
    other = pipe.fork(config)
    other.run(until=last)
    def key(r: LedgerRow) -> tuple:
        return r.label, r.module_path, r.source

    before = {key(r): r for r in build_ledger(pipe).rows}
    after_rows = build_ledger(other).rows
    out = []
    for r in after_rows:
        old = before.get(key(r))
        if old is None or old.fate != r.fate or old.reason != r.reason:
            out.append(FateChange(r.pattern, r.label, old.fate if old else "(new)", r.fate,
                                  r.where if r.fate in ("delegated", "fused") else r.reason))
    after_keys = {key(r) for r in after_rows}
    for k, r in before.items():
        if k not in after_keys:
            out.append(FateChange(r.pattern, r.label, r.fate, "gone", f"no longer quantized ({r.module_path})"))
    return other, out
