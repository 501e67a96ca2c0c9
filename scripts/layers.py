"""The import graph of quantviz/: which module imports which, counting imports inside functions too.

    .venv/bin/python scripts/layers.py            # the layers, lowest first, and any cycle (exit 1 if one exists)

tests/test_layers.py holds the project to it: no import cycle among quantviz's modules, nothing in quantviz/
imports streamlit, ui, sample_models or the test and benchmark helpers (quantviz_devtools, selenium), and stages
never import analyses (what runs after a flow: numerics, why, render, interop, the report, sweeps, recoveries):
stage-time helpers live below the stages (quantviz/measure, backends, ...); flows and backends declare their
recovery candidates with the low-level record quantviz/candidates.py, below the recovery search. Packages do not
import each other in a circle either (``package_cycles``: quantviz.flows -> quantviz.recover -> quantviz.flows was
one).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("streamlit", "ui", "sample_models", "quantviz_devtools", "selenium")
STAGE_PACKAGES = ("quantviz.stages", "quantviz.flows")
ANALYSES = ("quantviz.numerics", "quantviz.why", "quantviz.render", "quantviz.interop", "quantviz.report",
            "quantviz.stage_views", "quantviz.sweep", "quantviz.parity", "quantviz.bare_flow", "quantviz.outputs",
            "quantviz.cli", "quantviz.reuse", "quantviz.recover")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports (module-level and inside functions), resolved to known quantviz modules where
    the name is one, else the top-level package name."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "quantviz":
                found.add(name.split(".")[0])
            elif name in known:
                found.add(name)
    me = module_name(path) if path.is_relative_to(ROOT) else ""
    # ``from quantviz.a import b`` names module quantviz.a.b when it exists; drop the package then
    return {m for m in found if m != me and not any(o.startswith(m + ".") and o in found for o in found)
            or m not in known}


def graph() -> dict[str, set[str]]:
    files = sorted((ROOT / "quantviz").rglob("*.py"))
    known = {module_name(p) for p in files}
    return {module_name(p): imports(p, known) for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    """The top-level part of quantviz a module belongs to: ``quantviz.flows.fx`` -> ``quantviz.flows``;
    ``quantviz.config`` is its own."""
    return ".".join(module.split(".")[:2])


def package_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among quantviz's packages (each module folded into ``package_of``), e.g. flows -> recover -> flows."""
    folded: dict[str, set[str]] = {}
    for module, deps in g.items():
        folded.setdefault(package_of(module), set()).update(
            package_of(d) for d in deps if d in g and package_of(d) != package_of(module))
    return cycles(folded)


def layers(g: dict[str, set[str]]) -> list[list[str]]:
    """Modules by depth: layer 0 imports no quantviz module, layer n only modules of lower layers."""
    depth: dict[str, int] = {}

    def d(v: str, seen: tuple[str, ...] = ()) -> int:
        if v in depth:
            return depth[v]
        inner = [w for w in g[v] if w in g and w not in seen and w != v]
        depth[v] = 1 + max((d(w, seen + (v,)) for w in inner), default=-1)
        return depth[v]

    for v in g:
        d(v)
    out: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for v, n in depth.items():
        out[n].append(v)
    return [sorted(x) for x in out]


def forbidden(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, i) for m, deps in g.items() for i in deps if i in FORBIDDEN)


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def stage_imports_analysis(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(stage or flow module, analysis module) for every import from a stage into the analyses."""
    return sorted((m, i) for m, deps in g.items() if _within(m, STAGE_PACKAGES)
                  for i in deps if _within(i, ANALYSES))


def main() -> int:
    g = graph()
    for n, layer in enumerate(layers(g)):
        print(f"layer {n}: {', '.join(m.removeprefix('quantviz.') for m in layer)}")
    bad = forbidden(g)
    found = cycles(g)
    bad += stage_imports_analysis(g)
    for m, i in bad:
        print(f"FORBIDDEN: {m} imports {i}")
    for c in found:
        print(f"CYCLE: {' <-> '.join(c)}")
    folded = package_cycles(g)
    for c in folded:
        print(f"PACKAGE CYCLE: {' <-> '.join(c)}")
    print("no cycle" if not found and not folded else f"{len(found) + len(folded)} cycle(s)")
    return 1 if found or bad or folded else 0


if __name__ == "__main__":
    sys.exit(main())
