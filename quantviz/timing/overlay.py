"""The latency overlay of the lowered stage's graph: each node's measured ms, drawn like the SQNR overlay (a
``ViewSpec`` overlay) but with the most time in red.

Example::

    spec = latency_view(timing)                       # ViewSpec with overlay=((node id, ms), ...)
    dot = to_dot(pipe.results["fuse"].graph, spec)    # the delegate call and each portable kernel coloured
"""
from __future__ import annotations

from dataclasses import replace

from quantviz.render.view import ViewSpec
from quantviz.timing.measure import PipelineTiming


def latency_overlay(timing: PipelineTiming) -> dict[str, float]:
    """Node id -> median ms on the lowered graph: a delegate call's node its call, a kernel's node its kernel, and
    (for views that expand delegates) each op inside a delegate what the delegate reports for it."""
    out: dict[str, float] = {}
    for pl in timing.placement.kernels:
        if pl.node:
            out[pl.node] = out.get(pl.node, 0.0) + pl.event.time.median_ms
    for d in timing.placement.delegates:
        if d.node:
            out[d.node] = out.get(d.node, 0.0) + d.call.time.median_ms
        for pl in d.inside:
            if pl.node:
                out[pl.node] = out.get(pl.node, 0.0) + pl.event.time.median_ms
    return out


def latency_view(timing: PipelineTiming, base: ViewSpec | None = None) -> ViewSpec:
    """``base`` (default: the default view) with the latency overlay."""
    overlay = tuple(sorted(latency_overlay(timing).items()))
    return replace(base or ViewSpec(), overlay=overlay, overlay_label="ms", overlay_high_is_bad=True,
                   overlay_digits=3)
