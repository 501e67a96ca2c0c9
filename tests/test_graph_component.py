"""The graph viewer's front end is real files (ui/graph_component.js, .css) that the component loads as they are;
the JavaScript parses as the ES module Streamlit's components v2 imports."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quantviz_devtools.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ui/ is the app's folder, not an installed package
JS, CSS = ROOT / "ui" / "graph_component.js", ROOT / "ui" / "graph_component.css"


def node_check(source: str) -> subprocess.CompletedProcess:
    """``node --check`` of ``source`` parsed as an ES module (stdin with ``--input-type=module``: a file path
    lets node 20 guess the module type, and it then passes broken modules)."""
    return subprocess.run([require_tool("node"), "--check", "--input-type=module"], input=source,
                          capture_output=True, text=True, timeout=60)


def test_the_viewer_javascript_parses_as_an_es_module():
    proc = node_check(JS.read_text())
    assert proc.returncode == 0, proc.stderr


def test_the_check_catches_a_syntax_error():
    broken = JS.read_text().replace("function build(parent) {", "function build(parent) { const = ;", 1)
    assert broken != JS.read_text()
    proc = node_check(broken)
    assert proc.returncode != 0 and "SyntaxError" in proc.stderr


def test_the_component_loads_the_files_as_they_are():
    from ui import graph_component

    assert graph_component._JS == JS.read_text() and graph_component._CSS == CSS.read_text()
    assert "export default function(component)" in graph_component._JS
    css = CSS.read_text()
    assert css.count("{") == css.count("}") and ".qv-graph" in css and "<style" not in css
