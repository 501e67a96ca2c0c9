"""The structure counts issue 33 asks for, read from the code (the working tree, or any commit):

    .venv/bin/python scripts/structure_counts.py             # the working tree
    .venv/bin/python scripts/structure_counts.py 5266e07     # a commit (read through git, nothing checked out)

Counted over the library and the app (quantviz/, ui/, app.py), tests and benchmarks left out:

- files comparing flow names / backend names as strings: an ``ast.Compare`` with a flow's (backend's) name as a
  string constant on either side, alone or in a tuple/list/set (``config.flow == "fx"``, ``target in ("portable",
  "xnnpack")``), outside quantviz/flows/ (quantviz/backends/); for a flow name the other side must mention a flow or
  target (``"torchao"`` also names torchao's op namespace);
- ``dict[str, Any]``: occurrences of the annotation text, and the files holding them;
- the files a new flow (backend) touches: its own file, plus every file outside its folder that compares those
  names or enumerates them (a tuple, list, set, dict's keys or ``Literal[...]`` holding two or more of them): each
  such place has to learn the new name. A lower bound: it does not count tests or docs.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ("fx", "pt2e", "torchao", "recipe", "export_llm")
BACKENDS = ("portable", "xnnpack", "arm-tosa", "ethos-u", "openvino", "vulkan", "coreml")
SCANNED = ("quantviz/", "ui/", "app.py")


def sources(rev: str | None) -> dict[str, str]:
    """path -> text of every scanned .py file, in the working tree or at commit ``rev``."""
    if rev is None:
        paths = [p for s in SCANNED for p in ([ROOT / s] if s.endswith(".py") else (ROOT / s).rglob("*.py"))]
        return {str(p.relative_to(ROOT)): p.read_text() for p in paths if p.exists()}
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", rev], check=True,
                            capture_output=True, text=True).stdout.split()
    return {p: subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{p}"], check=True, capture_output=True,
                              text=True).stdout
            for p in listed if p.endswith(".py") and p.startswith(SCANNED)}


def _names_in(node: ast.AST, names: tuple[str, ...]) -> set[str]:
    """The names among ``names`` that ``node`` is (a string constant) or holds (a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and node.value in names:
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names}
    return set()


@dataclass
class Found:
    compare_lines: dict[str, list[int]] = field(default_factory=dict)  # path -> lines comparing the names
    enumerating: set[str] = field(default_factory=set)  # paths holding a collection of two or more of them


def scan(files: dict[str, str], names: tuple[str, ...], about: tuple[str, ...] = ()) -> Found:
    """Where ``files`` compare or enumerate ``names``; ``about``: a comparison counts only when the compared
    expression's text holds one of these words (``"flow"``: a flow name also names torchao's op namespace)."""
    found = Found()
    for path, text in files.items():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = (node.left, *node.comparators)
                named = [side for side in sides if _names_in(side, names)]
                others = " ".join(ast.unparse(side) for side in sides if side not in named)
                if named and (not about or any(word in others for word in about)):
                    found.compare_lines.setdefault(path, []).append(node.lineno)
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                if len(_names_in(node, names)) >= 2:
                    found.enumerating.add(path)
            elif isinstance(node, ast.Dict):
                if len({k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in names}) >= 2:
                    found.enumerating.add(path)
    return found


def report(rev: str | None) -> dict[str, object]:
    files = sources(rev)
    out: dict[str, object] = {"rev": rev or "working tree", "files": len(files)}
    for kind, names, home, about in (("flow", FLOWS, "quantviz/flows/", ("flow", "target")),
                                     ("backend", BACKENDS, "quantviz/backends/", ())):
        found = scan(files, names, about)
        outside = {p: lines for p, lines in found.compare_lines.items() if not p.startswith(home)}
        touched = set(outside) | {p for p in found.enumerating if not p.startswith(home)}
        out[f"{kind}_compare_files"] = sorted(outside)
        out[f"{kind}_compare_lines"] = sum(len(set(v)) for v in outside.values())
        out[f"new_{kind}_touches"] = 1 + len(touched)  # its own file, and every place that must learn its name
        out[f"new_{kind}_touched_files"] = sorted(touched)
    any_dict = {p: t.count("dict[str, Any]") for p, t in files.items() if "dict[str, Any]" in t}
    out["dict_str_any"] = sum(any_dict.values())
    out["dict_str_any_files"] = len(any_dict)
    return out


def main(argv: list[str]) -> int:
    r = report(argv[0] if argv else None)
    print(f"structure counts at {r['rev']} ({r['files']} files in quantviz/, ui/, app.py)")
    for kind, home in (("flow", "flows/"), ("backend", "backends/")):
        files = r[f"{kind}_compare_files"]
        print(f"  files comparing {kind} names as strings outside {home}: {len(files)} "
              f"({r[f'{kind}_compare_lines']} comparisons){': ' + ', '.join(files) if files else ''}")
        print(f"  files a new {kind} touches: {r[f'new_{kind}_touches']} (its own file + "
              f"{', '.join(r[f'new_{kind}_touched_files']) or 'none'})")
    print(f"  dict[str, Any]: {r['dict_str_any']} in {r['dict_str_any_files']} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
