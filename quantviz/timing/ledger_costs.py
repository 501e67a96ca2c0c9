"""The ledger's rows with their measured cost: what each pattern's events took in the runtime and its share of the
whole run, so a refused or unfused pattern shows what leaving it out of the delegate costs.

Example::

    ledger = build_ledger(pipe)
    attach_costs(ledger, time_pipeline(pipe))
    [(r.label, r.fate, r.cost_ms, r.cost_share) for r in ledger.rows if r.fate == "unfused"]
"""
from __future__ import annotations

from quantviz.timing.measure import PipelineTiming
from quantviz.why.ledger import Ledger


def attach_costs(ledger: Ledger, timing: PipelineTiming) -> int:
    """Set ``cost_ms`` and ``cost_share`` on each row the runtime's events were placed on; the rows given a cost.

    A row left outside delegates (``node``: its anchor in the lowered graph) gets its pattern's time there (its dq,
    op and q kernels), or its op's kernel alone where the lowered graph has no such pattern (layer_norm's q reads a
    getitem of its tuple output, so the pattern finder stops at the op); a delegated row gets the time of the delegated pattern of the same module (when only one
    has that module)."""
    report, placement = timing.report, timing.placement
    total = report.total.median_ms
    by_anchor: dict[str, float] = {}
    by_module: dict[str, list[float]] = {}
    for place in report.places:
        if place.kind == "pattern":
            pattern = placement.patterns[place.key]
            by_anchor[pattern.anchor] = place.time.median_ms
            if "/" in pattern.anchor and pattern.module_path:
                by_module.setdefault(pattern.module_path, []).append(place.time.median_ms)
        elif place.kind == "op":
            for node in place.nodes:
                by_anchor[node] = by_anchor.get(node, 0.0) + place.time.median_ms
    done = 0
    for row in ledger.rows:
        cost = by_anchor.get(row.node) if row.node else None
        if cost is None and row.fate == "delegated" and row.module_path:
            same = by_module.get(row.module_path, [])
            cost = same[0] if len(same) == 1 else None
        if cost is not None:
            row.cost_ms = round(cost, 5)
            row.cost_share = round(cost / total, 4) if total > 0 else None
            done += 1
    return done
