"""ui/state.py: every session-state key declared once, set up at the top of each page, per-run values per run.

The first test reads the app's sources: outside ui/state.py no code names a session-state key by a string of
its own or sets a default (``setdefault``), and every page starts with ``init_state()``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ui/ is the app's folder, not an installed package

from quantviz import PipelineConfig  # noqa: E402
from ui import state  # noqa: E402

SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")),
           *sorted(p for p in (ROOT / "ui").glob("*.py") if p.name != "state.py")]
READS = {"get", "pop", "update", "keys", "values", "items", "clear"}  # dict methods: fine with a declared name


def _is_session_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "session_state"


def stray_keys(path: Path) -> list[str]:
    """Where ``path`` names a session-state key by a literal (``.x``, ``["x"]``, ``.get("x")``) or sets a default."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and _is_session_state(node.value):
            if node.attr == "setdefault":
                found.append(f"{where} setdefault")
            elif node.attr not in READS:
                found.append(f"{where} .{node.attr}")
        elif isinstance(node, ast.Subscript) and _is_session_state(node.value) and isinstance(node.slice, ast.Constant):
            found.append(f"{where} [{node.slice.value!r}]")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and _is_session_state(node.func.value) and node.func.attr in READS and node.args \
                and isinstance(node.args[0], ast.Constant):
            found.append(f"{where} .{node.func.attr}({node.args[0].value!r})")
    return found


def test_no_page_names_a_key_of_its_own():
    assert [s for p in SOURCES for s in stray_keys(p)] == []


def test_the_checker_finds_literal_keys(tmp_path):
    f = tmp_path / "page.py"
    f.write_text("import streamlit as st\nst.session_state.stage = 1\nst.session_state.setdefault('a', 1)\n"
                 "st.session_state['b']\nst.session_state.get('c')\nst.session_state[KEY]\n")
    assert sorted(s.split(" ", 1)[1] for s in stray_keys(f)) == [".get('c')", ".stage", "['b']", "setdefault"]


@pytest.mark.parametrize("page", [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))], ids=lambda p: p.name)
def test_every_page_sets_the_state_up_first(page):
    calls = [n.value.func for n in ast.parse(page.read_text()).body
             if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    names = [c.id if isinstance(c, ast.Name) else ast.unparse(c) for c in calls]
    assert names[:2] == ["st.set_page_config", "init_state"], names  # before anything reads the state


def test_init_state_sets_every_missing_key_and_keeps_the_rest():
    for name in state.KEYS:
        st.session_state.pop(name, None)
    st.session_state[state.STAGE] = "fuse"
    state.init_state()
    assert st.session_state[state.STAGE] == "fuse"
    assert all(name in st.session_state for name in state.KEYS)
    assert st.session_state[state.EXPANDED] == {} and st.session_state[state.QV_RUN] == 0
    assert not set(state.KEYS) & {*state.WIDGET_KEYS, *state.config_widget_keys()}  # widgets are Streamlit's
    assert all(k.doc for k in state.KEYS.values())


def test_per_run_values_are_kept_per_model_and_config():
    state.init_state()
    a, b = PipelineConfig(), PipelineConfig(fusion="none")
    key_a, key_b = state.run_key("sample:digits_cnn", a), state.run_key("sample:digits_cnn", b)
    assert len({key_a, key_b, state.run_key("sample:conv_add", a)}) == 3
    state.set_for_run(state.REPORT_HTML, key_a, "<html>A</html>")
    assert state.for_run(state.REPORT_HTML, key_a) == "<html>A</html>"
    assert state.for_run(state.REPORT_HTML, key_b) is None  # B is never offered A's report
    for n in range(state.MAX_RUNS_KEPT):
        state.set_for_run(state.REPORT_HTML, f"run {n}", n)
    assert state.for_run(state.REPORT_HTML, key_a) is None  # the oldest went first
    assert len(st.session_state[state.REPORT_HTML]) == state.MAX_RUNS_KEPT
    state.drop_for_run(state.REPORT_HTML, "run 0")
    assert state.for_run(state.REPORT_HTML, "run 0") is None


def test_the_sidebar_keys_are_the_config_fields_it_offers():
    assert "until" not in state.config_widget_keys() and "flow" in state.config_widget_keys()
    assert state.graph_key("fuse") == "graph_fuse" and state.graph_key("edge", compared=True) == "graph_cmp_edge"
