"""Where the time goes: a placed profile summed per pattern, per delegate call, per op outside delegates, per q/dq
left to the portable runtime, with the delegate time no event accounts for said, and (optionally) the float model
lowered to the same backend beside it.

Example::

    report = latency_report(profile, placement, float_side=float_timing)
    report.total.median_ms
    [p.label for p in report.top(3)]           # ['dq → convolution → q (features.0.0)', ...]
    report.to_dict()                           # summary.json's "latency"
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from quantviz.graph.model import NodeView
from quantviz.graph.patterns import node_op
from quantviz.timing.place import Placed, PlaceKind, Placement
from quantviz.timing.profile import Profile, Stat

PlaceGroup = Literal["pattern", "op", "delegate_qdq", "delegate_layout", "delegate_other", "delegate_unaccounted",
                     "portable_qdq", "runtime_overhead"]


@dataclass
class PlaceTiming:
    """The time of one place: a pattern, an op, or what a delegate does beyond the graph's nodes."""

    key: str                    # stable id: the pattern id, the node id, or "delegate0:convert"
    kind: PlaceGroup
    label: str                  # what the user reads: "dq → convolution → q (features.0.0)"
    time: Stat
    events: list[str]           # the runtime's event names summed here
    where: str = ""             # "delegate 0 (XnnpackBackend)" or "portable runtime"
    module_path: str | None = None
    source: str | None = None   # the user's code line of the pattern's op
    nodes: list[str] = field(default_factory=list)   # graph node ids the events were placed on
    op_key: str | None = None   # "features.0.0|convolution|0": the same op in another program (the float one)

    def to_dict(self, total_ms: float) -> dict[str, Any]:
        share = self.time.median_ms / total_ms if total_ms > 0 else float("nan")
        return {"key": self.key, "kind": self.kind, "label": self.label, "where": self.where, **self.time.to_dict(),
                "share": round(share, 4), "events": self.events, "module_path": self.module_path,
                "source": self.source, "nodes": self.nodes}


@dataclass
class DelegateTiming:
    """One delegate call: its own time, the sum of the events it reports, and the rest (not hidden)."""

    index: int
    backend: str
    node: str | None
    call: Stat                 # DELEGATE_CALL
    events_sum: Stat           # run by run, the sum of the operator events inside
    events: int                # how many operator events it reports
    converts: int              # of which q/dq Convert events

    @property
    def unaccounted(self) -> Stat:
        """The call's time no operator event covers (the delegate's own dispatch, thread sync, timer gaps)."""
        return self.call.minus(self.events_sum)

    def to_dict(self) -> dict[str, Any]:
        call = self.call.median_ms
        return {"index": self.index, "backend": self.backend, "node": self.node, "call": self.call.to_dict(),
                "events_sum": self.events_sum.to_dict(), "unaccounted": self.unaccounted.to_dict(),
                "events_share": round(self.events_sum.median_ms / call, 4) if call > 0 else None,
                "events": self.events, "converts": self.converts}


@dataclass
class FloatRow:
    """A quantized pattern beside the same ops in the float model lowered to the same backend."""

    key: str
    label: str
    quantized: Stat
    float: Stat | None          # None: no float event found for its ops

    @property
    def speedup(self) -> float:
        """float / quantized (medians); > 1: the quantized pattern is faster."""
        if self.float is None or self.quantized.median_ms <= 0:
            return float("nan")
        return self.float.median_ms / self.quantized.median_ms

    @property
    def slower(self) -> bool:
        return self.float is not None and self.quantized.median_ms > self.float.median_ms

    @property
    def slower_beyond_spread(self) -> bool:
        """Slower in every run: the fastest quantized run is slower than the slowest float one."""
        return self.float is not None and self.quantized.min_ms > self.float.max_ms

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "quantized": self.quantized.to_dict(),
                "float": self.float.to_dict() if self.float else None,
                "speedup": round(self.speedup, 3) if self.float else None, "slower": self.slower,
                "slower_beyond_spread": self.slower_beyond_spread}


@dataclass
class FloatSide:
    """The float model lowered to the same backend and timed the same way."""

    total: Stat
    by_op: dict[str, Stat]            # op_key -> time of the events placed on that op
    profile: Profile


