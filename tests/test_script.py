"""The generated script reproduces the flow with bare calls and writes a .pte."""
import subprocess
import sys

import pytest

from quantviz.script import reproduce_script

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("options", [dict(), dict(flow="pt2e", partitioner="xnnpack")])
def test_generated_script_runs_and_writes_the_same_size_pte(flow, tmp_path, options):
    pipe = flow("sample:digits_cnn", **options)
    script = tmp_path / "reproduce.py"
    script.write_text(reproduce_script("sample:digits_cnn", pipe))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote model.pte, {len(pipe.pte_bytes())} bytes" in proc.stdout
    assert (tmp_path / "model.pte").read_bytes()[4:8] == b"ET12"
