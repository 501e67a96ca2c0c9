"""The direction of the layers: nothing in quantviz/ imports streamlit, ui, sample_models or the dev helpers
(quantviz_devtools, selenium), and no import cycle
among quantviz's modules (imports inside functions count). `scripts/layers.py` prints the layer graph."""
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers():
    spec = importlib.util.spec_from_file_location("layers", ROOT / "scripts" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_library_imports_no_face_and_no_sample():
    layers = _layers()
    assert layers.forbidden(layers.graph()) == []


def test_stages_never_import_analyses():
    layers = _layers()
    assert layers.stage_imports_analysis(layers.graph()) == []
    planted = {"quantviz.stages.run": {"quantviz.numerics.metrics", "quantviz.measure.metrics"}}
    assert layers.stage_imports_analysis(planted) == [("quantviz.stages.run", "quantviz.numerics.metrics")]


def test_no_import_cycle_among_quantviz_modules():
    layers = _layers()
    assert layers.cycles(layers.graph()) == []


def test_no_cycle_among_quantviz_packages():
    """flows and backends declare recovery candidates with quantviz/candidates.py, below the recovery search, so
    no package imports another that imports it back (quantviz.flows -> quantviz.recover -> quantviz.flows was)."""
    layers = _layers()
    assert layers.package_cycles(layers.graph()) == []
    planted = {"quantviz.flows.fx": {"quantviz.recover.x"}, "quantviz.recover.x": {"quantviz.flows"},
               "quantviz.flows": set()}
    assert layers.package_cycles(planted) == [["quantviz.flows", "quantviz.recover"]]


def test_the_cycle_finder_finds_a_planted_cycle():
    layers = _layers()
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert layers.cycles(g) == [["a", "b", "c"]]
    assert layers.forbidden({"quantviz.x": {"streamlit", "torch"}}) == [("quantviz.x", "streamlit")]
    assert layers.forbidden({"quantviz.y": {"quantviz_devtools", "selenium"}}) == [
        ("quantviz.y", "quantviz_devtools"), ("quantviz.y", "selenium")]


def test_function_level_imports_are_counted(tmp_path):
    layers = _layers()
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from quantviz.pipeline import Pipeline\n    import streamlit\n")
    assert {"quantviz.pipeline", "streamlit"} <= layers.imports(f, {"quantviz.pipeline"})


def test_the_command_prints_the_layers_and_no_cycle():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "layers.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines()[0].startswith("layer 0: ") and out.stdout.strip().endswith("no cycle")