@dataclass
class LatencyReport:
    """The whole answer to "where does the time go" for one program on one machine."""

    profile: Profile
    total: Stat                        # Method::execute
    places: list[PlaceTiming]          # every place, most time first
    delegates: list[DelegateTiming]
    float_total: Stat | None = None
    float_rows: list[FloatRow] = field(default_factory=list)

    def top(self, n: int = 10) -> list[PlaceTiming]:
        return self.places[:n]

    def of_kind(self, kind: PlaceGroup) -> list[PlaceTiming]:
        return [p for p in self.places if p.kind == kind]

    def pattern_time(self, pattern_id: str) -> PlaceTiming | None:
        return next((p for p in self.places if p.kind == "pattern" and p.key == pattern_id), None)

    def slower(self) -> list[FloatRow]:
        return [r for r in self.float_rows if r.slower]

    def speedup(self) -> float:
        if self.float_total is None or self.total.median_ms <= 0:
            return float("nan")
        return self.float_total.median_ms / self.total.median_ms

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        total = self.total.median_ms
        p = self.profile
        return {
            "measured": {"runs": p.runs, "warmup": p.warmup, "threads": p.threads,
                         "machine": p.machine.to_dict() if p.machine else None, "by": "ExecuTorch runtime, ETDump"},
            "total": self.total.to_dict(),
            "float_total": self.float_total.to_dict() if self.float_total else None,
            "speedup_vs_float": round(self.speedup(), 3) if self.float_total else None,
            "top": [pl.to_dict(total) for pl in self.top(top)],
            "delegates": [d.to_dict() for d in self.delegates],
            "by_kind": {kind: round(sum(pl.time.median_ms for pl in self.of_kind(kind)), 5)
                        for kind in dict.fromkeys(pl.kind for pl in self.places)},
            "patterns": [pl.to_dict(total) for pl in self.of_kind("pattern")],
            "float_vs_quantized": [r.to_dict() for r in self.float_rows],
            "slower_than_float": [r.key for r in self.slower()],
        }

    def lines(self, top: int = 10) -> list[str]:
        """What the CLI prints."""
        out = [f"latency: {self.total.text()} per run; {self.profile.describe()}"]
        if self.float_total is not None:
            out[0] += f"; float on the same backend {self.float_total.text()} ({self.speedup():.2f}x)"
        for d in self.delegates:
            share = d.events_sum.median_ms / d.call.median_ms if d.call.median_ms > 0 else float("nan")
            out.append(f"  delegate {d.index} ({d.backend}): call {d.call.text()}, its {d.events} events sum to "
                       f"{d.events_sum.median_ms:.3f} ms ({share:.0%}); {d.unaccounted.median_ms:.3f} ms no event "
                       f"accounts for; {d.converts} q/dq Convert events")
        total = self.total.median_ms
        for pl in self.top(top):
            share = pl.time.median_ms / total if total > 0 else float("nan")
            out.append(f"  {pl.time.median_ms:8.3f} ms {share:6.1%}  {pl.label}  [{pl.where}]")
        slower = self.slower()
        if slower:
            out.append(f"  {len(slower)} pattern(s) slower quantized than float: " + ", ".join(
                f"{r.label} {r.quantized.median_ms:.3f} vs {r.float.median_ms:.3f} ms" for r in slower[:5]
                if r.float is not None))
        return out


def op_keys(nodes: list[NodeView]) -> dict[str, str]:
    """node id -> ``module_path|op|k`` (k: how many such ops came before in graph order): the same op of the same
    model in another program (the float one), whatever the nodes are called there."""
    seen: dict[tuple[str, str], int] = {}
    out = {}
    for n in nodes:
        if n.op != "call_function" or n.kind in ("quantize", "dequantize", "delegate", "other"):
            continue
        key = (n.module_path or "-", node_op(n))
        k = seen.get(key, 0)
        seen[key] = k + 1
        out[n.id] = f"{key[0]}|{key[1]}|{k}"
    return out


def _all_nodes(placement: Placement) -> list[NodeView]:
    return list(placement.nodes.values())


