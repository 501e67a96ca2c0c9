"""Every operator is in every place a new one must touch (the list is in ``quantviz_kernels/ops.py``).

The operators are collected from all of those places, the sources read as text (the C++ registrations) or as
Python (the table, the reference, the patterns, the cases); a test per operator fails naming each place it is
missing from. ``patterns.ALL`` is built from the patterns folder: every file in it contributes, in ``ORDER``.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from quantviz_kernels.fakes import FAKES, SHAPES
from quantviz_kernels.ops import OPERATORS, OPS
from quantviz_kernels.patterns import ALL, pattern_modules
from quantviz_kernels.reference import FLOAT_OPS
from quantviz_kernels.tests.cases import DTYPES, cases_for

KERNELS = Path(__file__).resolve().parents[1]
CSRC = KERNELS / "csrc"
TORCH_OPS, ET_OPS = (CSRC / "torch_ops.cpp").read_text(), (CSRC / "et_ops.cpp").read_text()


def _code_lines(text: str) -> str:
    """C++ source without its ``#define`` lines (the macros' own parameter names are no operators)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#define"))


def names_in_cases() -> set[str]:
    """Operators ``cases.cases_for`` has a branch for: the strings ``op`` is compared with."""
    tree = ast.parse((KERNELS / "tests" / "cases.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "op":
            for c in node.comparators:
                found |= {n.value for n in ast.walk(c) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return found


def places() -> dict[str, set[str]]:
    """Each place a new operator must be added to, described as a contributor would look for it -> the operator
    names found there."""
    torch_ops = _code_lines(TORCH_OPS)
    return {
        "ops.py OPERATORS (its row)": set(OPS),
        'csrc/torch_ops.cpp TORCH_LIBRARY: QV_DEF("NAME", ...)': set(re.findall(r'QV_DEF\("(\w+)"', torch_ops)),
        "csrc/torch_ops.cpp TORCH_LIBRARY_IMPL: QV_IMPL(NAME)": set(re.findall(r"QV_IMPL\((\w+)\)", torch_ops)),
        'csrc/et_ops.cpp: EXECUTORCH_LIBRARY(quantviz, "NAME.out", ...)':
            set(re.findall(r'EXECUTORCH_LIBRARY\(quantviz,\s*"(\w+)\.out"', _code_lines(ET_OPS))),
        'reference.py FLOAT_OPS["NAME"]': set(FLOAT_OPS),
        "patterns/ (a FusionPattern whose op is quantviz::NAME)":
            {p.op.removeprefix("quantviz::") for p in ALL if p.op.startswith("quantviz::")},
        "tests/cases.py cases_for (a branch for it)": names_in_cases(),
    }


def missing_places(op: str, found: dict[str, set[str]]) -> list[str]:
    """The places ``op`` is not in."""
    return [place for place, names in found.items() if op not in names]


PLACES = places()
NAMED = sorted(set().union(*PLACES.values()))


def test_the_places_are_read():
    """Each place's reader finds the operators known today (a reader that finds nothing would pass everything)."""
    assert all(len(names) >= len(OPS) for names in PLACES.values()), {k: sorted(v) for k, v in PLACES.items()}


@pytest.mark.parametrize("op", NAMED)
def test_every_operator_named_anywhere_is_in_every_place(op):
    missing = missing_places(op, PLACES)
    assert not missing, f"operator {op!r} is missing from: " + "; ".join(missing)


def test_the_check_names_the_forgotten_place():
    planted = {place: set(names) for place, names in PLACES.items()}
    planted['csrc/et_ops.cpp: EXECUTORCH_LIBRARY(quantviz, "NAME.out", ...)'].discard("mul")
    assert missing_places("mul", planted) == ['csrc/et_ops.cpp: EXECUTORCH_LIBRARY(quantviz, "NAME.out", ...)']
    planted["tests/cases.py cases_for (a branch for it)"].add("sub")  # named in one place only
    assert len(missing_places("sub", planted)) == len(PLACES) - 1


@pytest.mark.parametrize("row", OPERATORS, ids=lambda r: r.name)
def test_each_row_names_its_kernel_and_a_known_shape_rule(row):
    header = CSRC / "core" / row.header
    assert header.is_file(), f"{row.name}: csrc/core/{row.header} does not exist"
    assert re.search(rf"^[\w:<>, ]*\b{row.kernel}\s*\(", header.read_text(), re.M), \
        f"{row.name}: no function {row.kernel}(...) in csrc/core/{row.header}"
    for cpp, text in (("torch_ops.cpp", TORCH_OPS), ("et_ops.cpp", ET_OPS)):
        assert f'#include "core/{row.header}"' in text, f"{row.name}: csrc/{cpp} does not include core/{row.header}"
    assert row.shape in SHAPES and FAKES[row.name] is SHAPES[row.shape]
    assert all(cases_for(row.name, dtype) for dtype in DTYPES), f"{row.name}: tests/cases.py has no cases"


@pytest.mark.parametrize("op", OPS)
def test_the_built_libraries_register_every_operator(op):
    """What the two libraries really registered (the session fixture loaded them)."""
    from executorch.extension.pybindings import portable_lib

    packet = getattr(torch.ops.quantviz, op)
    assert {"default", "out"} <= set(packet.overloads()), f"torch.ops.quantviz.{op}: {packet.overloads()}"
    assert f"quantviz::{op}.out" in set(portable_lib._get_operator_names()), f"quantviz::{op}.out not in the runtime"


def test_all_holds_every_pattern_file_in_its_order():
    files = sorted(p.stem for p in (KERNELS / "patterns").glob("*.py") if p.stem not in ("__init__", "base"))
    modules = pattern_modules()
    assert sorted(m.__name__.rsplit(".", 1)[1] for m in modules) == files
    assert ALL == [p for m in modules for p in m.PATTERNS] and all(m.PATTERNS for m in modules)
    assert [m.ORDER for m in modules] == sorted(m.ORDER for m in modules)
    names = [p.name for p in ALL]
    swallowing = [i for i, n in enumerate(names) if n.endswith(("_relu", "_hardtanh"))]
    standalone = [names.index("relu"), names.index("hardtanh")]
    assert max(swallowing) < min(standalone), names  # conv -> relu -> q becomes one conv2d