def latency_report(profile: Profile, placement: Placement, float_side: FloatSide | None = None) -> LatencyReport:
    """Sum ``placement``'s events per place (run by run), delegates with what no event covers, and the float side."""
    runs = profile.runs
    keys = op_keys(_all_nodes(placement))
    groups: dict[str, list[Placed]] = {}
    kinds: dict[str, PlaceGroup] = {}
    wheres: dict[str, str] = {}
    for d in placement.delegates:
        for pl in d.inside:
            key = _key(pl, d.index)
            groups.setdefault(key, []).append(pl)
            kinds[key] = pl.kind
            wheres[key] = f"delegate {d.index} ({d.backend or '?'})"
    for pl in placement.kernels:
        key = _key(pl, None)
        groups.setdefault(key, []).append(pl)
        kinds[key] = pl.kind
        wheres[key] = "portable runtime"
    places = []
    for key, items in groups.items():
        time = Stat.sum([pl.event.time for pl in items], runs)
        nodes = [pl.node for pl in items if pl.node]
        label, module_path, source = _describe(key, kinds[key], items, placement)
        op_key = keys.get(nodes[0]) if kinds[key] == "op" and nodes else None
        places.append(PlaceTiming(key, kinds[key], label, time, [pl.event.name for pl in items], wheres[key],
                                  module_path, source, list(dict.fromkeys(nodes)), op_key))
    delegates = []
    for d in placement.delegates:
        inside = Stat.sum([pl.event.time for pl in d.inside], runs)
        delegates.append(DelegateTiming(d.index, d.backend, d.node, d.call.time, inside, len(d.inside),
                                        sum(pl.kind == "delegate_qdq" for pl in d.inside)))
        places.append(PlaceTiming(f"delegate{d.index}:unaccounted", "delegate_unaccounted",
                                  f"delegate {d.index}: time no event accounts for", delegates[-1].unaccounted, [],
                                  f"delegate {d.index} ({d.backend or '?'})"))
    accounted = Stat.sum([d.call for d in delegates] + [pl.event.time for pl in placement.kernels], runs)
    if profile.execute.runs_ms:
        places.append(PlaceTiming("runtime_overhead", "runtime_overhead",
                                  "the runtime between events (operator dispatch, method bookkeeping)",
                                  profile.execute.minus(accounted), [], "portable runtime"))
    places.sort(key=lambda p: -p.time.median_ms)
    report = LatencyReport(profile, profile.execute, places, delegates)
    if float_side is not None:
        report.float_total = float_side.total
        report.float_rows = _float_rows(report, placement, keys, float_side)
    return report


def _key(pl: Placed, delegate: int | None) -> str:
    if pl.kind == "pattern" and pl.pattern:
        return pl.pattern
    if pl.kind in ("op", "portable_qdq") and pl.node:
        return pl.node
    return f"delegate{delegate}:{pl.kind.removeprefix('delegate_')}" if delegate is not None else \
        f"portable:{pl.event.name}"


_GROUP_LABEL: dict[PlaceKind, str] = {
    "delegate_qdq": "q/dq converts inside the delegate (XNNPACK Convert)",
    "delegate_layout": "layout changes the delegate inserted (transpose, reshape, pad)",
    "delegate_other": "delegate events placed on no node",
}


def _describe(key: str, kind: PlaceKind, items: list[Placed], placement: Placement) -> tuple[str, str | None,
                                                                                             str | None]:
    if kind == "pattern":
        p = placement.patterns[key]
        return f"{p.label()} ({p.module_path or p.anchor.split('/')[-1]})", p.module_path, p.source
    if kind in ("op", "portable_qdq") and items[0].node:
        n = placement.nodes[items[0].node]
        what = "q/dq kernel" if kind == "portable_qdq" else "op outside any pattern"
        return f"{node_op(n)} ({n.module_path or n.name}): {what}", n.module_path, n.source
    if kind in _GROUP_LABEL:
        return f"delegate {items[0].delegate}: {_GROUP_LABEL[kind]}", None, None
    return f"{items[0].event.name} (no node)", None, None


def _float_rows(report: LatencyReport, placement: Placement, keys: dict[str, str],
                float_side: FloatSide) -> list[FloatRow]:
    rows = []
    for pl in report.places:
        if pl.kind not in ("pattern", "op"):
            continue
        if pl.kind == "pattern":
            p = placement.patterns[pl.key]
            chain = [m for m in p.members if m in keys]
        else:
            chain = [n for n in pl.nodes if n in keys]
        found = [float_side.by_op[keys[m]] for m in chain if keys[m] in float_side.by_op]
        fl = Stat.sum(found, float_side.profile.runs) if found else None
        rows.append(FloatRow(pl.key, pl.label, pl.time, fl))
    return rows


def float_side(profile: Profile, placement: Placement) -> FloatSide:
    """The float program's events summed per op (``op_keys``), for :func:`latency_report`."""
    keys = op_keys(_all_nodes(placement))
    by_op: dict[str, list] = {}
    for pl in placement.all():
        if pl.node and pl.node in keys:
            by_op.setdefault(keys[pl.node], []).append(pl.event.time)
    return FloatSide(profile.execute, {k: Stat.sum(v, profile.runs) for k, v in by_op.items()}, profile)
